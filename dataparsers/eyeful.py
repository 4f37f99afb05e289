"""EyefulTower dataparser (``dynsplat-eyeful``): VR-NeRF's multi-camera rig captures, as nerfstudio downloads them.

Layout (EyefulTower's capture folder after ``ns-download-data eyefultower``)::

    CAPTURE/cameras.json                 KRT calibration of every image (not read: transforms.json carries it)
    CAPTURE/splits.json                  {"train": [cameraId, ...], "test": [cameraId, ...]}
    CAPTURE/images-jpeg-{1k,2k,4k}/      one folder per resolution (images-jpeg/ = 8k), each holding
        <rig camera>/<image>.jpg           the images (cameraId = "<rig camera>/<image>")
        transforms.json                    nerfstudio's format: camera_model OPENCV | OPENCV_FISHEYE,
                                           fisheye_crop_radius, per-frame intrinsics, distortion, OpenGL poses,
                                           train_filenames / val_filenames / test_filenames
        transforms_300.json, transforms_half.json   evenly subsampled frame subsets

``--data`` is the capture folder (``resolution`` picks the folder; 'auto' = the smallest JPEG one present) or a
resolution folder itself. Frames are sorted by ``file_path`` (frame ``i`` for ``split_indices.json``). The split is
``splits.json``'s (train / test camera ids): nerfstudio's download script writes the test ids as ``val_filenames`` and
an empty ``test_filenames``, so its own parser evaluates on nothing; without ``splits.json`` the transforms lists are
used (test = test_filenames, else val_filenames). Fisheye frames keep their OPENCV_FISHEYE distortion: nerfstudio's
full-image datamanager undistorts them (cv2.fisheye) before training. Poses: nerfstudio's orientation ('up',
centred) and auto scale. The parser reads image headers only and never decodes an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.errors import DynsplatConfigError

from .base import DynsplatDataParser, DynsplatDataParserConfig
from .errors import DataParserError
from .files import load_json
from .scene import SceneFrames
from .subsets import holdout_split

#: EyefulTower resolution names (nerfstudio's download script) → folder, smallest first.
RESOLUTION_FOLDERS = {
    "jpeg_1k": "images-jpeg-1k",
    "jpeg_2k": "images-jpeg-2k",
    "jpeg_4k": "images-jpeg-4k",
    "jpeg_8k": "images-jpeg",
    "exr_1k": "images-1k",
    "exr_2k": "images-2k",
}
#: Camera models the parser accepts in transforms.json (EyefulTower v2: OPENCV, v1: OPENCV_FISHEYE).
CAMERA_MODELS = {
    "OPENCV": CameraType.PERSPECTIVE,
    "PINHOLE": CameraType.PERSPECTIVE,
    "OPENCV_FISHEYE": CameraType.FISHEYE,
}
_INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
_DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")


@dataclass
class EyefulDataParserConfig(DynsplatDataParserConfig):
    """EyefulTower dataparser config."""

    _target: type = field(default_factory=lambda: Eyeful)
    """Parser class to instantiate."""
    data: Path = Path("data/eyefultower/riverview")
    """Capture folder (with splits.json and images-jpeg-*/) or one resolution folder (with transforms.json)."""
    resolution: str = "auto"
    """Resolution folder when data is a capture folder: 'auto' (smallest JPEG folder present), jpeg_1k, jpeg_2k,
    jpeg_4k, jpeg_8k, or a folder name such as images-jpeg-2k."""
    transforms_file: str = "transforms.json"
    """transforms.json (all frames), transforms_300.json or transforms_half.json (subsets ns-download-data writes)."""
    split_source: Literal["auto", "splits.json", "transforms"] = "auto"
    """'splits.json' (the capture's train/test ids), 'transforms' (train/val/test_filenames); 'auto': splits.json
    when the capture folder has one."""
    holdout: int = 8
    """When neither source has a split: every holdout-th frame is test."""
    scene_bound: float = 2.0
    """Half side of the cubic scene box after auto scaling (cameras within ±1), before scale_factor."""
    orientation_method: Literal["up", "pca", "vertical", "none"] = "up"
    """Rotate the world so the mean camera up is +z (see the base)."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """Put the origin at the mean camera centre (see the base)."""
    auto_scale_poses: bool = True
    """Scale so the farthest camera centre is 1 from the origin (nerfstudio's default for these captures)."""
    alpha_color: str = "none"
    """EyefulTower JPEGs are opaque: no background compositing."""


def _number(meta: dict, frame: dict, key: str, source: Path, where: str, default: float | None = None) -> float:
    """``frame[key]``, else the file-level ``meta[key]``, else ``default``; must be a finite number."""
    value = frame.get(key, meta.get(key, default))
    if value is None:
        raise DataParserError(source, f"{where} has no '{key}' (nor does the file)")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise DataParserError(source, f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


@dataclass
class Eyeful(DynsplatDataParser):
    """Reads an EyefulTower capture (see the module docstring)."""

    config: EyefulDataParserConfig
    includes_time: bool = False

    def __init__(self, config: EyefulDataParserConfig):
        super().__init__(config=config)
        if config.split_source not in ("auto", "splits.json", "transforms"):
            raise DynsplatConfigError(
                f"split_source={config.split_source!r}: must be 'auto', 'splits.json' or 'transforms'"
            )
        if not config.scene_bound > 0:
            raise DynsplatConfigError(f"scene_bound={config.scene_bound!r}: must be > 0")
        self._scene: SceneFrames | None = None

    def folders(self) -> tuple[Path, Path]:
        """``(capture folder, resolution folder)`` for ``data`` and ``resolution``."""
        data, name = self.data_dir, self.config.transforms_file
        if (data / name).is_file():
            return data.parent, data
        wanted = str(self.config.resolution)
        if wanted != "auto":
            folder = data / RESOLUTION_FOLDERS.get(wanted, wanted)
            if not folder.is_dir():
                raise DataParserError(folder, f"resolution folder not found (resolution={wanted!r})")
            return data, folder
        for key in ("jpeg_1k", "jpeg_2k", "jpeg_4k", "jpeg_8k"):
            if (data / RESOLUTION_FOLDERS[key] / name).is_file():
                return data, data / RESOLUTION_FOLDERS[key]
        present = sorted(p.name for p in data.iterdir() if p.is_dir() and p.name.startswith("images"))
        hint = f" (found {', '.join(present)})" if present else ""
        raise DataParserError(data / name, f"file not found, nor in any images-jpeg-* resolution folder{hint}")

    def _read(self) -> SceneFrames:
        capture, folder = self.folders()
        source = folder / self.config.transforms_file
        meta = load_json(source)
        if not isinstance(meta, dict):
            raise DataParserError(source, "expected a JSON object with 'frames'")
        model = meta.get("camera_model", "OPENCV")
        if model not in CAMERA_MODELS:
            raise DataParserError(source, f"unknown camera_model {model!r} (expected one of {sorted(CAMERA_MODELS)})")
        frames = meta.get("frames")
        if not isinstance(frames, list) or not frames:
            raise DataParserError(source, "'frames' must be a non-empty list")
        for i, frame in enumerate(frames):
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise DataParserError(source, f"frame {i} is not an object with a 'file_path' string")
        frames = sorted(frames, key=lambda f: f["file_path"])
        paths = [f["file_path"] for f in frames]
        if len(set(paths)) != len(paths):
            dup = next(p for p in paths if paths.count(p) > 1)
            raise DataParserError(source, f"file_path {dup!r} appears more than once")
        files = [folder / p for p in paths]
        if any(p.suffix.lower() == ".exr" for p in files):
            raise DataParserError(
                folder, "EXR images are not supported; use a JPEG resolution (e.g. --resolution jpeg_2k)"
            )
        arrays = self._frame_arrays(meta, frames, source)
        splits, split_file = self._splits(capture, meta, paths, source)
        camera_type = CAMERA_MODELS[model]
        camera_metadata = {}
        radius = meta.get("fisheye_crop_radius")
        if camera_type == CameraType.FISHEYE and isinstance(radius, Real) and not isinstance(radius, bool):
            camera_metadata["fisheye_crop_radius"] = float(radius)
        distortion = arrays.pop("distortion")
        return SceneFrames(
            image_filenames=files,
            splits=splits,
            split_source=split_file,
            pose_source=source,
            camera_type=camera_type,
            distortion=distortion if np.any(distortion) else None,
            scene_bound=float(self.config.scene_bound),
            sizes="per_frame",
            camera_metadata=camera_metadata,
            metadata={"eyeful_resolution_folder": folder, "camera_model": model},
            per_frame_metadata={"camera_ids": [str(Path(p).with_suffix("")) for p in paths]},
            **arrays,
        )

    def _frame_arrays(self, meta: dict, frames: list[dict], source: Path) -> dict[str, Any]:
        """Poses, intrinsics and distortion of every frame (each problem names the frame)."""
        c2w, values, dist = [], {k: [] for k in _INTRINSICS}, []
        for i, frame in enumerate(frames):
            where = f"frame {i} ({frame['file_path']})"
            if "transform_matrix" not in frame:
                raise DataParserError(source, f"{where} has no 'transform_matrix'")
            try:
                mat = np.asarray(frame["transform_matrix"], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataParserError(source, f"{where}: 'transform_matrix' is not a 4x4 matrix of numbers") from None
            if mat.shape not in ((4, 4), (3, 4)):
                raise DataParserError(source, f"{where}: 'transform_matrix' must be 4x4, got shape {list(mat.shape)}")
            if not np.isfinite(mat).all():
                raise DataParserError(source, f"{where}: 'transform_matrix' contains NaN or inf")
            c2w.append(mat[:3, :4])
            for key in _INTRINSICS:
                values[key].append(_number(meta, frame, key, source, where))
            dist.append([_number(meta, frame, k, source, where, 0.0) for k in _DISTORTION])
            if min(values["fl_x"][-1], values["fl_y"][-1], values["w"][-1], values["h"][-1]) <= 0:
                raise DataParserError(source, f"{where}: focal lengths and image size must be > 0")
        return {
            "c2w": np.stack(c2w), "fx": np.array(values["fl_x"]), "fy": np.array(values["fl_y"]),
            "cx": np.array(values["cx"]), "cy": np.array(values["cy"]),
            "width": np.round(values["w"]).astype(np.int64), "height": np.round(values["h"]).astype(np.int64),
            "distortion": np.asarray(dist, dtype=np.float64),
        }  # fmt: skip

    def _splits(self, capture: Path, meta: dict, paths: list[str], source: Path) -> tuple[dict[str, list[int]], Path]:
        """The capture's split: splits.json ids, else the transforms' filename lists, else every holdout-th frame."""
        splits_json = capture / "splits.json"
        use = self.config.split_source
        if use == "splits.json" or (use == "auto" and splits_json.is_file()):
            return self._splits_from_ids(splits_json, paths), splits_json
        lists = {k: meta.get(f"{k}_filenames") for k in ("train", "val", "test")}
        if any(v is not None for v in lists.values()):
            for key, value in lists.items():
                if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise DataParserError(source, f"'{key}_filenames' must be a list of file paths")
            index = {p: i for i, p in enumerate(paths)}
            picked = {k: sorted(index[p] for p in (v or []) if p in index) for k, v in lists.items()}
            test = picked["test"] or picked["val"]
            return {"train": picked["train"], "val": picked["val"] or test, "test": test}, source
        CONSOLE.log(f"[yellow]{source}: no split information; every {self.config.holdout}th frame is test")
        return holdout_split(len(paths), int(self.config.holdout)), source

    @staticmethod
    def _splits_from_ids(path: Path, paths: list[str]) -> dict[str, list[int]]:
        """Frames whose cameraId (file path without extension) is in splits.json's train / test lists."""
        meta = load_json(path)
        if not isinstance(meta, dict) or not all(k in meta for k in ("train", "test")):
            raise DataParserError(path, "expected a JSON object with 'train' and 'test' lists of camera ids")
        out = {}
        ids = [str(Path(p).with_suffix("")) for p in paths]
        for key in ("train", "test"):
            value = meta[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DataParserError(path, f"'{key}' must be a list of camera id strings")
            wanted = set(value)
            out[key] = [i for i, cid in enumerate(ids) if cid in wanted]
        return out


eyeful_dataparser = DataParserSpecification(
    config=EyefulDataParserConfig(),
    description="EyefulTower captures (transforms.json per resolution; evaluates on splits.json's test cameras).",
)
