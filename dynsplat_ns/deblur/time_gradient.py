"""A gradient path from float render times to differentiable sub-times (Deblur4DGS' learnable exposure).

Motion models take float times, so the gradient of the loss with respect to a sub-time ``tau`` (e.g. a point of a
frame's learnable exposure) is brought in from outside: the state's value is the motion model's, exactly; its derivative
with respect to time is the motion model's central finite difference (:func:`time_velocities`), and
:func:`attach_time_gradient` adds ``(tau - tau.detach()) · d(state)/dt``, which is exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

#: Step (in normalised time) of the finite difference that gives d(state)/dt.
TIME_STEP = 1e-3


def time_velocities(
    times: Sequence[float],
    time_tensors: dict[float, Tensor],
    evaluate: Callable[[list[float]], list[dict[str, Tensor]]],
) -> dict[int, dict[str, Tensor]]:
    """d(state)/dt at each of ``times`` that has a differentiable sub-time, by central finite differences.

    Args:
        times: float times in [0, 1] (the render's distinct times).
        time_tensors: the differentiable sub-time of each float time (others are skipped).
        evaluate: the motion model at a list of float times (one batched call); called once, without gradient.

    Returns:
        For each position in ``times`` whose sub-time requires grad, the velocity of every tensor ``evaluate`` returns.
    """
    wanted = [i for i, t in enumerate(times) if t in time_tensors and time_tensors[t].requires_grad]
    if not wanted:
        return {}
    probes: list[float] = []
    for i in wanted:
        t = float(times[i])
        probes += [max(t - TIME_STEP, 0.0), min(t + TIME_STEP, 1.0)]
    with torch.no_grad():
        probed = evaluate(probes)
    out: dict[int, dict[str, Tensor]] = {}
    for j, i in enumerate(wanted):
        lo, hi = probed[2 * j], probed[2 * j + 1]
        span = probes[2 * j + 1] - probes[2 * j]
        out[i] = {
            key: torch.nan_to_num((hi[key] - lo[key]) / span, nan=0.0, posinf=0.0, neginf=0.0)
            for key in lo
            if span > 0 and lo[key].is_floating_point()
        }
    return out


def attach_time_gradient(
    states: Sequence[dict[str, Tensor]],
    times: Sequence[float],
    time_tensors: dict[float, Tensor],
    velocities: dict[int, dict[str, Tensor]],
) -> list[dict[str, Tensor]]:
    """``states`` (the motion model's, at float ``times``) with a gradient path to the sub-time tensors.

    Every tensor ``x`` with a velocity becomes ``x + (tau - tau.detach()) · dx/dt``: the same value (the added term is
    exactly zero), and the gradient of the loss with respect to the sub-time ``tau`` is ``<dL/dx, dx/dt>``.
    """
    out = list(states)
    for i, velocity in velocities.items():
        tau = time_tensors[float(times[i])]
        zero = tau - tau.detach()
        moved = dict(states[i])
        for key, v in velocity.items():
            if key in moved:
                moved[key] = moved[key] + zero.to(v.dtype) * v
        out[i] = moved
    return out
