"""LLFF dataparser (``dynsplat-llff``): forward-facing captures with ``poses_bounds.npy``.

Layout (as LLFF's ``imgs2poses.py`` writes it)::

    DATA/poses_bounds.npy       N x 17: per image (sorted by name) a 3x5 matrix [R | t | (h, w, focal)] with rotation
                                columns [down, right, back], then near and far depth bounds
    DATA/images/                full-resolution images (png/jpg), sorted by name = row order
    DATA/images_{k}/            optional copies shrunk by k (LLFF's ``minify``)
    DATA/sparse/0/points3D.bin  optional COLMAP points (the world of the poses), used as seed points

Frame ``i`` is row ``i`` of ``poses_bounds.npy`` (the indices ``split_indices.json`` refers to). Images come from
``images_{downscale_factor}/`` when that folder exists, else from ``images/`` shrunk on the fly into the cache; with
``downscale_factor`` 1 and no ``images/``, the smallest ``images_{k}/`` holding one image per pose is used. Poses go
from LLFF's [down, right, back] axes to OpenGL, then nerfstudio's orientation ('up', centred on the cameras); the
scale is NeRF's ``bd_factor`` rescale (nearest bound × bd_factor = 1). Test images are every ``llffhold``-th image
(0, 8, 16, ...). Static by default; ``time_from_order`` makes a video-like sequence (time = frame order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.errors import DynsplatConfigError

from .base import DynsplatDataParser, DynsplatDataParserConfig
from .colmap import read_points
from .errors import DataParserError
from .files import list_images
from .poses_bounds import bounds_scale, check_count, downscaled_folders, load_poses_bounds
from .scene import SceneFrames
from .subsets import holdout_split


@dataclass
class LLFFDataParserConfig(DynsplatDataParserConfig):
    """LLFF (``poses_bounds.npy``) dataparser config."""

    _target: type = field(default_factory=lambda: LLFF)
    """Parser class to instantiate."""
    data: Path = Path("data/nerf_llff_data/fern")
    """Dataset folder holding poses_bounds.npy and images/ (or images_{k}/)."""
    llffhold: int = 8
    """Every llffhold-th image (0, llffhold, 2·llffhold, ...) is a test image (NeRF/3DGS protocol); 0: no test."""
    bd_factor: float | None = 0.75
    """Rescale so that the nearest near bound × bd_factor = 1 (NeRF's LLFF loader); None keeps the file's units."""
    time_from_order: bool = False
    """Give frame i the time i / (N - 1) for video-like LLFF sequences; off: a static scene without times."""
    orientation_method: Literal["up", "pca", "vertical", "none"] = "up"
    """Rotate the world so the mean camera up is +z (nerfstudio's auto_orient_and_center_poses); see the base."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """Put the origin at the mean camera centre (see the base)."""
    alpha_color: str = "none"
    """LLFF images are opaque: no background compositing (see the base for the values)."""
    seed_points: str = "auto"
    """'auto': sparse/0/points3D.bin when present, else random points in the camera frustums between the near and
    far bounds; also 'random', 'sfm' or a PLY path (see the base)."""


@dataclass
class LLFF(DynsplatDataParser):
    """Reads an LLFF capture (see the module docstring)."""

    config: LLFFDataParserConfig
    includes_time: bool = False

    def __init__(self, config: LLFFDataParserConfig):
        super().__init__(config=config)
        if int(config.llffhold) != config.llffhold or config.llffhold < 0:
            raise DynsplatConfigError(f"llffhold={config.llffhold!r}: must be an integer >= 0")
        if config.bd_factor is not None and not config.bd_factor > 0:
            raise DynsplatConfigError(f"bd_factor={config.bd_factor!r}: must be > 0 (or None)")
        self.includes_time = bool(config.time_from_order)
        self._scene: SceneFrames | None = None

    def image_folder(self, num_poses: int) -> tuple[Path, int]:
        """``(folder, downscale still to apply)`` for the configured ``downscale_factor`` (see the module doc)."""
        data, factor = self.data_dir, int(self.config.downscale_factor)
        shrunk = data / f"images_{factor}"
        if factor > 1 and shrunk.is_dir():
            count = len(list_images(shrunk))
            if count != num_poses and (data / "images").is_dir():
                raise DataParserError(
                    shrunk, f"holds {count} images but poses_bounds.npy has {num_poses} poses; complete or remove it "
                    "(without it, images/ is shrunk on the fly)",
                )  # fmt: skip
            return shrunk, 1
        if (data / "images").is_dir():
            return data / "images", factor
        if factor == 1:
            for k, folder in downscaled_folders(data):
                if len(list_images(folder)) == num_poses:
                    CONSOLE.log(f"[yellow]{data / 'images'} not found; using {folder.name}/ (downscaled x{k})")
                    return folder, 1
        where = f" (and no images_{factor}/)" if factor > 1 else " (and no images_{k}/ with one image per pose)"
        raise DataParserError(data / "images", f"image folder not found{where}")

    def _read(self) -> SceneFrames:
        cfg = self.config
        poses = load_poses_bounds(self.data_dir / "poses_bounds.npy")
        n = len(poses)
        folder, downscale = self.image_folder(n)
        files = list_images(folder)
        check_count(files, folder, n, poses.path)
        height, width, focal = poses.hwf[:, 0], poses.hwf[:, 1], poses.hwf[:, 2]
        points, points_source = self._sfm_points()
        times = np.arange(n, dtype=np.float64) if cfg.time_from_order else None
        return SceneFrames(
            image_filenames=files,
            c2w=poses.c2w,
            fx=focal.copy(),
            fy=focal.copy(),
            cx=width / 2.0,
            cy=height / 2.0,
            width=np.round(width).astype(np.int64),
            height=np.round(height).astype(np.int64),
            splits=holdout_split(n, int(cfg.llffhold), hold_multiples=True),
            split_source=poses.path,
            pose_source=poses.path,
            times=times,
            time_mode="minmax",
            bounds=poses.bounds,
            unit_scale=bounds_scale(poses.bounds, cfg.bd_factor),
            points=points,
            points_source=points_source,
            downscale=downscale,
            metadata={"image_folder": folder},
        )

    def _sfm_points(self) -> tuple[Any, Path]:
        """COLMAP points from sparse/0 when seed_points asks for them and they exist (else None)."""
        sparse = self.data_dir / "sparse" / "0"
        source = sparse / "points3D.bin"
        if str(self.config.seed_points).strip().lower() not in ("auto", "sfm"):
            return None, source
        if not ((sparse / "points3D.bin").is_file() or (sparse / "points3D.txt").is_file()):
            return None, source
        source, xyz, rgb = read_points(sparse)
        return (xyz, rgb), source


llff_dataparser = DataParserSpecification(
    config=LLFFDataParserConfig(),
    description="LLFF forward-facing captures (poses_bounds.npy + images/, every 8th image held out for test).",
)
