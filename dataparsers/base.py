"""The shared base of every dynsplat dataparser: config knobs, background colours, and the parser base class.

Every dynsplat dataparser (D-NeRF, LLFF, D2RF, EyefulTower) subclasses :class:`DynsplatDataParserConfig` and
:class:`DynsplatDataParser` so that conventions are handled once:

* A format implements :meth:`DynsplatDataParser.read_scene`, returning every frame as a :class:`~.scene.SceneFrames`;
  the base (:func:`.outputs.build_outputs`) does the rest: OpenCV/LLFF camera axes to OpenGL, nerfstudio's
  ``auto_orient_and_center_poses``, scale, the split policy (:mod:`.subsets`: the format's split, a
  ``split_indices.json`` override, ``train_fraction``/``train_count``), image checks, times, seed points, masks and
  depth in ``metadata``.
* Bad input raises :class:`~.errors.DataParserError` whose message names the offending file and the problem.
* Times are mapped to [0, 1] with one range shared by all splits (:mod:`.times`).
* Seed points for splatfacto-style models come from the format's SfM points, a uniform draw in the scene box (or in
  the camera frustums), or a PLY file (see :mod:`.points`), reported as ``metadata["points3D_xyz"]`` (float32
  ``[M, 3]``) and ``metadata["points3D_rgb"]`` (uint8 ``[M, 3]``), which nerfstudio's pipeline hands to the model,
  next to ``metadata["num_frames"]``.
* The data folder is only ever read. Downscaled images are cached under ``$XDG_CACHE_HOME/dynsplat_ns/<hash>/``
  (see :mod:`.images`).

Modules of this package form layers (a module imports only from layers below it; ``tests/dataparsers/
test_structure.py`` checks there is no cycle):

1. leaves: :mod:`.errors`, :mod:`.files` (folders, JSON, image listing), :mod:`.times`, :mod:`.images`,
   :mod:`.points`, :mod:`.scene` (:class:`~.scene.SceneFrames` and geometry), :mod:`.colmap`;
2. shared policy: :mod:`.subsets` (splits), :mod:`.poses_bounds`, :mod:`.outputs` (SceneFrames → outputs);
3. :mod:`.base` (this module);
4. formats: :mod:`.dnerf`, :mod:`.llff`, :mod:`.d2rf`, :mod:`.eyeful`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs

from dynsplat_ns.errors import DynsplatConfigError

from .files import require_dir
from .outputs import build_outputs
from .scene import SPLITS, SceneFrames
from .subsets import validate_subset_options

__all__ = [
    "NAMED_COLORS",
    "DynsplatDataParser",
    "DynsplatDataParserConfig",
    "parse_alpha_color",
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

#: Metadata key of the blur a dataparser knows its training images have: ``{kind: why}`` (e.g. D2RF's bokeh images:
#: ``{"defocus": "..."}``); dynsplat-deblur turns those kinds on by itself unless a flag says otherwise.
TRAINING_BLUR_KEY = "training_blur"


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
        raise DynsplatConfigError(
            f"alpha_color={spec!r}: expected 'white', 'black', 'none' or three comma-separated floats in [0, 1]"
        )
    return torch.tensor(values, dtype=torch.float32)


def validate_config(config: DynsplatDataParserConfig) -> None:
    """Check the shared config values, raising ``ValueError`` that names the bad option."""
    if not (isinstance(config.scale_factor, (int, float)) and math.isfinite(config.scale_factor)):
        raise DynsplatConfigError(f"scale_factor={config.scale_factor!r}: must be a finite number")
    if config.scale_factor <= 0:
        raise DynsplatConfigError(f"scale_factor={config.scale_factor!r}: must be > 0")
    if int(config.downscale_factor) != config.downscale_factor or config.downscale_factor < 1:
        raise DynsplatConfigError(f"downscale_factor={config.downscale_factor!r}: must be an integer >= 1")
    if config.num_random_points < 0:
        raise DynsplatConfigError(f"num_random_points={config.num_random_points!r}: must be >= 0")
    if config.time_normalization not in ("auto", "minmax"):
        raise DynsplatConfigError(f"time_normalization={config.time_normalization!r}: must be 'auto' or 'minmax'")
    if config.orientation_method not in ("up", "pca", "vertical", "none"):
        raise DynsplatConfigError(
            f"orientation_method={config.orientation_method!r}: must be 'up', 'pca', 'vertical' or 'none'"
        )
    if config.center_method not in ("poses", "focus", "none"):
        raise DynsplatConfigError(f"center_method={config.center_method!r}: must be 'poses', 'focus' or 'none'")
    validate_subset_options(config.train_fraction, config.train_count)
    parse_alpha_color(config.alpha_color)


# ----------------------------------------------------------------------------------------------------------------------
# Parser base class
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DynsplatDataParser(DataParser):
    """Base class for dynsplat dataparsers: a format implements :meth:`read_scene` (every frame as
    :class:`~.scene.SceneFrames`) and the base builds nerfstudio's outputs (:func:`.outputs.build_outputs`)."""

    config: DynsplatDataParserConfig
    includes_time: bool = True

    def __init__(self, config: DynsplatDataParserConfig):
        super().__init__(config=config)
        self.__post_init__()

    def __post_init__(self) -> None:
        """Check the shared options and parse ``alpha_color`` (also run by the ``__init__`` that ``@dataclass``
        writes for a subclass that defines none, so a format need not write one)."""
        validate_config(self.config)
        self.alpha_color: torch.Tensor | None = parse_alpha_color(self.config.alpha_color)

    def read_scene(self, split: str) -> SceneFrames:
        """Read every frame of the dataset (the format-specific part; see :class:`~.scene.SceneFrames`).

        A format that reads the same files for every split implements ``_read()`` instead: it is read once and
        shared by the splits.

        Args:
            split: The split being parsed, for formats that only need some files for it (most read everything).
        """
        read = getattr(self, "_read", None)
        if read is None:
            raise NotImplementedError(f"{type(self).__name__} does not read any dataset format; use a subclass")
        if getattr(self, "_scene", None) is None:
            self._scene: SceneFrames | None = read()
        return self._scene

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Any) -> DataparserOutputs:
        """Outputs for ``split`` ("train", "val" or "test") from :meth:`read_scene` (see :mod:`.outputs`)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return build_outputs(self.read_scene(split), split, self.config, self.alpha_color)

    @property
    def data_dir(self) -> Path:
        """The dataset folder, checked to exist (raises :class:`~.errors.DataParserError` otherwise)."""
        return require_dir(Path(self.config.data))
