"""Frame times for the dataparsers: mapping raw timestamps to [0, 1] and counting distinct frames.

A leaf module (numpy and torch only). Every split shares one time range, so the same timestamp gets the same
normalised time whichever split is parsed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch


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
