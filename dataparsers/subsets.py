"""Split policy shared by every dynsplat dataparser: hold-out splits, ``split_indices.json`` overrides, frame subsets.

Order of application (see :func:`resolve_splits`):

1. The format's own split (e.g. LLFF's every-8th hold-out, D2RF's left/right, EyefulTower's ``splits.json``).
2. A ``split_indices.json`` (``{"train": [...], "test": [...]}``, optional ``"val"``) replaces it when given or when
   the data folder holds one. Indices refer to the parser's frame list (documented by each parser).
3. ``train_fraction`` / ``train_count`` thin the *training* frames evenly, always keeping the first and the last.

``val`` is the test split unless the format (or the JSON) has a real val split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynsplat_ns.errors import DynsplatConfigError

from .errors import DataParserError
from .files import load_json

#: File looked up in the data folder when no ``split_indices`` path is configured.
SPLIT_INDICES_NAME = "split_indices.json"


def holdout_split(num_frames: int, every: int, hold_multiples: bool = True) -> dict[str, list[int]]:
    """Every ``every``-th frame (indices 0, every, 2·every, ...) goes to one side, the rest to the other.

    Args:
        num_frames: Number of frames.
        every: Hold-out period; 0 (or less) puts every frame in train and none in test.
        hold_multiples: True: the multiples are *test* (LLFF / 3DGS ``llffhold``); False: the multiples are *train*
            (D2RF's ``llffhold``: with 2, even = left views train, odd = right views test).

    Returns:
        ``{"train": [...], "test": [...]}``.
    """
    if every <= 0:
        return {"train": list(range(num_frames)), "test": []}
    multiples = [i for i in range(num_frames) if i % every == 0]
    others = [i for i in range(num_frames) if i % every != 0]
    return {"train": others, "test": multiples} if hold_multiples else {"train": multiples, "test": others}


def _index_list(path: Path, key: str, value: object, num_frames: int) -> list[int]:
    if not isinstance(value, list):
        raise DataParserError(path, f"'{key}' must be a list of frame indices, got {type(value).__name__}")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise DataParserError(path, f"'{key}' holds {item!r}; frame indices must be integers")
        if not 0 <= item < num_frames:
            raise DataParserError(path, f"'{key}' index {item} is out of range: the scene has {num_frames} frames")
        out.append(item)
    if len(set(out)) != len(out):
        dup = sorted({i for i in out if out.count(i) > 1})
        raise DataParserError(path, f"'{key}' lists frame indices more than once: {dup[:10]}")
    return out


def read_split_indices(path: Path, num_frames: int) -> dict[str, list[int]]:
    """Read and validate a ``split_indices.json``.

    Args:
        path: The JSON file: ``{"train": [int, ...], "test": [int, ...]}`` with an optional ``"val"`` list.
        num_frames: Number of frames the indices refer to.

    Returns:
        ``{"train", "test"[, "val"]}`` index lists (in the file's order).

    Raises:
        DataParserError: Missing or malformed file, missing keys, non-integer, repeated or out-of-range indices.
    """
    meta = load_json(path)
    if not isinstance(meta, dict):
        raise DataParserError(path, 'expected a JSON object {"train": [...], "test": [...]}')
    unknown = sorted(set(meta) - {"train", "val", "test"})
    if unknown:
        raise DataParserError(path, f"unknown keys {unknown}; expected 'train', 'test' and optionally 'val'")
    for key in ("train", "test"):
        if key not in meta:
            raise DataParserError(path, f"missing '{key}' list of frame indices")
    return {key: _index_list(path, key, meta[key], num_frames) for key in ("train", "val", "test") if key in meta}


def subset_evenly(indices: Sequence[int], fraction: float = 1.0, count: int | None = None) -> list[int]:
    """Keep an evenly spaced subset of ``indices``, always including the first and the last.

    Args:
        indices: Frame indices in their natural (time / capture) order.
        fraction: Keep ``ceil(fraction * len)`` of them (at least 2), in (0, 1].
        count: Keep this many instead (at least 2); None uses ``fraction``.

    Returns:
        The kept indices, in order. Lists of up to two frames are returned unchanged.
    """
    indices = list(indices)
    n = len(indices)
    keep = n if count is None else int(count)
    if count is None and fraction < 1.0:
        keep = math.ceil(fraction * n)
    keep = max(2, min(n, keep))
    if keep >= n:
        return indices
    picks = np.unique(np.round(np.linspace(0, n - 1, keep)).astype(int))
    return [indices[i] for i in picks]


def validate_subset_options(fraction: float, count: int | None) -> None:
    """Check ``train_fraction`` / ``train_count``, raising ``ValueError`` that names the option."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
        raise DynsplatConfigError(f"train_fraction={fraction!r}: must be in (0, 1]")
    if count is not None:
        if isinstance(count, bool) or int(count) != count or count < 2:
            raise DynsplatConfigError(
                f"train_count={count!r}: must be an integer >= 2 (the first and last frames are kept)"
            )
        if fraction < 1.0:
            raise DynsplatConfigError("set train_fraction or train_count, not both")


def split_indices_file(config_path: Path | None, data_dir: Path) -> Path | None:
    """The ``split_indices.json`` to use: the configured one (relative paths: data folder first, then the working
    directory) or ``DATA/split_indices.json`` when it exists, else None."""
    if config_path is None:
        default = data_dir / SPLIT_INDICES_NAME
        return default if default.is_file() else None
    path = Path(config_path).expanduser()
    if not path.is_absolute() and (data_dir / path).is_file():
        return data_dir / path
    if not path.is_file():
        raise DataParserError(
            path, "split_indices file not found (looked in the data folder and the working directory)"
        )
    return path


def resolve_splits(
    format_splits: dict[str, list[int]],
    num_frames: int,
    split_file: Path | None,
    fraction: float = 1.0,
    count: int | None = None,
) -> dict[str, list[int]]:
    """Final ``train`` / ``val`` / ``test`` frame indices.

    Args:
        format_splits: The format's own split (``train``, ``test``, optional ``val``).
        num_frames: Number of frames.
        split_file: A ``split_indices.json`` overriding ``format_splits`` (None: keep them).
        fraction: ``train_fraction`` (applied to train only).
        count: ``train_count`` (applied to train only).

    Returns:
        ``{"train", "val", "test"}`` (``val`` is ``test`` unless a real val split exists).
    """
    splits = read_split_indices(split_file, num_frames) if split_file is not None else dict(format_splits)
    train = subset_evenly(sorted(splits.get("train", [])), fraction, count)
    test = list(splits.get("test", []))
    val = list(splits["val"]) if "val" in splits else test
    return {"train": train, "val": val, "test": test}
