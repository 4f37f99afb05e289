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

Motion models take float times: the sub-times reach the exposure's gradient through the motion model's time
derivative (:mod:`dynsplat_ns.deblur.time_gradient`), computed when the views are expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, VirtualViews
from dynsplat_ns.deblur.time_gradient import time_velocities
from dynsplat_ns.schedules import decaying_adam

#: Optimizer groups of the per-frame exposure logits (or the one shared logit) and of the shared shutter under them.
EXPOSURE_GROUP = "deblur_exposure"
EXPOSURE_BASE_GROUP = "deblur_exposure_base"


@dataclass
class ExposureTimesConfig(BlurComponentConfig):
    """Object motion during the exposure: the K views at sub-times over a learnable exposure time per frame."""

    _target: type = field(default_factory=lambda: ExposureTimes)
    """Blur component class to instantiate."""
    enabled: bool = True
    """Render the K views at sub-times over the frame's exposure (``--pipeline.model.object-blur``); False keeps the
    exposure tables (saved, resumable) but renders every view at the frame time."""
    exposure_range: tuple[float, float] = (0.1, 0.9)
    """Bounds (lo, hi) of each frame's exposure, as a fraction of the frame interval."""
    shared: bool = False
    """One exposure for all frames (a fixed shutter) instead of the shared shutter plus each frame's deviation."""
    lr: float = 1e-2
    """Initial learning rate of the exposure logits (decays ×0.1 over the run)."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """One exponentially decaying Adam group for the logits (and one for the shared shutter)."""
        names = (EXPOSURE_GROUP,) + (() if self.shared else (EXPOSURE_BASE_GROUP,))
        return {name: decaying_adam(self.lr, 0.1, max_steps) for name in names}


class ExposureTimes(BlurComponent):
    """Per-frame exposure fractions, bounded by a sigmoid; the K views' sub-times spread over them.

    Args:
        config: its config (range, shared, rate).
        num_images: number of training images (unused: the tables are per frame).
        num_frames: number of training frames T.
    """

    config: ExposureTimesConfig

    def __init__(self, config: ExposureTimesConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__(config, num_images, num_frames)
        lo, hi = (float(x) for x in config.exposure_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"exposure_range must satisfy 0 <= lo <= hi <= 1, got {config.exposure_range}")
        self.lo, self.hi = lo, hi
        self.shared = bool(config.shared)
        self.logits = nn.Parameter(torch.zeros(1 if self.shared else self.num_frames))  # [T] or [1]
        # The video's shutter logit under the per-frame logits (None when shared: ``logits`` is then that value).
        self.base = None if self.shared else nn.Parameter(torch.zeros(1))  # [1]

    # ---- parameters ------------------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {EXPOSURE_GROUP: [self.logits], **({} if self.base is None else {EXPOSURE_BASE_GROUP: [self.base]})}

    def per_frame_state_keys(self) -> dict[str, int]:
        """The per-frame logits [T] (a shared exposure has none)."""
        return {} if self.shared else {"logits": 0}

    def upgrade_state(self, state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
        """A checkpoint from before the shared shutter (per-frame logits only) loads with the shutter at 0, which
        renders its exposures unchanged."""
        if self.base is not None and f"{prefix}base" not in state and f"{prefix}logits" in state:
            return {**state, f"{prefix}base": torch.zeros_like(self.base)}
        return state

    # ---- exposure --------------------------------------------------------------------------------------------
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

    # ---- training render -------------------------------------------------------------------------------------
    @property
    def spreads_exposure(self) -> bool:
        return self.config.enabled

    def expand(self, step: BlurStep, views: VirtualViews) -> VirtualViews:
        """The views at sub-times over the frame's exposure (with a moving model and K > 1 views), each with the
        motion model's time derivative while gradients are on, so the loss reaches the exposure."""
        if not (self.config.enabled and step.num_views > 1 and step.motion_at is not None):
            return views
        taus = self.sub_times(step.time, step.positions)
        velocities: dict[float, dict[str, Tensor]] = {}
        if torch.is_grad_enabled():
            floats = [float(x) for x in taus.detach().cpu().tolist()]
            distinct = list(dict.fromkeys(floats))
            per_index = time_velocities(distinct, dict(zip(floats, taus, strict=True)), step.motion_at)
            velocities = {distinct[i]: v for i, v in per_index.items()}
        return replace(views, times=taus, velocities=velocities)

    def metrics(self) -> dict[str, Tensor]:
        """The mean exposure fraction."""
        return {"deblur_exposure_mean": self.fraction().detach().mean()}
