"""Dynamic Gaussian Marbles (Stearns et al. 2024): isotropic Gaussians with a per-frame translation each.

Per-Gaussian parameters ``marble_offsets`` [N, T, 3] (zero at init) live in the Gaussian dict, so densification keeps
them in lock-step; a time between frames interpolates linearly. Gaussians are isotropic (one scale: the mean of the
three log-scales) and unrotated.

Memory: the offsets cost N × T × 3 floats, and Adam keeps two more copies plus the gradient: 16 · N · T · 3 bytes
(e.g. 20k Gaussians × 200 frames ≈ 192 MB). ``max_motion_floats`` caps N × T × 3; the model prunes to stay under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from dynsplat_ns.losses import finite_difference_smoothness, knn_isometry
from dynsplat_ns.motion.base import MotionModel, MotionModelConfig
from dynsplat_ns.schedules import decaying_adam
from dynsplat_ns.time import frame_interpolation, key_time_count


@dataclass
class MarblesMotionConfig(MotionModelConfig):
    """Gaussian Marbles: per-Gaussian per-frame translations of isotropic Gaussians."""

    _target: type = field(default_factory=lambda: MarblesMotion)
    """Motion model class to instantiate."""
    choice_name: ClassVar[str] = "marbles"
    max_motion_floats: int = 12_000_000
    """Cap on N × T × 3 (offset floats; ×16 bytes with Adam state ≈ 192 MB at the default)."""
    num_knots: int = 0
    """Key times of each Gaussian's offsets, evenly spaced in [0, 1] with linear interpolation between them (at most
    one per training frame); 0: one per training frame (the reference's per-frame translations)."""
    isometry_weight: float = 0.1
    """Weight of the isometry loss (kNN distances at time t kept equal to the canonical ones)."""
    isometry_knn: int = 8
    """Neighbours per Gaussian for the isometry loss."""
    isometry_samples: int = 1024
    """Gaussians sampled per step for the isometry loss."""
    velocity_weight: float = 1000.0
    """Weight of velocity smoothness (mean squared second differences of the offsets over frames). A frame's offsets
    see only that frame's single view, so without it they jitter along its rays: at the former 0.1 (the mean over
    N × T × 3 entries makes it negligible) the trained offsets had mean |second difference| 0.11 > mean |first
    difference| 0.07 (frame-to-frame noise) and the static slab drifted 0.13 units (issue 11 scene, 96 px). Issue
    11's scene (160 px, 3000 steps, test PSNR): 20 → 25.13 dB, 200 → 27.26, 1000 → 28.56; with view-independent
    colour (sh_degree 0, the method's default) 1000 → 29.29, 3000 → 29.17."""
    magnitude_weight: float = 0.0
    """Weight of the mean |offset| (L1 over all Gaussians and frames): an offset that no view needs returns to zero.
    A frame's single view leaves its offsets free along its own rays, where they drift; the smoothness terms do not
    see a drift shared by neighbouring frames. Off by default: at 1.0 on issue 11's scene (160 px, 3000 steps) the
    static slab's drift fell from 0.091 to 0.013 units but the bouncing ball, far from its canonical place at rest,
    was lost (tracking error 0.04 → 0.31; test PSNR 26.13 → 25.58 dB)."""
    stillness_weight: float = 1.0
    """Weight of the mean |offset change| between consecutive frames (L1, total variation in time): a Gaussian moves
    only where the images demand it, and a static one cannot drift slowly (which the second-difference smoothness
    does not see) while a moving one may stay far from its canonical place (unlike ``magnitude_weight``). Issue 11's
    scene (160 px, 3000 steps): 0 → 26.13 dB (static slab drift 0.091), 1.0 → 27.26 (drift 0.045, ball still
    followed), 4.0 → 26.31 (drift 0.022, the ball partly lost)."""
    offsets_lr: float = 5e-3
    """Initial learning rate of the per-frame offsets (decays ×0.1 over the run; the reference uses 2e-3 with many
    steps per frame window, a frame here gets a gradient once per epoch). At a constant 5e-3 a 3000-step run drifted
    (offsets are free along linear-in-time paths, which the second-difference loss does not see)."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """Adam for ``marble_offsets``, decaying ×0.1 over the run (as the other motion models' rates)."""
        return {
            "marble_offsets": decaying_adam(self.offsets_lr, 0.1, max_steps),
        }


class MarblesMotion(MotionModel):
    """Per-frame translations of isotropic Gaussians."""

    config: MarblesMotionConfig
    needs_frames = True

    @property
    def num_knots(self) -> int:
        """Key times T of the offsets: ``num_knots`` (at most one per frame), or one per frame."""
        return key_time_count(self.config.num_knots, self.num_frames)

    def max_gaussians(self) -> int | None:
        """``max_motion_floats // (3 T)``."""
        return self.config.max_motion_floats // (3 * self.num_knots)

    def per_frame_state_keys(self) -> dict[str, int | tuple[int, ...]]:
        """The offsets [N, T, 3] have one entry per key time (axis 1)."""
        return {"marble_offsets": 1}

    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        n = gaussians["means"].shape[0]
        cap = self.max_gaussians()
        if n > cap:
            raise ValueError(
                f"Gaussian Marbles: {n} Gaussians × {self.num_knots} key times × 3 = {3 * n * self.num_knots:,} "
                f"offset floats exceed max_motion_floats={self.config.max_motion_floats:,} (≤ {cap} Gaussians at "
                f"{self.num_knots} key times); use fewer seed points (e.g. --num-random-points), fewer frames or "
                "--pipeline.model.motion.num-knots, or raise --pipeline.model.motion.max-motion-floats"
            )
        return {"marble_offsets": torch.zeros(n, self.num_knots, 3)}

    def offsets_at(self, offsets: Tensor, t: float) -> Tensor:
        """Interpolated offsets [N, 3] at time ``t``."""
        i0, i1, w = frame_interpolation(t, self.num_knots)
        return torch.lerp(offsets[:, int(i0)], offsets[:, int(i1)], float(w))

    def canonical(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Isotropic (mean log-scale) and unrotated Gaussians: the representation, with or without motion."""
        out = super().canonical(gaussians)
        out["scales"] = gaussians["scales"].mean(dim=-1, keepdim=True).expand(-1, 3)
        quats = gaussians["quats"]
        out["quats"] = torch.tensor([1.0, 0.0, 0.0, 0.0], device=quats.device).expand_as(quats)
        return out

    def deform(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        out = self.canonical(gaussians)
        out["means"] = gaussians["means"] + self.offsets_at(gaussians["marble_offsets"], t)
        return out

    def deform_batch(self, gaussians: Mapping[str, Tensor], ts: list[float]) -> list[dict[str, Tensor]]:
        """The isotropic canonical Gaussians built once, shared by every time; one gather of all times' offsets."""
        if len(ts) == 1:
            return [self.deform(gaussians, ts[0])]
        canonical = self.canonical(gaussians)
        offsets = gaussians["marble_offsets"]
        i0, i1, w = frame_interpolation(torch.tensor(ts), self.num_knots)  # each [B]
        moved = torch.lerp(offsets[:, i0], offsets[:, i1], w.to(offsets)[None, :, None])  # [N, B, 3]
        return [{**canonical, "means": gaussians["means"] + moved[:, b]} for b in range(len(ts))]

    def regularization(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        if not self.active:
            return {}
        cfg = self.config
        offsets = gaussians["marble_offsets"]
        losses = {"velocity_smoothness": cfg.velocity_weight * finite_difference_smoothness(offsets, dim=1)}
        if cfg.stillness_weight > 0:
            losses["offset_stillness"] = cfg.stillness_weight * torch.diff(offsets, dim=1).abs().mean()
        if cfg.magnitude_weight > 0:
            losses["offset_magnitude"] = cfg.magnitude_weight * offsets.abs().mean()
        if cfg.isometry_weight > 0:
            moved = self.state_at(gaussians, t)["means"]  # the render's state when it has one
            iso = knn_isometry(gaussians["means"], moved, cfg.isometry_samples, cfg.isometry_knn)
            losses["isometry"] = cfg.isometry_weight * iso
        return losses
