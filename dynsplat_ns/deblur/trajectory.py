"""Camera motion during the exposure: one learnable SE(3) trajectory per training image (BAD-Gaussians' idea).

Each image's trajectory is a few control knots in se(3) (translation, then rotation as an axis-angle vector), offsets
of the camera in its own frame: a pose along the trajectory is ``c2w @ exp(offset(u))`` for ``u`` ∈ [0, 1] from the
start to the end of the exposure. ``linear``: two knots (start, end), the offset interpolated linearly in se(3);
``spline``: four knots of a uniform cubic B-spline. The table starts at zero, so every pose along every trajectory is
exactly the image's pose (``exp(0)`` is the identity): the virtual views of an image start identical to the plain view.

``centered`` trajectories subtract the offset at mid-exposure (u = 0.5), so the image's pose is the middle of its
exposure (where structure-from-motion on blurry images puts it) and the trajectory only spreads the views around it:
the table's common offset, a pose correction, is the camera optimizer's job, not the blur model's.

Two regularisers keep the trajectories plausible: the mean squared offset of the trained image's knots (small shake)
and the mean squared difference to the knots of the next frame's image (smooth over time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, VirtualViews
from dynsplat_ns.rotations import compose
from dynsplat_ns.schedules import decaying_adam

TrajectoryKind = Literal["linear", "spline"]
#: Control knots per image of each trajectory kind.
NUM_KNOTS = {"linear": 2, "spline": 4}
#: Optimizer group of the trajectory knots.
TRAJECTORY_GROUP = "deblur_trajectory"


def sample_positions(num_views: int, device: torch.device | str | None = None) -> Tensor:
    """``num_views`` positions u ∈ [0, 1] spread evenly over the exposure (start and end included; 0.5 for one)."""
    if num_views == 1:
        return torch.full((1,), 0.5, device=device)
    return torch.linspace(0.0, 1.0, num_views, device=device)


def interpolation_weights(kind: TrajectoryKind, u: Tensor) -> Tensor:
    """Weights [K, knots] of the control knots at positions ``u`` [K].

    ``linear``: (1 - u, u). ``spline``: the uniform cubic B-spline basis over four knots (the curve runs between
    the two middle knots' neighbourhood and is C² smooth; all weights are non-negative and sum to 1).
    """
    if kind == "linear":
        return torch.stack([1.0 - u, u], dim=-1)
    if kind == "spline":
        u2, u3 = u * u, u * u * u
        return torch.stack(
            [(1 - u) ** 3, 3 * u3 - 6 * u2 + 4, -3 * u3 + 3 * u2 + 3 * u + 1, u3], dim=-1
        ) / 6.0  # fmt: skip
    raise ValueError(f"unknown trajectory kind {kind!r} (use 'linear' or 'spline')")


@dataclass
class ExposureTrajectoryConfig(BlurComponentConfig):
    """Camera shake during the exposure: the K views' poses along a learnable SE(3) trajectory per training image."""

    _target: type = field(default_factory=lambda: ExposureTrajectory)
    """Blur component class to instantiate."""
    enabled: bool = True
    """Move the K views along the image's trajectory (``--pipeline.model.camera-blur``); False keeps the trajectory
    table (saved, resumable) but renders every view at the image's pose."""
    kind: TrajectoryKind = "linear"
    """'linear' (start and end knots) or 'spline' (four knots of a uniform cubic B-spline)."""
    init_std: float = 1e-5
    """Standard deviation of a (seeded) random initial offset; 0 starts exactly at the identity."""
    centered: bool = True
    """Subtract the offset at u = 0.5: mid-exposure is the image's pose."""
    lr: float = 3e-3
    """Initial learning rate of the knots (decays ×0.01 over the run)."""
    magnitude_weight: float = 1e-2
    """Weight of the mean squared se(3) offset of the trained image's knots."""
    smoothness_weight: float = 1e-2
    """Weight of the mean squared difference between the trained image's knots and the next frame's image's."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """One exponentially decaying Adam group for the knots."""
        return {TRAJECTORY_GROUP: decaying_adam(self.lr, 0.01, max_steps)}


class ExposureTrajectory(BlurComponent):
    """Per-image camera trajectories over the exposure: a table of se(3) knots [num_images, knots, 6].

    Args:
        config: its config (kind, initial spread, centering, rate, regulariser weights).
        num_images: number of training images (the camera optimizer's indexing: ``camera.metadata["cam_idx"]``).
        num_frames: number of training frames (unused: the table is per image).
    """

    config: ExposureTrajectoryConfig

    def __init__(self, config: ExposureTrajectoryConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__(config, num_images, num_frames)
        kind = config.kind
        if kind not in NUM_KNOTS:
            raise ValueError(f"unknown trajectory kind {kind!r} (use 'linear' or 'spline')")
        self.kind: TrajectoryKind = kind
        self.centered = bool(config.centered)
        knots = torch.zeros(self.num_images, NUM_KNOTS[kind], 6)
        if config.init_std > 0:
            knots.normal_(0.0, config.init_std, generator=torch.Generator().manual_seed(0))
        self.knots = nn.Parameter(knots)  # [num_images, knots, 6]
        # Each trained image's time and camera centre, filled as images are trained (for the smoothness neighbours);
        # not saved: a resumed run refills them within an epoch.
        self.register_buffer("seen_times", torch.full((self.num_images,), math.nan), persistent=False)
        self.register_buffer("seen_centres", torch.zeros(self.num_images, 3), persistent=False)

    # ---- parameters ------------------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {TRAJECTORY_GROUP: [self.knots]}

    def per_image_state_keys(self) -> dict[str, int]:
        """The knots [num_images, knots, 6]."""
        return {"knots": 0}

    # ---- trajectories ----------------------------------------------------------------------------------------
    def offsets(self, image_index: int, u: Tensor) -> Tensor:
        """se(3) offsets [K, 6] of image ``image_index`` at positions ``u`` [K] ∈ [0, 1]."""
        return self._weights(u) @ self.knots[image_index]

    def _weights(self, u: Tensor) -> Tensor:
        """Knot weights [K, knots] at ``u`` [K]; centered: minus the weights at mid-exposure."""
        w = interpolation_weights(self.kind, u.to(self.knots.device, self.knots.dtype))
        if self.centered:
            w = w - interpolation_weights(self.kind, torch.full_like(w[:1, 0], 0.5))
        return w

    def virtual_c2w(self, c2w: Tensor, image_index: int, num_views: int) -> Tensor:
        """Camera-to-world poses [K, 3, 4] along image ``image_index``'s trajectory.

        Args:
            c2w: the image's pose, [3, 4] or [1, 3, 4] (nerfstudio's OpenGL camera-to-world).
            image_index: the image's row of the table.
            num_views: K poses, at :func:`sample_positions`.
        """
        u = sample_positions(num_views, self.knots.device)
        return compose(c2w, self.offsets(image_index, u))

    def endpoints(self, image_index: int | Tensor) -> tuple[Tensor, Tensor]:
        """se(3) offsets at the start (u = 0) and end (u = 1) of the exposure, [..., 6] each."""
        u = torch.tensor([0.0, 1.0], device=self.knots.device, dtype=self.knots.dtype)
        ends = self._weights(u) @ self.knots[image_index]  # [..., 2, 6]
        return ends[..., 0, :], ends[..., 1, :]

    # ---- training render -------------------------------------------------------------------------------------
    @property
    def spreads_exposure(self) -> bool:
        return self.config.enabled

    def expand(self, step: BlurStep, views: VirtualViews) -> VirtualViews:
        """The views' poses along the image's trajectory (for a training image, with K > 1 views); records the image's
        time and camera centre for the smoothness neighbours."""
        if step.image is not None:
            self.remember(step.image, step.time, step.pose)
        if not (self.config.enabled and step.num_views > 1 and step.image is not None):
            return views
        return replace(views, poses=self.virtual_c2w(step.pose, step.image, step.num_views))

    @torch.no_grad()
    def remember(self, image: int, t: float, c2w: Tensor) -> None:
        """Keeps image ``image``'s time ``t`` and camera centre (of its camera-to-world [3, 4])."""
        if 0 <= image < self.seen_times.shape[0]:
            self.seen_times[image] = float(t)
            self.seen_centres[image] = c2w[:, 3].to(self.seen_centres)

    def next_frame_image(self, image: int) -> int | None:
        """The trained image of the next training time (the nearest camera centre among that time's images), or
        None when no later image has been trained yet."""
        times = self.seen_times
        t = times[image]
        later = torch.isfinite(times) & (times > t + 1e-6)
        if not bool(later.any()):
            return None
        t_next = times[later].min()
        candidates = torch.nonzero(later & ((times - t_next).abs() <= 1e-6)).reshape(-1)
        dist = (self.seen_centres[candidates] - self.seen_centres[image]).norm(dim=-1)
        return int(candidates[dist.argmin()])

    def loss(self, step: BlurStep) -> dict[str, Tensor]:
        """The trained image's trajectory regularisers: magnitude, and smoothness towards the next frame's image."""
        cfg, image = self.config, step.image
        if not (cfg.enabled and step.num_views > 1 and image is not None):
            return {}
        losses = {}
        if cfg.magnitude_weight > 0:
            losses["trajectory_magnitude"] = cfg.magnitude_weight * self.knots[image].square().mean()
        nxt = self.next_frame_image(image) if cfg.smoothness_weight > 0 else None
        if nxt is not None:
            diff = self.knots[image] - self.knots[nxt]
            losses["trajectory_smoothness"] = cfg.smoothness_weight * diff.square().mean()
        return losses

    def metrics(self) -> dict[str, Tensor]:
        """The mean trajectory length (start to end of the exposure, in se(3))."""
        start, end = self.endpoints(torch.arange(self.knots.shape[0]))
        return {"deblur_trajectory_length": (end - start).detach().norm(dim=-1).mean()}
