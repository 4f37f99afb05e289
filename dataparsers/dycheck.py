"""DyCheck iPhone dataparser (``dynsplat-dycheck``): monocular phone captures with held-out static cameras (Gao et al.,
"Monocular Dynamic View Synthesis: A Reality Check", NeurIPS 2022).

Layout (as the DyCheck release ships it; frame ids ``<camera_id>_<time_id:05d>``)::

    DATA/dataset.json             {"ids": [...], "train_ids": [...], "val_ids": [...], "num_exemplars", "count"}
    DATA/metadata.json            {id: {"warp_id" (or "time_id"), "appearance_id", "camera_id"}}
    DATA/camera/<id>.json         orientation (3x3 world-to-camera rotation, OpenCV axes), position (camera centre),
                                  focal_length, principal_point [2], skew, pixel_aspect_ratio, radial_distortion [3],
                                  tangential_distortion [2], image_size [W, H] — all for the full-resolution image
    DATA/rgb/{1x,2x}/<id>.png     images (train: RGBA whose alpha marks pixels with a LiDAR point, black elsewhere)
    DATA/depth/{1x,2x}/<id>.npy   metric LiDAR depth of the train frames ([H, W, 1] float, dataset units, z along the
                                  optical axis, 0 = no measurement)
    DATA/covisible/{1x,2x}/val/<id>.png   255 where a val pixel is seen by some training view (DyCheck's mPSNR mask)
    DATA/splits/{train,val}.json  {"frame_names", "time_ids", "camera_ids"} (default: camera 0 trains, others val)
    DATA/scene.json               {"scale", "center", "near", "far"} (near/far already multiplied by scale)
    DATA/points.npy               optional background points [M, 3] in the dataset world
    DATA/extra.json               factor, fps, bbox, lookat, up (not read)

Protocol: the moving phone's frames (``splits/train.json``) train; the held-out static cameras (``splits/val.json``)
are nerfstudio's val and test splits. Times are the frames' time ids (``warp_id``), min-max normalised over all frames
so that every split shares one range. ``downscale`` picks the ``1x``/``2x`` folders (DyCheck's ``factor``); the camera
files describe the full resolution and their intrinsics are scaled by 1/downscale (``rescale_image_domain``).

Cameras: fx = focal_length, fy = focal_length × pixel_aspect_ratio, (cx, cy) = principal_point (DyCheck's pixel
centres sit at +0.5, as nerfstudio's), perspective with nerfstudio distortion (k1, k2, k3, 0, p1, p2) = (radial[0..2],
tangential[0..1]) — the same Brown model (nerfstudio's full-image datamanager undistorts the images with OpenCV before
training, and the eval region masks are undistorted the same way). A non-zero ``skew`` is rejected: neither
nerfstudio's cameras nor gsplat model it. World: ``scene.json``'s ``scale`` is the unit scale (so depth maps and
near/far land in DyCheck's normalised units); its ``center`` is a translation only, which the base's centring
(``center_method``, default the mean camera centre) replaces, and ``dataparser_transform`` records ours.

``metadata``: ``depth_filenames`` (train frames; None where a frame has none) with ``depth_kind`` = "metric" (files
in dataset units, in the distorted image's geometry: × ``dataparser_scale`` gives our units, as
``dynsplat_ns.priors.depth``
reads them), ``covisible_mask_filenames`` (val frames; None elsewhere), ``camera_ids``, ``time_ids`` and
``frame_names`` of the split's frames. The covisible
masks give ``covisible_psnr``/``covisible_ssim`` (DyCheck's mPSNR/mSSIM) in ``ns-eval``, next to psnr/ssim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.errors import DynsplatConfigError

from .base import DynsplatDataParser, DynsplatDataParserConfig
from .errors import DataParserError
from .files import load_json, require_dir
from .scene import SceneFrames

#: Camera file keys every frame needs.
REQUIRED_CAMERA_KEYS = ("orientation", "position", "focal_length", "principal_point", "image_size")
#: Tolerance on ``orientation`` being a rotation (|R Rᵀ - I|, |det R - 1|).
ROTATION_TOLERANCE = 1e-3


@dataclass
class DycheckDataParserConfig(DynsplatDataParserConfig):
    """DyCheck iPhone dataparser config."""

    _target: type = field(default_factory=lambda: Dycheck)
    """Parser class to instantiate."""
    data: Path = Path("data/iphone/apple")
    """Dataset folder (one DyCheck iPhone sequence)."""
    downscale: Literal[1, 2] = 2
    """Image folder factor: 1 (rgb/1x, full resolution) or 2 (rgb/2x, DyCheck's default); depth and covisible masks
    come from the same factor's folders."""
    use_scene_scale: bool = True
    """Scale the world by scene.json's 'scale' (DyCheck's normalised units); False keeps the dataset's units."""
    orientation_method: Literal["up", "pca", "vertical", "none"] = "up"
    """Rotate the world so the mean camera up is +z (see the base)."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """Put the origin at the mean camera centre (see the base; replaces scene.json's 'center')."""
    alpha_color: str = "black"
    """DyCheck's train alpha marks pixels without a LiDAR point (black in the image): compositing over black keeps
    the stored colours."""
    seed_points: str = "auto"
    """'auto': points.npy when present, else random in the camera frustums (scene.json near/far); 'sfm', 'random' or
    a PLY path."""


def _finite(value: Any, shape: tuple[int, ...], source: Path, key: str) -> np.ndarray:
    """``value`` as a finite float array of ``shape`` (a DataParserError naming ``source`` and ``key`` otherwise)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataParserError(source, f"'{key}' must be numbers, got {value!r}") from None
    if array.shape != shape:
        raise DataParserError(source, f"'{key}' must have shape {list(shape)}, got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise DataParserError(source, f"'{key}' contains NaN or inf")
    return array


def read_camera(path: Path) -> dict[str, Any]:
    """One DyCheck camera file as arrays (full resolution), checked.

    Returns:
        ``c2w`` (OpenCV axes ``[3, 4]``), ``fx``, ``fy``, ``cx``, ``cy``, ``width``, ``height`` and ``distortion``
        (nerfstudio order ``[6]``).

    Raises:
        DataParserError: Missing file or key, wrong shapes, a non-rotation orientation, non-positive focal length,
            pixel aspect ratio or image size, or a non-zero skew.
    """
    cam = load_json(path)
    if not isinstance(cam, dict):
        raise DataParserError(path, "expected a JSON object (a DyCheck camera)")
    missing = [k for k in REQUIRED_CAMERA_KEYS if k not in cam]
    if missing:
        raise DataParserError(path, f"camera is missing {', '.join(repr(k) for k in missing)}")
    rot = _finite(cam["orientation"], (3, 3), path, "orientation")
    if np.abs(rot @ rot.T - np.eye(3)).max() > ROTATION_TOLERANCE or abs(np.linalg.det(rot) - 1) > ROTATION_TOLERANCE:
        raise DataParserError(path, "'orientation' is not a rotation matrix (world-to-camera, det +1)")
    position = _finite(cam["position"], (3,), path, "position")
    focal = float(_finite(cam["focal_length"], (), path, "focal_length"))
    aspect = float(_finite(cam.get("pixel_aspect_ratio", 1.0), (), path, "pixel_aspect_ratio"))
    skew = float(_finite(cam.get("skew", 0.0), (), path, "skew"))
    principal = _finite(cam["principal_point"], (2,), path, "principal_point")
    size = _finite(cam["image_size"], (2,), path, "image_size")
    radial = _finite(cam.get("radial_distortion", [0.0] * 3), (3,), path, "radial_distortion")
    tangential_value = cam.get("tangential_distortion", cam.get("tangential", [0.0] * 2))  # old files: "tangential"
    tangential = _finite(tangential_value, (2,), path, "tangential_distortion")
    if focal <= 0 or aspect <= 0:
        raise DataParserError(path, "'focal_length' and 'pixel_aspect_ratio' must be > 0")
    if size.min() <= 0 or np.any(size != np.round(size)):
        raise DataParserError(path, f"'image_size' must be two positive integers [W, H], got {cam['image_size']!r}")
    if skew != 0.0:
        raise DataParserError(path, f"skew {skew:g} is not supported (nerfstudio cameras have no skew); expected 0")
    c2w = np.concatenate([rot.T, position[:, None]], axis=1)  # orientation is world-to-camera: its transpose is c2w
    return {
        "c2w": c2w, "fx": focal, "fy": focal * aspect, "cx": float(principal[0]), "cy": float(principal[1]),
        "width": int(size[0]), "height": int(size[1]),
        "distortion": np.array([radial[0], radial[1], radial[2], 0.0, tangential[0], tangential[1]]),
    }  # fmt: skip


@dataclass
class Dycheck(DynsplatDataParser):
    """Reads a DyCheck iPhone sequence (see the module docstring)."""

    config: DycheckDataParserConfig
    includes_time: bool = True

    def __init__(self, config: DycheckDataParserConfig):
        super().__init__(config=config)
        if config.downscale not in (1, 2):
            raise DynsplatConfigError(f"downscale={config.downscale!r}: must be 1 or 2 (DyCheck's 1x/2x folders)")
        self._scene: SceneFrames | None = None

    def _read(self) -> SceneFrames:
        data, factor = self.data_dir, f"{int(self.config.downscale)}x"
        ids = self._frame_ids(data / "dataset.json")
        time_ids, camera_ids = self._metadata(data / "metadata.json", ids)
        splits, split_source = self._splits(data, ids, camera_ids)
        rgb_dir = require_dir(data / "rgb" / factor, f"image folder (downscale={self.config.downscale})")
        files = [rgb_dir / f"{i}.png" for i in ids]
        for name, members in splits.items():
            for k in members:
                if not files[k].is_file():
                    raise DataParserError(files[k], f"image not found (frame {ids[k]} is in the {name} split)")
        cams = [read_camera(data / "camera" / f"{i}.json") for i in ids]
        scale = 1.0 / int(self.config.downscale)
        unit_scale, bounds = self._scene_info(data / "scene.json", len(ids))
        distortion = np.stack([c["distortion"] for c in cams])
        per_frame: dict[str, list[Any]] = {"frame_names": list(ids), "time_ids": time_ids.tolist(),
                                           "camera_ids": camera_ids.tolist()}  # fmt: skip
        depth = self._optional_files(data / "depth" / factor, ids, ".npy", splits["train"], "depth map")
        if depth is not None:
            per_frame["depth_filenames"] = depth
        covisible_dir = data / "covisible" / factor / "val"
        covisible = self._optional_files(covisible_dir, ids, ".png", splits["test"], "covisibility mask")
        if covisible is not None:
            per_frame["covisible_mask_filenames"] = covisible
        else:
            CONSOLE.log(f"[yellow]{covisible_dir} not found: no covisible_psnr/covisible_ssim (DyCheck's mPSNR)")
        points, points_source = self._points(data / "points.npy")
        return SceneFrames(
            image_filenames=files,
            c2w=np.stack([c["c2w"] for c in cams]),
            convention="opencv",
            fx=np.array([c["fx"] for c in cams]) * scale,
            fy=np.array([c["fy"] for c in cams]) * scale,
            cx=np.array([c["cx"] for c in cams]) * scale,
            cy=np.array([c["cy"] for c in cams]) * scale,
            width=np.array([int(round(c["width"] * scale)) for c in cams]),
            height=np.array([int(round(c["height"] * scale)) for c in cams]),
            distortion=distortion if np.any(distortion) else None,
            splits=splits,
            split_source=split_source,
            pose_source=data / "camera",
            times=time_ids.astype(np.float64),
            time_mode="minmax",
            bounds=bounds,
            unit_scale=unit_scale,
            points=points,
            points_source=points_source,
            sizes="per_frame",
            per_frame_metadata=per_frame,
            metadata={"depth_kind": "metric"} if depth is not None else {},
        )

    @staticmethod
    def _frame_ids(path: Path) -> list[str]:
        meta = load_json(path)
        if not isinstance(meta, dict) or not isinstance(meta.get("ids"), list) or not meta["ids"]:
            raise DataParserError(path, "expected a JSON object with a non-empty 'ids' list of frame names")
        ids = meta["ids"]
        if not all(isinstance(i, str) and i and "/" not in i for i in ids):
            raise DataParserError(path, "'ids' must be frame name strings (e.g. '0_00000')")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataParserError(path, f"frame {dup!r} appears more than once in 'ids'")
        return list(ids)

    @staticmethod
    def _metadata(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(time_ids [N], camera_ids [N])`` of every frame from metadata.json."""
        meta = load_json(path)
        if not isinstance(meta, dict):
            raise DataParserError(path, "expected a JSON object {frame id: {warp_id, appearance_id, camera_id}}")
        times, cameras = [], []
        for frame in ids:
            entry = meta.get(frame)
            if not isinstance(entry, dict):
                raise DataParserError(path, f"frame {frame!r} (listed in dataset.json) has no entry")
            time = entry.get("warp_id", entry.get("time_id"))
            camera = entry.get("camera_id")
            for key, value in (("warp_id", time), ("camera_id", camera)):
                if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                    raise DataParserError(path, f"frame {frame!r}: '{key}' must be a number, got {value!r}")
            times.append(float(time))
            cameras.append(int(camera))
        return np.asarray(times), np.asarray(cameras)

    @staticmethod
    def _splits(data: Path, ids: list[str], camera_ids: np.ndarray) -> tuple[dict[str, list[int]], Path]:
        """splits/{train,val}.json's frames, else DyCheck's default (camera 0 trains, the others are val)."""
        folder = data / "splits"
        if not folder.is_dir():
            train = [k for k, c in enumerate(camera_ids) if c == 0]
            val = [k for k, c in enumerate(camera_ids) if c != 0]
            return {"train": train, "val": val, "test": val}, data / "metadata.json"
        index = {frame: k for k, frame in enumerate(ids)}
        out = {}
        for name in ("train", "val"):
            path = folder / f"{name}.json"
            meta = load_json(path)
            names = meta.get("frame_names") if isinstance(meta, dict) else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DataParserError(path, "expected a JSON object with a 'frame_names' list of frame ids")
            for frame in names:
                if frame not in index:
                    raise DataParserError(path, f"frame {frame!r} is not in dataset.json's 'ids'")
            out[name] = [index[n] for n in names]
        return {"train": out["train"], "val": out["val"], "test": out["val"]}, folder / "val.json"

    def _scene_info(self, path: Path, n: int) -> tuple[float, np.ndarray | None]:
        """``(unit scale, bounds [N, 2] in dataset units)`` from scene.json (1 and None without it)."""
        if not path.is_file():
            CONSOLE.log(f"[yellow]{path} not found: dataset units kept, no near/far bounds")
            return 1.0, None
        meta = load_json(path)
        if not isinstance(meta, dict):
            raise DataParserError(path, "expected a JSON object with 'scale', 'center', 'near', 'far'")
        values = {}
        for key in ("scale", "near", "far"):
            value = meta.get(key)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
                raise DataParserError(path, f"'{key}' must be a positive number, got {value!r}")
            values[key] = float(value)
        if values["near"] >= values["far"]:
            raise DataParserError(path, f"'near' ({values['near']:g}) must be less than 'far' ({values['far']:g})")
        # near/far are stored already multiplied by scale (DyCheck's processing); the base scales bounds itself.
        bounds = np.tile([values["near"] / values["scale"], values["far"] / values["scale"]], (n, 1))
        return (values["scale"] if self.config.use_scene_scale else 1.0), bounds

    @staticmethod
    def _optional_files(
        folder: Path, ids: list[str], suffix: str, needed: list[int], what: str
    ) -> list[Path | None] | None:
        """Per-frame files ``folder/<id><suffix>`` (None where absent); None when the folder is missing. Every frame
        in ``needed`` must have one."""
        if not folder.is_dir():
            return None
        out: list[Path | None] = [folder / f"{frame}{suffix}" for frame in ids]
        out = [path if path is not None and path.is_file() else None for path in out]
        for k in needed:
            if out[k] is None:
                raise DataParserError(folder / f"{ids[k]}{suffix}", f"{what} not found (one is needed per frame)")
        return out

    def _points(self, path: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, Path]:
        """points.npy (background points, dataset world; grey) when seed points may use it."""
        if str(self.config.seed_points).strip().lower() not in ("auto", "sfm") or not path.is_file():
            return None, path
        try:
            xyz = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataParserError(path, f"cannot read points: {err}") from None
        if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.isfinite(xyz).all():
            raise DataParserError(path, f"expected finite points [M, 3], got shape {list(xyz.shape)}")
        return (xyz.astype(np.float32), np.full(xyz.shape, 128, dtype=np.uint8)), path


dycheck_dataparser = DataParserSpecification(
    config=DycheckDataParserConfig(),
    description="DyCheck iPhone captures (train on the moving phone, evaluate on the held-out static cameras with "
    "covisibility-masked PSNR/SSIM).",
)
