"""Shared dataparser machinery: config knobs, background colours, file checks, time normalisation, parser base class.

Every dynsplat dataparser (D-NeRF, LLFF, D2RF, EyefulTower) subclasses :class:`DynsplatDataParserConfig` and
:class:`DynsplatDataParser` so that conventions are handled once:

* A format implements :meth:`DynsplatDataParser.read_scene`, returning every frame as a :class:`~.scene.SceneFrames`;
  the base (:mod:`.outputs`) does the rest: OpenCV/LLFF camera axes to OpenGL, nerfstudio's
  ``auto_orient_and_center_poses``, scale, the split policy (:mod:`.subsets`: the format's split, a
  ``split_indices.json`` override, ``train_fraction``/``train_count``), image checks, times, seed points, masks and
  depth in ``metadata``.

* Bad input raises :class:`~.errors.DataParserError` whose message names the offending file and the problem
  (re-exported here since every parser uses it).
* Times are mapped to [0, 1] with one range shared by all splits (:func:`normalize_times`).
* Seed points for splatfacto-style models come from a uniform draw in the scene box or from a PLY file (see
  :mod:`.points`), reported as ``metadata["points3D_xyz"]`` (float32 ``[M, 3]``) and ``metadata["points3D_rgb"]``
  (uint8 ``[M, 3]``), which nerfstudio's pipeline hands to the model, next to ``metadata["num_frames"]``.
* The data folder is only ever read. Downscaled images are cached under ``$XDG_CACHE_HOME/dynsplat_ns/<hash>/``
  (see :mod:`.images`).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig
from nerfstudio.data.scene_box import SceneBox

from .errors import DataParserError
from .images import check_image_sizes, downscale_images
from .points import DEFAULT_POINT_RGB, random_seed_points, read_ply_points, transform_points
from .scene import SPLITS, SceneFrames
from .subsets import validate_subset_options

__all__ = [
    "NAMED_COLORS",
    "DataParserError",
    "DynsplatDataParser",
    "DynsplatDataParserConfig",
    "count_frames",
    "load_json",
    "normalize_times",
    "parse_alpha_color",
    "require_dir",
    "validate_config",
]

#: Named background colours accepted by ``alpha_color`` (besides ``"none"`` and ``"r,g,b"``).
NAMED_COLORS = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}


@dataclass
class DynsplatDataParserConfig(DataParserConfig):
    """Options shared by every dynsplat dataparser.

    The data folder is only ever read. Downscaled images are cached under ``cache_dir`` in a sub-folder named by a
    hash of the data folder's absolute path and the factor. A relative ``seed_points`` path is looked up in the data
    folder first, then in the working directory. Times use one range shared by all splits; constant times become 0.
    """

    _target: type = field(default_factory=lambda: DynsplatDataParser)
    """Parser class to instantiate (each dataset's config overrides this)."""
    data: Path = Path("data")
    """Dataset folder (read only; derived files go to cache_dir)."""
    scale_factor: float = 1.0
    """Multiply world coordinates (camera positions, scene box, seed points) by this."""
    downscale_factor: int = 1
    """Shrink images by this integer factor; resized copies are cached in cache_dir, never in the data folder."""
    cache_dir: Path | None = None
    """Cache root for downscaled images (default: $XDG_CACHE_HOME/dynsplat_ns, else ~/.cache/dynsplat_ns)."""
    alpha_color: str = "white"
    """Background for RGBA images: 'white', 'black', 'none' (keep alpha) or 'r,g,b' floats in [0, 1]."""
    seed_points: str = "random"
    """Initial points: 'random' (uniform in the scene box, or in the camera frustums between near/far bounds when
    the format has them), 'sfm' (the format's SfM points), 'auto' (SfM points when present, else random) or a PLY
    file (x,y,z[,red,green,blue]) in dataset coords."""
    num_random_points: int = 2_000
    """Number of seed points drawn when seed_points is 'random' (2000, as 4DGaussians' D-NeRF random init)."""
    random_seed: int = 0
    """Seed for the random seed points (same seed, same points)."""
    time_normalization: Literal["auto", "minmax"] = "auto"
    """Times to [0, 1]: 'auto' keeps times already in [0, 1] else rescales (warns); 'minmax' always rescales."""
    orientation_method: Literal["up", "pca", "vertical", "none"] = "none"
    """Rotate the world with nerfstudio's auto_orient_and_center_poses: 'up' (mean camera up → +z), 'pca',
    'vertical', or 'none' (keep the dataset's axes). Computed on all frames, so every split shares it."""
    center_method: Literal["poses", "focus", "none"] = "none"
    """Move the origin to the mean camera centre ('poses'), the cameras' focus of attention ('focus') or nowhere."""
    auto_scale_poses: bool = False
    """Scale so that the farthest camera centre is 1 from the origin (before scale_factor)."""
    train_fraction: float = 1.0
    """Keep this fraction of the training frames, evenly spaced; the first and last are always kept."""
    train_count: int | None = None
    """Keep this many training frames (>= 2), evenly spaced, first and last included; None keeps all."""
    split_indices: Path | None = None
    """JSON {"train": [...], "test": [...]} (optional "val") of frame indices that overrides the format's split
    (relative: data folder first). Default: DATA/split_indices.json when it exists."""


# ----------------------------------------------------------------------------------------------------------------------
# Config values
# ----------------------------------------------------------------------------------------------------------------------


def parse_alpha_color(spec: str | Sequence[float] | None) -> torch.Tensor | None:
    """Parse an ``alpha_color`` setting.

    Args:
        spec: ``"white"``, ``"black"``, another name in :data:`NAMED_COLORS`, ``"none"``/``None``, ``"r,g,b"``
            floats in [0, 1], or a sequence of three floats.

    Returns:
        Float32 tensor ``[3]`` in [0, 1], or None for no compositing.

    Raises:
        ValueError: The setting is not understood (the message names the ``alpha_color`` option).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("none", "", "null"):
            return None
        if text in NAMED_COLORS:
            return torch.tensor(NAMED_COLORS[text], dtype=torch.float32)
        parts = [p for p in re.split(r"[,\s]+", text.strip("()[] ")) if p]
    else:
        parts = list(spec)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(
            f"alpha_color={spec!r}: expected 'white', 'black', 'none' or three comma-separated floats in [0, 1]"
        )
    return torch.tensor(values, dtype=torch.float32)


def validate_config(config: DynsplatDataParserConfig) -> None:
    """Check the shared config values, raising ``ValueError`` that names the bad option."""
    if not (isinstance(config.scale_factor, (int, float)) and math.isfinite(config.scale_factor)):
        raise ValueError(f"scale_factor={config.scale_factor!r}: must be a finite number")
    if config.scale_factor <= 0:
        raise ValueError(f"scale_factor={config.scale_factor!r}: must be > 0")
    if int(config.downscale_factor) != config.downscale_factor or config.downscale_factor < 1:
        raise ValueError(f"downscale_factor={config.downscale_factor!r}: must be an integer >= 1")
    if config.num_random_points < 0:
        raise ValueError(f"num_random_points={config.num_random_points!r}: must be >= 0")
    if config.time_normalization not in ("auto", "minmax"):
        raise ValueError(f"time_normalization={config.time_normalization!r}: must be 'auto' or 'minmax'")
    if config.orientation_method not in ("up", "pca", "vertical", "none"):
        raise ValueError(f"orientation_method={config.orientation_method!r}: must be 'up', 'pca', 'vertical' or 'none'")
    if config.center_method not in ("poses", "focus", "none"):
        raise ValueError(f"center_method={config.center_method!r}: must be 'poses', 'focus' or 'none'")
    validate_subset_options(config.train_fraction, config.train_count)
    parse_alpha_color(config.alpha_color)


# ----------------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------------


def require_dir(path: Path, what: str = "data folder") -> Path:
    """Return ``path`` if it is a directory, else raise :class:`DataParserError` naming it."""
    path = Path(path)
    if not path.exists():
        raise DataParserError(path, f"{what} not found")
    if not path.is_dir():
        raise DataParserError(path, f"{what} is not a directory")
    return path


def load_json(path: Path) -> Any:
    """Read a JSON file.

    Raises:
        DataParserError: The file is missing, unreadable or not valid JSON (with line and column).
    """
    path = Path(path)
    if not path.exists():
        raise DataParserError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataParserError(path, f"cannot read file: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataParserError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


# ----------------------------------------------------------------------------------------------------------------------
# Times
# ----------------------------------------------------------------------------------------------------------------------


def normalize_times(
    times: Sequence[float] | np.ndarray,
    t_range: tuple[float, float] | None = None,
    mode: Literal["auto", "minmax"] = "auto",
    source: str | Path | None = None,
) -> np.ndarray:
    """Map timestamps to [0, 1].

    Args:
        times: Raw times ``[N]``.
        t_range: ``(min, max)`` over *all* splits so that every split lands on the same scale (default: this
            array's own range).
        mode: ``"auto"`` leaves times already inside [0, 1] unchanged and min-max rescales otherwise (warning that
            it did); ``"minmax"`` always rescales so ``min → 0`` and ``max → 1``.
        source: Named in the warning (e.g. the dataset folder).

    Returns:
        Float32 ``[N]`` in [0, 1]. Constant times (``max == min``) become all zeros.

    Raises:
        ValueError: A time or the range is not finite, or ``mode`` is unknown.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if mode not in ("auto", "minmax"):
        raise ValueError(f"unknown time normalisation mode {mode!r}")
    if t.size == 0:
        return t.astype(np.float32)
    lo, hi = (float(t.min()), float(t.max())) if t_range is None else (float(t_range[0]), float(t_range[1]))
    if not (np.isfinite(t).all() and math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("times must be finite")
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros(t.shape, dtype=np.float32)
    inside_unit = lo >= 0.0 and hi <= 1.0
    if mode == "auto" and inside_unit:
        return t.astype(np.float32)
    if not inside_unit:
        where = f"{source}: " if source is not None else ""
        warnings.warn(
            f"{where}times span [{lo:g}, {hi:g}], outside [0, 1]; rescaling them to [0, 1]", UserWarning, stacklevel=2
        )
    return np.clip((t - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def count_frames(times: Sequence[float] | np.ndarray | torch.Tensor | None) -> int:
    """Number of distinct times (at least 1; None counts as one frame, a static scene)."""
    if times is None:
        return 1
    values = times.detach().cpu().numpy() if isinstance(times, torch.Tensor) else np.asarray(times)
    return max(1, int(np.unique(values.reshape(-1)).size))


# ----------------------------------------------------------------------------------------------------------------------
# Parser base class
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DynsplatDataParser(DataParser):
    """Base class for dynsplat dataparsers: a format implements :meth:`read_scene` (every frame as
    :class:`~.scene.SceneFrames`) and the base builds the outputs (:mod:`.outputs`). Parsers that still override
    ``_generate_dataparser_outputs`` use the helpers below (data-folder check, images, seed points, metadata)."""

    config: DynsplatDataParserConfig
    includes_time: bool = True

    def __init__(self, config: DynsplatDataParserConfig):
        super().__init__(config=config)
        validate_config(config)
        self.alpha_color: torch.Tensor | None = parse_alpha_color(config.alpha_color)

    def read_scene(self, split: str) -> SceneFrames:
        """Read every frame of the dataset (the format-specific part; see :class:`~.scene.SceneFrames`).

        Args:
            split: The split being parsed, for formats that only need some files for it (most read everything).
        """
        raise NotImplementedError(f"{type(self).__name__} does not read any dataset format; use a subclass")

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Any):
        """Outputs for ``split`` ("train", "val" or "test") from :meth:`read_scene` (see :mod:`.outputs`)."""
        from .outputs import build_outputs  # outputs imports this module

        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return build_outputs(self, self.read_scene(split), split)

    @property
    def data_dir(self) -> Path:
        """The dataset folder, checked to exist (raises :class:`DataParserError` otherwise)."""
        return require_dir(Path(self.config.data))

    def prepare_images(self, filenames: Sequence[Path]) -> tuple[list[Path], tuple[int, int]]:
        """Check images (existence, one size) and apply ``downscale_factor``.

        Args:
            filenames: Source images of one split.

        Returns:
            ``(filenames to load, (width, height) of those files)``.
        """
        width, height = check_image_sizes(filenames)
        factor = int(self.config.downscale_factor)
        if factor == 1:
            return list(map(Path, filenames)), (width, height)
        files = downscale_images(filenames, factor, Path(self.config.data), self.config.cache_dir)
        return files, (max(1, width // factor), max(1, height // factor))

    def seed_ply_path(self) -> Path | None:
        """The PLY named by ``seed_points`` (data folder first, then the working directory), or None for
        'random' / 'auto' / 'sfm' (formats with SfM points handle those in :mod:`.outputs`)."""
        spec = str(self.config.seed_points).strip()
        if spec.lower() in ("random", "auto"):
            return None
        if spec.lower() == "sfm":
            raise DataParserError(Path(self.config.data), "seed_points='sfm' but this dataset has no SfM points")
        path = Path(spec).expanduser()
        if not path.is_absolute() and (Path(self.config.data) / path).is_file():
            return Path(self.config.data) / path
        if not path.is_file():
            problem = "seed_points PLY file not found (looked in the data folder and the working directory)"
            raise DataParserError(path, problem)
        return path

    def seed_points(
        self, scene_box: SceneBox, transform: torch.Tensor | None = None, scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Seed points in our (transformed, scaled) world.

        Args:
            scene_box: Scene box in our world; random points are drawn inside it.
            transform: ``[3, 4]`` dataparser transform applied to PLY points (dataset world → ours).
            scale: Dataparser scale applied to PLY points after ``transform``.

        Returns:
            ``(xyz float32 [M, 3], rgb uint8 [M, 3])``.
        """
        ply = self.seed_ply_path()
        if ply is None:
            return random_seed_points(scene_box.aabb, self.config.num_random_points, self.config.random_seed)
        xyz, rgb = read_ply_points(ply)
        if rgb is None:
            rgb = np.full(xyz.shape, DEFAULT_POINT_RGB, dtype=np.uint8)
        return transform_points(torch.from_numpy(xyz), transform, scale), torch.from_numpy(rgb)

    def common_metadata(
        self,
        scene_box: SceneBox,
        transform: torch.Tensor | None = None,
        scale: float = 1.0,
        train_times: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """Metadata every dynsplat parser reports.

        Args:
            scene_box: Scene box in our world (random seed points are drawn inside it).
            transform: ``[3, 4]`` dataparser transform applied to PLY seed points.
            scale: Dataparser scale applied to PLY seed points.
            train_times: Normalised times of the *train* split, whichever split is being parsed, so that the model
                sees the same ``num_frames`` for every split (None: a static scene, one frame).
            points: Seed points ``(xyz, rgb)`` already chosen by the caller (default: :meth:`seed_points`).

        Returns:
            ``points3D_xyz`` (float32 ``[M, 3]``), ``points3D_rgb`` (uint8 ``[M, 3]``), ``times_normalized`` (True),
            ``num_frames`` (number of distinct training times, at least 1) and, unless ``alpha_color`` is 'none',
            ``background_color`` (float32 ``[3]``).
        """
        xyz, rgb = self.seed_points(scene_box, transform, scale) if points is None else points
        metadata: dict[str, Any] = {
            "points3D_xyz": xyz,
            "points3D_rgb": rgb,
            "times_normalized": True,
            "num_frames": count_frames(train_times),
        }
        if self.alpha_color is not None:
            metadata["background_color"] = self.alpha_color.clone()
        return metadata
