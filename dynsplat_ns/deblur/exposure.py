"""Object motion during the exposure: one learnable exposure time per training frame (Deblur4DGS' idea).

Frame ``f`` (at time ``f / (T - 1)``) is exposed over a fraction ``e_f`` of the frame interval, centred on the frame's
time: the motion model is queried at K sub-times spread evenly over ``[t - e_f Δ / 2, t + e_f Δ / 2]`` (Δ = 1 / (T - 1),
clamped to [0, 1]). ``e_f = lo + (hi - lo) · sigmoid(base + logit_f)`` stays inside the configured range: ``base`` is
the video's shutter (one value, so it learns from every training step), ``logit_f`` the frame's own deviation from it
(learned only when frame ``f`` is trained, about once per pass over the images). Both start at 0 (the middle of the
range). With ``shared`` there is one exposure for all frames and no per-frame part.

At initialisation the blur is nevertheless the identity: the motion model is (every motion model starts as the
identity), so the Gaussians are the same at every sub-time and the K views equal the plain one. The exposure starts
away from zero on purpose: with a zero-width window every sub-time is the frame time, and the gradient of the width
vanishes by symmetry (the K views are identical), so it could never open.

Motion models take float times, so the gradient of the loss with respect to a sub-time is brought in by
:func:`attach_time_gradient`: the state's value is the motion model's, exactly; its derivative with respect to time is
the motion model's central finite difference (:func:`time_velocities`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

#: Step (in normalised time) of the finite difference that gives d(state)/dt.
TIME_STEP = 1e-3


class ExposureTimes(nn.Module):
    """Per-frame exposure fractions, bounded by a sigmoid.

    Args:
        num_frames: number of training frames T.
        exposure_range: (lo, hi), the bounds of the fraction of the frame interval (Deblur4DGS: 0.1–0.9).
        shared: one exposure for every frame (a fixed shutter) instead of the shared shutter plus a per-frame
            deviation.
    """

    def __init__(
        self, num_frames: int, exposure_range: tuple[float, float] = (0.1, 0.9), shared: bool = False
    ) -> None:
        super().__init__()
        lo, hi = (float(x) for x in exposure_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"exposure_range must satisfy 0 <= lo <= hi <= 1, got {exposure_range}")
        self.lo, self.hi = lo, hi
        self.num_frames = max(int(num_frames), 1)
        self.shared = bool(shared)
        self.logits = nn.Parameter(torch.zeros(1 if self.shared else self.num_frames))  # [T] or [1]
        # The video's shutter logit under the per-frame logits (None when shared: ``logits`` is then that value).
        self.base = None if self.shared else nn.Parameter(torch.zeros(1))  # [1]

    def frame_index(self, t: float) -> int:
        """The training frame nearest to time ``t``."""
        return int(round(min(max(float(t), 0.0), 1.0) * (self.num_frames - 1)))

    def fraction(self, frame: int | None = None) -> Tensor:
        """Exposure fraction(s) of the frame interval: one frame's (0-d) or all [T]."""
        if frame is None:
            logits = self.logits.expand(self.num_frames)
        else:
            logits = self.logits[0 if self.shared else frame]
        if self.base is not None:
            logits = logits + (self.base if frame is None else self.base[0])
        return self.lo + (self.hi - self.lo) * torch.sigmoid(logits)

    def sub_times(self, t: float, u: Tensor) -> Tensor:
        """Sub-times [K] (differentiable in the frame's exposure) at positions ``u`` [K] ∈ [0, 1] of the exposure of
        the frame nearest to ``t``; all equal to ``t`` for a static scene (one frame)."""
        if self.num_frames < 2:
            return torch.full_like(u, float(t))
        frame = self.frame_index(t)
        width = self.fraction(frame) / (self.num_frames - 1)
        return (float(t) + (u.to(self.logits.device) - 0.5) * width).clamp(0.0, 1.0)


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
