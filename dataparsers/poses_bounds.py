"""LLFF's ``poses_bounds.npy`` and ``images_{k}/`` folders (shared by the LLFF and D2RF parsers).

``poses_bounds.npy`` holds one row of 17 floats per image, in sorted image-name order: a 3×5 matrix flattened row by
row (columns: the camera-to-world rotation with axes [down, right, back], the camera centre, and [height, width,
focal] of the full-resolution images), then the near and far depth bounds of the scene seen by that camera.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataParserError
from .scene import llff_to_opengl


@dataclass
class PosesBounds:
    """A validated ``poses_bounds.npy``."""

    path: Path
    """The file."""
    c2w: np.ndarray
    """OpenGL camera-to-world ``[N, 3, 4]`` (dataset units)."""
    hwf: np.ndarray
    """``[N, 3]`` height, width, focal of the full-resolution images."""
    bounds: np.ndarray
    """``[N, 2]`` near, far."""

    def __len__(self) -> int:
        return self.c2w.shape[0]


def load_poses_bounds(path: Path) -> PosesBounds:
    """Read and validate ``poses_bounds.npy``.

    Raises:
        DataParserError: Missing or malformed file, a shape other than ``(N, 17)``, no rows, NaN/inf values,
            non-positive height/width/focal, or bounds that are not ``0 < near < far`` (the row is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataParserError(path, "file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataParserError(path, f"malformed .npy file: {err}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise DataParserError(path, f"expected a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim != 2 or arr.shape[1] != 17:
        raise DataParserError(
            path, f"expected shape (N, 17) (a 3x5 pose and near, far per image), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise DataParserError(path, "has no rows (no cameras)")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "pose contains" if not np.isfinite(arr[row, :15]).all() else "near/far bounds contain"
        raise DataParserError(path, f"row {row}: {what} NaN or inf")
    poses = arr[:, :15].reshape(-1, 3, 5)
    hwf = poses[:, :, 4]
    bad = (hwf <= 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataParserError(path, f"row {row}: height, width and focal must be > 0, got {hwf[row].tolist()}")
    bounds = arr[:, 15:17]
    bad = (bounds[:, 0] <= 0) | (bounds[:, 1] <= bounds[:, 0])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataParserError(path, f"row {row}: bounds must satisfy 0 < near < far, got {bounds[row].tolist()}")
    return PosesBounds(path=path, c2w=llff_to_opengl(poses[:, :, :4]), hwf=hwf, bounds=bounds)


def bounds_scale(bounds: np.ndarray, bd_factor: float | None, percentile: float | None = None) -> float:
    """LLFF's rescale: ``1 / (near_ref * bd_factor)`` so that the reference near bound lands at ``1 / bd_factor``.

    Args:
        bounds: ``[N, 2]`` near, far.
        bd_factor: NeRF uses 0.75, D2RF 0.9; None disables rescaling (returns 1).
        percentile: Reference near bound as this percentile of the near bounds (D2RF: 5), None for the minimum
            (NeRF).
    """
    if bd_factor is None:
        return 1.0
    near = bounds[:, 0]
    ref = float(np.min(near)) if percentile is None else float(np.percentile(near, percentile))
    return 1.0 / (ref * float(bd_factor))


def downscaled_folders(data: Path, prefix: str = "images_") -> list[tuple[int, Path]]:
    """``[(factor, folder), ...]`` for every ``images_{factor}/`` folder in ``data``, smallest factor first."""
    out = []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    for child in Path(data).iterdir() if Path(data).is_dir() else []:
        match = pattern.match(child.name)
        if match and child.is_dir() and int(match.group(1)) >= 1:
            out.append((int(match.group(1)), child))
    return sorted(out)


def check_count(files: Sequence[Path], folder: Path, expected: int, source: Path) -> None:
    """Raise :class:`DataParserError` naming ``folder`` when it does not hold one image per row of ``source``."""
    if len(files) != expected:
        raise DataParserError(
            folder, f"holds {len(files)} images but {source.name} has {expected} poses (one row per image)"
        )
