"""Time conventions: t ∈ [0, 1] everywhere outside this module; frame indices only where a motion model needs them."""

from __future__ import annotations

import torch
from torch import Tensor

from dynsplat_ns.errors import DynsplatConfigError


def camera_time(times: Tensor | None, default: float = 0.0) -> float | None:
    """Returns the single time of a camera batch (``Cameras.times``), or ``default`` when it has none.

    Args:
        times: ``Cameras.times`` ([C, 1] or [C]) or None for a static dataset / a viewer without a time slider.
        default: time used when ``times`` is None.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: if the cameras of one batch carry different times (render them one by one instead).
    """
    if times is None:
        return default
    flat = times.reshape(-1)
    if flat.numel() == 0:
        return default
    t0 = float(flat[0])
    if flat.numel() > 1 and not torch.allclose(flat, flat[:1].expand_as(flat)):
        raise ValueError("cameras rendered together must share one time; render them one at a time")
    return min(max(t0, 0.0), 1.0)


def frame_interpolation(t: float | Tensor, num_frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """Maps continuous time to the two neighbouring frames and a linear blend weight.

    Frame ``k`` sits at time ``k / (num_frames - 1)``; a time between two frames blends them, so renders are
    continuous in time (no snapping).

    Args:
        t: time(s) in [0, 1], scalar or any shape.
        num_frames: number of frames T ≥ 1.

    Returns:
        ``(i0, i1, w)``: long indices of the lower/upper frame and the weight of the upper one, each shaped like ``t``.
    """
    t = torch.as_tensor(t, dtype=torch.float32)
    if num_frames <= 1:
        zero = torch.zeros_like(t, dtype=torch.long)
        return zero, zero, torch.zeros_like(t)
    x = t.clamp(0.0, 1.0) * (num_frames - 1)
    i0 = x.floor().long().clamp(max=num_frames - 2)
    w = x - i0.to(x.dtype)
    return i0, i0 + 1, w


def key_time_count(num_knots: int, num_frames: int) -> int:
    """Key times of a per-time trajectory (motion bases, offsets): ``num_knots``, never more than the training frames,
    or one per frame when it is 0. They sit evenly in [0, 1], as :func:`frame_interpolation` places them.

    Raises:
        DynsplatConfigError: ``num_knots`` is negative or 1 (a trajectory needs two key times to span [0, 1]).
    """
    if num_knots < 0 or num_knots == 1:
        raise DynsplatConfigError(
            f"num_knots={num_knots} (--pipeline.model.motion.num-knots): must be 0 (one per frame) or ≥ 2"
        )
    return min(num_knots, num_frames) if num_knots else num_frames
