"""D2RF dataparser (``dynsplat-d2rf``): defocused stereo-monocular dynamic captures (Luo et al., ECCV 2024).

Layout (as the D2RF release ships it; ``{id:06d}_{left|right}`` names, one left and one right view per time step)::

    DATA/images_bokeh/000000_left.jpg ...   defocused views, full resolution (the training input)
    DATA/images/ ...                        all-in-focus views, full resolution (D2RF scores renders against these)
    DATA/images_2/ ...                      defocused views at half resolution
    DATA/motion_masks/ ...                  dynamic-region masks (half resolution)
    DATA/background_mask/ ...               static-background masks (full resolution)
    DATA/dpt/000000_left.npy ...            monocular disparity (half resolution)
    DATA/flow_i1/                           optical flow (not read)
    DATA/sparse/0/{cameras,images,points3D}.bin   COLMAP model of all views (one camera)
    DATA/database.db                        COLMAP database (not read)
    DATA/poses_bounds.npy                   2 rows per time step (left, right interleaved = sorted name order)

Frame ``i`` is the ``i``-th view in name order (= row ``i`` of ``poses_bounds.npy``): even = left, odd = right.
Protocol (D2RF's loader): views whose index is a multiple of ``llffhold`` (2: the left views) train, the others (the
right views) test; test views load the all-in-focus images. Times come from the frame id (left and right of one id
share a time), min-max normalised. Poses and intrinsics come from ``sparse/0`` (COLMAP, OpenCV axes) when present,
else from ``poses_bounds.npy``; the scale is D2RF's ``1 / (5th percentile of near × bd_factor)``. Seed points:
``points3D.bin``. ``metadata`` lists ``motion_mask_filenames``, ``background_mask_filenames`` and ``depth_filenames``
(with ``depth_kind`` = "disparity") for the split's frames (files at their own resolution: resize when loading; a
mask's size must be the split's image size divided or multiplied by a whole number, ±1 px, else the parse fails
naming the mask).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.errors import DynsplatConfigError

from . import colmap
from .base import TRAINING_BLUR_KEY, DynsplatDataParser, DynsplatDataParserConfig
from .errors import DataParserError
from .files import list_images
from .poses_bounds import PosesBounds, bounds_scale, check_count, load_poses_bounds
from .scene import SceneFrames
from .subsets import holdout_split


def training_blur(image_source: str) -> dict[str, str]:
    """The blur of D2RF training images of ``image_source``: defocus for the bokeh images, none for the sharp ones."""
    if image_source == "bokeh":
        return {"defocus": "the training images are D2RF's defocused views (images_bokeh/, --image-source bokeh)"}
    return {}


#: Folder of each ``image_source``.
IMAGE_FOLDERS = {"bokeh": "images_bokeh", "sharp": "images", "half-res": "images_2"}
#: D2RF view names: ``{id:06d}_{left|right}``.
NAME_PATTERN = re.compile(r"^(\d+)_(left|right)$")
#: Optional per-view folders reported in metadata: (folder, metadata key, extensions, what one file is).
PER_VIEW_FOLDERS = (
    ("motion_masks", "motion_mask_filenames", (".png", ".jpg", ".jpeg"), "motion mask"),
    ("background_mask", "background_mask_filenames", (".png", ".jpg", ".jpeg"), "background mask"),
    ("dpt", "depth_filenames", (".npy",), "disparity map"),
)


@dataclass
class D2RFDataParserConfig(DynsplatDataParserConfig):
    """D2RF dataparser config."""

    _target: type = field(default_factory=lambda: D2RF)
    """Parser class to instantiate."""
    data: Path = Path("data/D2RF/Car")
    """Dataset folder (one D2RF scene)."""
    image_source: Literal["bokeh", "sharp", "half-res"] = "bokeh"
    """Training images: 'bokeh' (images_bokeh/, defocused, full res), 'sharp' (images/, all-in-focus) or 'half-res'
    (images_2/, defocused, half resolution)."""
    eval_image_source: Literal["sharp", "same"] = "sharp"
    """Val/test images: 'sharp' (images/, D2RF's protocol; shrunk to the training resolution) or 'same' (as
    image_source)."""
    llffhold: int = 2
    """Views whose index is a multiple of llffhold train, the others test (2: left = train, right = test)."""
    pose_source: Literal["auto", "colmap", "poses_bounds"] = "auto"
    """Poses and intrinsics from sparse/0 ('colmap') or poses_bounds.npy; 'auto': sparse/0 when it exists."""
    bd_factor: float | None = 0.9
    """Scale = 1 / (5th percentile of the near bounds × bd_factor), as D2RF's loader; None keeps COLMAP units."""
    orientation_method: Literal["up", "pca", "vertical", "none"] = "up"
    """Rotate the world so the mean camera up is +z (see the base)."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """Put the origin at the mean camera centre (see the base)."""
    alpha_color: str = "none"
    """D2RF images are opaque: no background compositing."""
    seed_points: str = "auto"
    """'auto': sparse/0/points3D.bin when present (else random in the frustums); 'sfm', 'random' or a PLY path."""


def parse_view_names(files: list[Path], folder: Path) -> list[tuple[int, str]]:
    """``[(frame id, side), ...]`` of D2RF view files, checking names and left/right interleaving."""
    views = []
    for path in files:
        match = NAME_PATTERN.match(path.stem)
        if match is None:
            raise DataParserError(path, "not a D2RF view name: expected {id:06d}_left or {id:06d}_right")
        views.append((int(match.group(1)), match.group(2)))
    for k in range(0, len(views), 2):
        if views[k][1] != "left":
            raise DataParserError(
                files[k], f"expected a left view at position {k} of {folder.name}/ (left/right pairs)"
            )
        if k + 1 >= len(views) or views[k + 1] != (views[k][0], "right"):
            bad = files[k + 1] if k + 1 < len(views) else files[k]
            raise DataParserError(bad, f"expected {files[k].stem.replace('left', 'right')} after {files[k].name}")
    return views


@dataclass
class D2RF(DynsplatDataParser):
    """Reads a D2RF scene (see the module docstring)."""

    config: D2RFDataParserConfig
    includes_time: bool = True

    def __init__(self, config: D2RFDataParserConfig):
        super().__init__(config=config)
        if config.image_source not in IMAGE_FOLDERS:
            raise DynsplatConfigError(f"image_source={config.image_source!r}: must be one of {sorted(IMAGE_FOLDERS)}")
        if config.eval_image_source not in ("sharp", "same"):
            raise DynsplatConfigError(f"eval_image_source={config.eval_image_source!r}: must be 'sharp' or 'same'")
        if config.pose_source not in ("auto", "colmap", "poses_bounds"):
            raise DynsplatConfigError(f"pose_source={config.pose_source!r}: must be 'auto', 'colmap' or 'poses_bounds'")
        if int(config.llffhold) != config.llffhold or config.llffhold < 0:
            raise DynsplatConfigError(f"llffhold={config.llffhold!r}: must be an integer >= 0")
        self._scene: SceneFrames | None = None

    def _read(self) -> SceneFrames:
        cfg, data = self.config, self.data_dir
        poses = load_poses_bounds(data / "poses_bounds.npy")
        if len(poses) % 2:
            raise DataParserError(
                poses.path, f"has {len(poses)} rows; D2RF stores a left and a right view per time step (2 rows each)"
            )
        folder = data / IMAGE_FOLDERS[cfg.image_source]
        files = list_images(folder)
        check_count(files, folder, len(poses), poses.path)
        views = parse_view_names(files, folder)
        stems = [f.stem for f in files]
        eval_files, eval_downscale = None, None
        if cfg.eval_image_source == "sharp" and cfg.image_source != "sharp":
            eval_files = self._matching_files(data / "images", stems, (".png", ".jpg", ".jpeg"), "sharp image")
            eval_downscale = 2 if cfg.image_source == "half-res" else 1
        use_colmap = cfg.pose_source == "colmap" or (
            cfg.pose_source == "auto" and (data / "sparse" / "0").is_dir()
        )  # fmt: skip
        geometry = self._colmap_geometry(stems) if use_colmap else self._poses_bounds_geometry(poses)
        per_view = {}
        for name, key, exts, what in PER_VIEW_FOLDERS:
            if (data / name).is_dir():
                per_view[key] = self._matching_files(data / name, stems, exts, what)
        points, points_source = self._sfm_points()
        return SceneFrames(
            image_filenames=files,
            splits=holdout_split(len(files), int(cfg.llffhold), hold_multiples=False),
            split_source=poses.path,
            times=np.asarray([v[0] for v in views], dtype=np.float64),
            time_mode="minmax",
            bounds=poses.bounds,
            unit_scale=bounds_scale(poses.bounds, cfg.bd_factor, percentile=5),
            points=points,
            points_source=points_source,
            eval_image_filenames=eval_files,
            eval_downscale=eval_downscale,
            per_frame_metadata={**per_view, "view_side": [v[1] for v in views], "frame_id": [v[0] for v in views]},
            metadata={**({"depth_kind": "disparity"} if "depth_filenames" in per_view else {}),
                      TRAINING_BLUR_KEY: training_blur(cfg.image_source)},
            **geometry,
        )

    def _matching_files(self, folder: Path, stems: list[str], exts: tuple[str, ...], what: str) -> list[Path]:
        """One file per view stem in ``folder`` (any of ``exts``), in view order."""
        if not folder.is_dir():
            raise DataParserError(folder, f"{what} folder not found")
        by_stem = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts}
        suffixes = Counter(p.suffix for p in by_stem.values()).most_common(1)
        suffix = suffixes[0][0] if suffixes else exts[0]  # name a missing file like its siblings
        out = []
        for stem in stems:
            if stem not in by_stem:
                raise DataParserError(folder / f"{stem}{suffix}", f"{what} not found (one is needed per view)")
            out.append(by_stem[stem])
        return out

    def _poses_bounds_geometry(self, poses: PosesBounds) -> dict[str, Any]:
        height, width, focal = poses.hwf[:, 0], poses.hwf[:, 1], poses.hwf[:, 2]
        return {
            "c2w": poses.c2w, "fx": focal.copy(), "fy": focal.copy(), "cx": width / 2.0, "cy": height / 2.0,
            "width": np.round(width).astype(np.int64), "height": np.round(height).astype(np.int64),
            "pose_source": poses.path, "convention": "opengl",
        }  # fmt: skip

    def _colmap_geometry(self, stems: list[str]) -> dict[str, Any]:
        """Poses (OpenCV axes) and intrinsics of every view from sparse/0, matched by file stem."""
        sparse = self.data_dir / "sparse" / "0"
        if not sparse.is_dir():
            raise DataParserError(sparse, "COLMAP model folder not found (pose_source='colmap')")
        cam_path, cameras = colmap.read_cameras(sparse)
        img_path, images = colmap.read_images(sparse)
        by_stem = {Path(im.name).stem: im for im in images.values()}
        c2w, intr = [], []
        for stem in stems:
            image = by_stem.get(stem)
            if image is None:
                raise DataParserError(
                    img_path, f"has no image named {stem} (every view needs a pose; or use --pose-source poses_bounds)"
                )
            if image.camera_id not in cameras:
                raise DataParserError(img_path, f"image {image.name} uses camera {image.camera_id}, not in cameras")
            c2w.append(colmap.camera_to_world(image, img_path))
            intr.append(colmap.intrinsics(cameras[image.camera_id], cam_path))
        types = {i.camera_type for i in intr}
        if types != {CameraType.PERSPECTIVE}:
            raise DataParserError(
                cam_path, f"D2RF views must be perspective cameras, got {sorted(t.name for t in types)}"
            )
        distortion = np.stack([i.distortion for i in intr])
        return {
            "c2w": np.stack(c2w), "convention": "opencv", "pose_source": img_path,
            "fx": np.array([i.fx for i in intr]), "fy": np.array([i.fy for i in intr]),
            "cx": np.array([i.cx for i in intr]), "cy": np.array([i.cy for i in intr]),
            "width": np.array([i.width for i in intr]), "height": np.array([i.height for i in intr]),
            "distortion": distortion if np.any(distortion) else None,
        }  # fmt: skip

    def _sfm_points(self) -> tuple[Any, Path]:
        sparse = self.data_dir / "sparse" / "0"
        source = sparse / "points3D.bin"
        if str(self.config.seed_points).strip().lower() not in ("auto", "sfm"):
            return None, source
        if not ((sparse / "points3D.bin").is_file() or (sparse / "points3D.txt").is_file()):
            CONSOLE.log(f"[yellow]{source} not found; seed points are drawn at random in the camera frustums")
            return None, source
        source, xyz, rgb = colmap.read_points(sparse)
        return (xyz, rgb), source


d2rf_dataparser = DataParserSpecification(
    config=D2RFDataParserConfig(),
    description="D2RF defocused dynamic scenes (left views train on bokeh images, right views test on sharp ones).",
)
