"""4DGS motion (Wu et al. 2024): HexPlane space-time features → small MLP heads for Δmean, Δscale, Δrotation.

Six multi-resolution feature planes (xy, xz, yz, xt, yt, zt) are sampled at (position, t); the per-plane features are
multiplied, levels concatenated, and decoded by one shared layer plus three heads. The heads' last layers are zero, so
the model starts as the identity. Time planes start at 1 (multiplicative identity), spatial planes uniform(0.1, 0.5).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynsplat_ns.losses import l1_to_one, plane_tv, time_smoothness
from dynsplat_ns.motion.base import MotionModel, MotionModelConfig
from dynsplat_ns.motion.hexplane_cpu import compiled_hexplane_usable, hexplane_features_compiled
from dynsplat_ns.schedules import decaying_adam

# Coordinate pairs of the six planes over (x, y, z, t); the first element indexes the plane's width axis.
PLANE_AXES: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(4), 2))


@dataclass
class HexPlaneMotionConfig(MotionModelConfig):
    """4DGS deformation field (defaults follow 4DGaussians' D-NeRF config, sized for CPU)."""

    _target: type = field(default_factory=lambda: HexPlaneMotion)
    """Motion model class to instantiate."""
    choice_name: ClassVar[str] = "hexplane"
    resolution: tuple[int, int, int, int] = (32, 32, 32, 25)
    """Base plane resolution along x, y, z, t (4DGS uses 64³×25; 32³ keeps CPU runs quick)."""
    multires: tuple[int, ...] = (1, 2)
    """Spatial resolution multipliers of the levels (time resolution is not multiplied)."""
    feature_dim: int = 32
    """Feature channels per plane and level."""
    net_width: int = 64
    """Width of the decoder MLP."""
    static_warmup_steps: int | None = None
    """Steps of static warm-up before deformation switches on (4DGS's coarse stage, 3000 of its 20000 steps); None
    ("auto"): 15 % of the run (--max-num-iterations)."""
    plane_tv_weight: float = 1e-4
    """Weight of total variation on the spatial planes."""
    time_smoothness_weight: float = 1e-2
    """Weight of the second-difference smoothness along time of the time planes."""
    l1_time_planes_weight: float = 1e-4
    """Weight of |1 − plane| on the time planes."""
    aabb_margin: float = 0.1
    """Relative margin added around the scene box that the planes cover."""
    grid_lr: float = 1.6e-2
    """Initial learning rate of the planes (decays ×0.01). 4DGS uses 1.6e-3 × its spatial lr scale over 14k steps;
    ×10 lets the deformation form within a few thousand CPU steps (generated scene: 19.5 vs 17.4 dB at 1k steps)."""
    mlp_lr: float = 1.6e-3
    """Initial learning rate of the decoder (decays ×0.01); ×10 of 4DGS's for the same reason."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """Adam with exponential decay for ``hexplane_grid`` and ``hexplane_mlp``."""
        return {
            "hexplane_grid": decaying_adam(self.grid_lr, 0.01, max_steps),
            "hexplane_mlp": decaying_adam(self.mlp_lr, 0.01, max_steps),
        }


class HexPlaneField(nn.Module):
    """Multi-resolution HexPlane: (xyz ∈ [−1,1]³, t ∈ [0,1]) → features [N, feature_dim · levels].

    Args:
        resolution: base resolution along x, y, z, t.
        multires: spatial multipliers of the levels.
        feature_dim: channels per plane.
    """

    def __init__(self, resolution: Sequence[int], multires: Sequence[int], feature_dim: int) -> None:
        super().__init__()
        if len(resolution) != 4 or min(resolution) < 2:
            raise ValueError(f"HexPlane resolution must be 4 sizes ≥ 2 (x, y, z, t), got {tuple(resolution)}")
        self.levels = nn.ModuleList()
        for mult in multires:
            res = [int(r * mult) for r in resolution[:3]] + [int(resolution[3])]
            planes = nn.ParameterList()
            for a, b in PLANE_AXES:
                plane = torch.empty(1, feature_dim, res[b], res[a])  # [1, F, H(axis b), W(axis a)]
                if b == 3:
                    nn.init.ones_(plane)
                else:
                    nn.init.uniform_(plane, 0.1, 0.5)
                planes.append(nn.Parameter(plane))
            self.levels.append(planes)
        self.out_dim = feature_dim * len(multires)

    def forward(self, xyz: Tensor, t: float) -> Tensor:
        """Samples features at normalised positions ``xyz`` [N, 3] and time ``t``."""
        return self.features(space_time_coords(xyz, t))

    def features(self, coords: Tensor) -> Tensor:
        """Samples features at space-time points ``coords`` [M, 4] (x, y, z, 2t − 1, each in [−1, 1])."""
        n = coords.shape[0]
        all_planes = [plane for level in self.levels for plane in level]
        if compiled_hexplane_usable(coords, all_planes):  # CPU: one fused loop instead of 6 x levels grid_samples
            return hexplane_features_compiled(coords, all_planes)
        feats = []
        for planes in self.levels:
            level = None
            for (a, b), plane in zip(PLANE_AXES, planes, strict=True):
                grid = coords[:, [a, b]].view(1, 1, n, 2)
                f = F.grid_sample(plane, grid, mode="bilinear", padding_mode="border", align_corners=True)
                f = f.view(plane.shape[1], n).t()  # [N, F]
                level = f if level is None else level * f
            feats.append(level)
        return torch.cat(feats, dim=-1)

    def spatial_planes(self) -> list[Tensor]:
        """Planes without a time axis (xy, xz, yz) of every level."""
        return [p for planes in self.levels for (a, b), p in zip(PLANE_AXES, planes, strict=True) if b != 3]

    def time_planes(self) -> list[Tensor]:
        """Planes with a time axis (xt, yt, zt) of every level."""
        return [p for planes in self.levels for (a, b), p in zip(PLANE_AXES, planes, strict=True) if b == 3]


def space_time_coords(xyz: Tensor, t: float) -> Tensor:
    """Normalised positions [N, 3] and time ``t`` ∈ [0, 1] as HexPlane coordinates [N, 4] in [−1, 1]."""
    return torch.cat([xyz, xyz.new_full((xyz.shape[0], 1), 2.0 * t - 1.0)], dim=-1)


def _head(width: int, out: int) -> nn.Sequential:
    head = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))
    nn.init.zeros_(head[-1].weight)
    nn.init.zeros_(head[-1].bias)
    return head


class HexPlaneMotion(MotionModel):
    """4DGS deformation: HexPlane features decoded into Δmean, Δlog-scale and Δquaternion."""

    config: HexPlaneMotionConfig

    def __init__(self, config: HexPlaneMotionConfig, num_frames: int = 1, aabb: Tensor | None = None) -> None:
        super().__init__(config, num_frames, aabb)
        lo, hi = self.aabb[0], self.aabb[1]
        pad = (hi - lo) * config.aabb_margin
        self.aabb.copy_(torch.stack([lo - pad, hi + pad]))
        self.field = HexPlaneField(config.resolution, config.multires, config.feature_dim)
        self.feature_out = nn.Linear(self.field.out_dim, config.net_width)
        self.pos_head = _head(config.net_width, 3)
        self.scale_head = _head(config.net_width, 3)
        self.rot_head = _head(config.net_width, 4)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        mlp = [*self.feature_out.parameters(), *self.pos_head.parameters(), *self.scale_head.parameters()]
        mlp += list(self.rot_head.parameters())
        return {"hexplane_grid": list(self.field.parameters()), "hexplane_mlp": mlp}

    def _normalised(self, means: Tensor) -> Tensor:
        lo, hi = self.aabb[0], self.aabb[1]
        return ((means - lo) / (hi - lo)) * 2.0 - 1.0

    def _decoded(self, gaussians: Mapping[str, Tensor], hidden: Tensor) -> dict[str, Tensor]:
        """Decoded offsets of one time (``hidden`` [N, width]) added to the canonical Gaussians."""
        return {
            "means": gaussians["means"] + self.pos_head(hidden),
            "scales": gaussians["scales"] + self.scale_head(hidden),
            "quats": gaussians["quats"] + self.rot_head(hidden),
            "opacities": gaussians["opacities"],
        }

    def deform(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        hidden = self.feature_out(self.field(self._normalised(gaussians["means"]), t))
        return self._decoded(gaussians, hidden)

    def deform_batch(self, gaussians: Mapping[str, Tensor], ts: list[float]) -> list[dict[str, Tensor]]:
        """All times in one field lookup and one decoder pass over B · N points (positions normalised once)."""
        if len(ts) == 1:
            return [self.deform(gaussians, ts[0])]
        xyz = self._normalised(gaussians["means"])
        coords = torch.cat([space_time_coords(xyz, t) for t in ts])  # [B·N, 4]
        hidden = self.feature_out(self.field.features(coords)).split(xyz.shape[0])
        return [self._decoded(gaussians, h) for h in hidden]

    def regularization(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        if not self.active:
            return {}
        cfg = self.config
        spatial, temporal = self.field.spatial_planes(), self.field.time_planes()
        return {
            "plane_tv": cfg.plane_tv_weight * sum(plane_tv(p) for p in spatial),
            "time_smoothness": cfg.time_smoothness_weight * sum(time_smoothness(p) for p in temporal),
            "l1_time_planes": cfg.l1_time_planes_weight * sum(l1_to_one(p) for p in temporal),
        }
