"""D-NeRF dataparser (``dynsplat-dnerf``): Blender-style synthetic dynamic scenes.

Layout::

    DATA/transforms_{train,val,test}.json   {"camera_angle_x": float,
                                             "frames": [{"file_path": "./train/r_000", "time": float,
                                                         "transform_matrix": 4x4 OpenGL camera-to-world}, ...]}
    DATA/train/r_000.png ...                RGBA images (transparent background)

``file_path`` may omit the image extension (D-NeRF does; ``.png`` is assumed) and is relative to ``DATA``. Times are
mapped to [0, 1] with one range over all three splits; ``metadata["num_frames"]`` is the number of distinct train
times whichever split is parsed (so transforms_train.json is always read). nerfstudio's cameras use the OpenGL
convention too, so poses go in unchanged apart from ``scale_factor``.

Everything else comes from the shared base (``split_indices.json``, ``train_fraction`` / ``train_count``, the
orientation options), with D-NeRF's defaults: poses as given (no orientation), scale = ``scale_factor``, the
``±scene_bound`` box, and only the parsed split's images needed. Frame indices (for ``split_indices.json``) run over
``transforms_train.json``, then ``transforms_val.json`` (when it exists), then ``transforms_test.json``.
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
from .errors import DataParserError, MissingSplitError
from .files import IMAGE_EXTENSIONS, load_json
from .scene import SPLITS, SceneFrames


@dataclass
class DNeRFDataParserConfig(DynsplatDataParserConfig):
    """D-NeRF (Blender synthetic dynamic scenes) dataparser config."""

    _target: type = field(default_factory=lambda: DNeRF)
    """Parser class to instantiate."""
    data: Path = Path("data/dnerf/lego")
    """Dataset folder holding transforms_{train,val,test}.json and the images."""
    scene_bound: float = 1.5
    """Half side of the cubic scene box before scale_factor (D-NeRF scenes fit in [-1.5, 1.5]^3)."""
    eval_split: Literal["test", "val"] = "test"
    """Which file the test split (what ns-eval scores) reads: ``test`` (transforms_test.json) or ``val``
    (transforms_val.json). Choose settings on ``val`` and report ``test``; training-time evaluation reads val."""


@dataclass
class _Frame:
    image: Path
    time: float
    c2w: np.ndarray  # [4, 4] OpenGL camera-to-world, dataset units
    where: str  # "frame 3 (./train/r_003)", for error messages


@dataclass
class _TransformsFile:
    source: Path
    camera_angle_x: float
    frames: list[_Frame]


def _image_path(data: Path, file_path: str) -> Path:
    """``file_path`` (with or without extension, leading ``./`` allowed) resolved against ``data``."""
    rel = Path(file_path)  # Path drops a leading "./" by itself
    if rel.suffix.lower() not in IMAGE_EXTENSIONS:  # D-NeRF's own files omit ".png"
        rel = rel.with_name(rel.name + ".png")
    return data / rel


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _parse_frame(data: Path, source: Path, index: int, frame: Any) -> _Frame:
    """Validate one entry of ``frames``; every problem raises :class:`DataParserError` naming ``source``."""
    if not isinstance(frame, dict):
        raise DataParserError(source, f"frame {index} is not a JSON object")
    file_path = frame.get("file_path")
    if not isinstance(file_path, str) or not file_path.strip():
        raise DataParserError(source, f"frame {index} has no 'file_path' string")
    where = f"frame {index} ({file_path})"
    if "time" not in frame:
        raise DataParserError(source, f"{where} has no 'time'")
    time = frame["time"]
    if not _is_number(time) or not math.isfinite(time):
        raise DataParserError(source, f"{where}: 'time' must be a finite number, got {time!r}")
    if "transform_matrix" not in frame:
        raise DataParserError(source, f"{where} has no 'transform_matrix'")
    try:
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataParserError(source, f"{where}: 'transform_matrix' is not a 4x4 matrix of numbers") from None
    if c2w.shape != (4, 4):
        raise DataParserError(source, f"{where}: 'transform_matrix' must be 4x4, got shape {list(c2w.shape)}")
    if not np.isfinite(c2w).all():
        raise DataParserError(source, f"{where}: 'transform_matrix' contains NaN or inf")
    return _Frame(image=_image_path(data, file_path), time=float(time), c2w=c2w, where=where)


def read_transforms(data: Path, source: Path) -> _TransformsFile:
    """Read and validate one ``transforms_*.json`` (image files are checked later, only for the split in use).

    Args:
        data: Dataset folder (``file_path`` is relative to it).
        source: The JSON file.

    Raises:
        DataParserError: Missing or malformed file, missing/invalid ``camera_angle_x``, empty ``frames``, or a bad
            frame (see :func:`_parse_frame`).
    """
    meta = load_json(source)
    if not isinstance(meta, dict):
        raise DataParserError(source, "expected a JSON object with 'camera_angle_x' and 'frames'")
    if "camera_angle_x" not in meta:
        raise DataParserError(source, "missing 'camera_angle_x' (horizontal field of view in radians)")
    angle = meta["camera_angle_x"]
    if not _is_number(angle) or not 0.0 < angle < math.pi:
        raise DataParserError(source, f"'camera_angle_x' must be a number in (0, pi) radians, got {angle!r}")
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataParserError(source, "missing 'frames' list")
    if not frames:
        raise DataParserError(source, "'frames' is empty")
    parsed = [_parse_frame(data, source, i, frame) for i, frame in enumerate(frames)]
    return _TransformsFile(source=source, camera_angle_x=float(angle), frames=parsed)


def transforms_file(data: Path, split: str) -> Path:
    """The JSON that serves ``split`` ("val" → transforms_test.json when transforms_val.json is missing).

    Raises:
        ValueError: ``split`` is not "train", "val" or "test".
        DataParserError: Neither transforms_val.json nor transforms_test.json exists (for "val").
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    path = data / f"transforms_{split}.json"
    if split == "val" and not path.exists():
        fallback = data / "transforms_test.json"
        if not fallback.exists():
            raise MissingSplitError(path, "file not found (and no transforms_test.json to fall back to)", split)
        CONSOLE.log(f"[yellow]{path} not found; using {fallback.name} for the val split")
        return fallback
    return path


def read_dnerf(data: Path, split: str, scene_bound: float) -> SceneFrames:
    """Every frame of the D-NeRF transforms files that exist, in the order train, val, test.

    ``transforms_train.json`` (its times give ``num_frames``) and the parsed split's file are required; the val
    split falls back to ``transforms_test.json`` when ``transforms_val.json`` is missing.

    Args:
        data: The dataset folder.
        split: The split being parsed.
        scene_bound: Half side of the cubic scene box (before ``scale_factor``).

    Raises:
        DataParserError: A required file is missing, or any existing file is malformed (see :func:`read_transforms`).
    """
    requested = transforms_file(data, split)  # unknown split / missing file errors; val → test fallback
    train = data / "transforms_train.json"
    if split != "train" and not train.exists():
        raise DataParserError(train, f"file not found (its times give num_frames, even for the {split} split)")
    sources = {name: data / f"transforms_{name}.json" for name in SPLITS}
    sources[split] = requested
    if not sources["val"].exists():
        sources["val"] = sources["test"]
    frames, angles, splits, seen = [], [], {}, {}
    for name in SPLITS:
        path = sources[name]
        if path not in seen and (path.exists() or name in (split, "train")):  # required ones are read (and fail)
            meta = read_transforms(data, path)
            seen[path] = list(range(len(frames), len(frames) + len(meta.frames)))
            frames += meta.frames
            angles += [meta.camera_angle_x] * len(meta.frames)
        splits[name] = seen.get(path, [])
    ones = np.ones(len(frames))
    return SceneFrames(
        image_filenames=[f.image for f in frames],
        c2w=np.stack([f.c2w for f in frames]),
        fov_x=np.asarray(angles),
        fx=ones, fy=ones, cx=ones, cy=ones, width=ones.astype(np.int64), height=ones.astype(np.int64),
        splits=splits,
        split_source=requested,
        pose_source=requested,
        times=np.asarray([f.time for f in frames], dtype=np.float64),
        scene_bound=float(scene_bound),
    )  # fmt: skip


@dataclass
class DNeRF(DynsplatDataParser):
    """Reads D-NeRF's ``transforms_{train,val,test}.json``; ``val`` falls back to ``test`` when it is missing."""

    config: DNeRFDataParserConfig
    includes_time: bool = True

    def __init__(self, config: DNeRFDataParserConfig):
        super().__init__(config=config)
        if not (_is_number(config.scene_bound) and 0.0 < config.scene_bound < math.inf):
            raise DynsplatConfigError(f"scene_bound={config.scene_bound!r}: must be a finite number > 0")
        if config.eval_split not in ("test", "val"):
            raise DynsplatConfigError(f"eval_split={config.eval_split!r}: must be 'test' or 'val'")

    def read_scene(self, split: str) -> SceneFrames:
        """Every frame of the transforms files (see :func:`read_dnerf`); read again for each split.

        With ``eval_split`` "val" the test split is transforms_val.json's frames (ns-eval then scores val)."""
        if split == "test" and self.config.eval_split == "val":
            frames = read_dnerf(self.data_dir, "val", self.config.scene_bound)
            frames.splits["test"] = frames.splits["val"]
            return frames
        return read_dnerf(self.data_dir, split, self.config.scene_bound)


dnerf_dataparser = DataParserSpecification(
    config=DNeRFDataParserConfig(),
    description="D-NeRF synthetic dynamic scenes (transforms_{train,val,test}.json with per-frame 'time').",
)
