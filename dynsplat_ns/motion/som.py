"""Shape-of-Motion motion (Wang et al. 2024): K global SE(3) motion bases blended per Gaussian.

Global parameters: per-frame rotations (continuous 6D) and translations of K bases, [K, T, 6] and [K, T, 3], starting
at the identity. Per-Gaussian parameters: ``motion_coefs`` [N, K] (softmax weights), stored in the Gaussian dict so
densification keeps them in lock-step. A Gaussian at time t moves by the weight-blended 6D rotation (made a rotation by
Gram–Schmidt) and translation of the bases, both linearly interpolated between the two nearest frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from torch import Tensor, nn

from dynsplat_ns.losses import finite_difference_smoothness, knn_isometry
from dynsplat_ns.motion.base import MotionModel, MotionModelConfig
from dynsplat_ns.rotations import IDENTITY_6D, matrix_to_quat, quat_multiply, rot6d_to_matrix
from dynsplat_ns.schedules import decaying_adam
from dynsplat_ns.time import frame_interpolation, key_time_count


@dataclass
class ShapeOfMotionConfig(MotionModelConfig):
    """Shape-of-Motion SE(3) motion bases."""

    _target: type = field(default_factory=lambda: ShapeOfMotion)
    """Motion model class to instantiate."""
    choice_name: ClassVar[str] = "som"
    num_bases: int = 10
    """Number K of global motion bases (Shape of Motion uses 10)."""
    num_knots: int = 0
    """Key times of each basis's trajectory, evenly spaced in [0, 1] with linear interpolation between them (at most
    one per training frame); 0: one per training frame. A key time's pose is trained by every view near it; with one
    pose per frame a frame's pose sees one view (D-NeRF, monocular video), and the first and last frames, held by a
    single smoothness term, drift along their views' rays. Measured (200 px, 3000 steps, val) with the smoothness
    weight at 50's strength per unit of time at 60 frames (50 · ((T − 1) / 59)⁴ for T key times: 1.37 for 25 knots,
    23.8 for 50, 395 for hellwarrior's 100 frames): D-NeRF hellwarrior per frame 27.90 dB (27.34 at the default
    weight), 25 knots 28.97 (PSNR at t = 0 / 1: 21.6 / 21.6 → 26.4 / 24.7), 50 knots 28.66; but the generated
    60-frame bounce scene (benchmarks/models.py) 33.54 → 31.98 with 25, so per-frame stays the default."""
    static_warmup_steps: int = 0
    """Steps during which the model stays the identity."""
    coef_init_temperature: float = 0.1
    """Initial coefficients are softmax(−distance²/temperature) to k-means centres of the seed points (in scene-box
    units), so nearby Gaussians start sharing bases."""
    smoothness_weight: float = 50.0
    """Weight of the temporal smoothness (mean squared second differences over the key times) of the bases' rotations
    and translations. Each frame of a monocular video has one view, so a frame's basis poses are otherwise free along
    that view's rays (Shape of Motion pins them with 2D tracks and depth, which we do not have); the mean over
    K × T × 3 entries is tiny, so the weight is large. Issue 11 scene (64 px, 3000 steps): at 0.05 all ten bases moved
    alike (translation ranges 0.15-0.38) and novel views degraded; at 50 one basis carries the spheres (range 0.67)
    and the others stay near rest."""
    rigidity_weight: float = 0.0
    """Weight of local rigidity (kNN distances kept equal to the canonical ones); 0 disables it."""
    rigidity_knn: int = 8
    """Neighbours per Gaussian for the rigidity loss."""
    rigidity_samples: int = 1024
    """Gaussians sampled per step for the rigidity loss."""
    bases_lr: float = 5e-3
    """Initial learning rate of the bases (decays ×0.1). Every frame's poses get a photometric gradient only from
    its own view (once per epoch), so Adam moves them a fraction of the rate per step: at 1.6e-3 the bases could not
    travel the spheres' 1.1-unit paths within 3000 steps (ranges ≤ 0.38)."""
    coefs_lr: float = 1e-2
    """Learning rate of the per-Gaussian motion coefficients."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """Adam for ``motion_bases`` (decaying) and ``motion_coefs``."""
        return {
            "motion_bases": decaying_adam(self.bases_lr, 0.1, max_steps),
            "motion_coefs": {"optimizer": AdamOptimizerConfig(lr=self.coefs_lr, eps=1e-15), "scheduler": None},
        }


def _kmeans(points: Tensor, k: int, iters: int = 10, seed: int = 0) -> Tensor:
    """Plain k-means centres [k, 3] (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(points.shape[0], generator=gen)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(points, centres).argmin(dim=1)
        for j in range(centres.shape[0]):
            members = points[assign == j]
            if members.shape[0]:
                centres[j] = members.mean(dim=0)
    return centres


class ShapeOfMotion(MotionModel):
    """K SE(3) bases over T frames, blended per Gaussian."""

    config: ShapeOfMotionConfig
    needs_frames = True

    def __init__(self, config: ShapeOfMotionConfig, num_frames: int = 1, aabb: Tensor | None = None) -> None:
        super().__init__(config, num_frames, aabb)
        if config.num_bases < 1:
            raise ValueError(f"num_bases must be ≥ 1 (got {config.num_bases})")
        k = config.num_bases
        t = self.num_knots = key_time_count(config.num_knots, self.num_frames)
        self.rots = nn.Parameter(torch.tensor(IDENTITY_6D).repeat(k, t, 1))  # [K, T, 6]
        self.transls = nn.Parameter(torch.zeros(k, t, 3))  # [K, T, 3]

    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        means = gaussians["means"].detach().float().cpu()
        k = self.config.num_bases
        if means.shape[0] == 0:
            return {"motion_coefs": torch.zeros(0, k)}
        extent = (self.aabb[1] - self.aabb[0]).norm().clamp_min(1e-6).cpu()
        centres = _kmeans(means / extent, min(k, means.shape[0]))
        d2 = torch.cdist(means / extent, centres).square()  # [N, k']
        logits = torch.full((means.shape[0], k), -10.0)
        logits[:, : centres.shape[0]] = -d2 / self.config.coef_init_temperature
        return {"motion_coefs": logits}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"motion_bases": [self.rots, self.transls]}

    def per_frame_state_keys(self) -> dict[str, int | tuple[int, ...]]:
        """The bases' rotations [K, T, 6] and translations [K, T, 3] have one entry per frame (axis 1)."""
        return {"rots": 1, "transls": 1}

    def transforms_at(self, coefs: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """Per-Gaussian rotation [N, 3, 3] and translation [N, 3] at time ``t``."""
        i0, i1, w = frame_interpolation(t, self.num_knots)
        rots = torch.lerp(self.rots[:, i0], self.rots[:, i1], float(w))  # [K, 6]
        transls = torch.lerp(self.transls[:, i0], self.transls[:, i1], float(w))  # [K, 3]
        weights = torch.softmax(coefs, dim=-1)  # [N, K]
        return rot6d_to_matrix(weights @ rots), weights @ transls

    def deform(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        rot, transl = self.transforms_at(gaussians["motion_coefs"], t)
        return self._moved(gaussians, rot, transl)

    def deform_batch(self, gaussians: Mapping[str, Tensor], ts: list[float]) -> list[dict[str, Tensor]]:
        """Blend weights (softmax over the coefficients) computed once; all times' bases blended in one product."""
        if len(ts) == 1:
            return [self.deform(gaussians, ts[0])]
        i0, i1, w = frame_interpolation(torch.tensor(ts), self.num_knots)  # each [B]
        w = w.to(self.rots.device)[:, None, None]
        rots = torch.lerp(self.rots[:, i0].transpose(0, 1), self.rots[:, i1].transpose(0, 1), w)  # [B, K, 6]
        transls = torch.lerp(self.transls[:, i0].transpose(0, 1), self.transls[:, i1].transpose(0, 1), w)  # [B, K, 3]
        weights = torch.softmax(gaussians["motion_coefs"], dim=-1)  # [N, K]
        rot = rot6d_to_matrix(weights @ rots)  # [B, N, 3, 3]
        transl = weights @ transls  # [B, N, 3]
        return [self._moved(gaussians, r, x) for r, x in zip(rot, transl, strict=True)]

    @staticmethod
    def _moved(gaussians: Mapping[str, Tensor], rot: Tensor, transl: Tensor) -> dict[str, Tensor]:
        """The Gaussians under per-Gaussian rotations [N, 3, 3] and translations [N, 3]."""
        means = (rot @ gaussians["means"][..., None]).squeeze(-1) + transl
        quats = quat_multiply(matrix_to_quat(rot), gaussians["quats"])
        return {"means": means, "scales": gaussians["scales"], "quats": quats, "opacities": gaussians["opacities"]}

    def regularization(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        if not self.active:
            return {}
        cfg = self.config
        losses = {
            "bases_smoothness": cfg.smoothness_weight
            * (finite_difference_smoothness(self.rots) + finite_difference_smoothness(self.transls))
        }
        if cfg.rigidity_weight > 0:
            moved = self.state_at(gaussians, t)["means"]  # the render's state when it has one
            iso = knn_isometry(gaussians["means"], moved, cfg.rigidity_samples, cfg.rigidity_knn)
            losses["rigidity"] = cfg.rigidity_weight * iso
        return losses
