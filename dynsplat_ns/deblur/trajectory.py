"""Camera motion during the exposure: one learnable SE(3) trajectory per training image (BAD-Gaussians' idea).

Each image's trajectory is a few control knots in se(3) (translation, then rotation as an axis-angle vector), offsets
of the camera in its own frame: a pose along the trajectory is ``c2w @ exp(offset(u))`` for ``u`` ∈ [0, 1] from the
start to the end of the exposure. ``linear``: two knots (start, end), the offset interpolated linearly in se(3);
``spline``: four knots of a uniform cubic B-spline. The table starts at zero, so every pose along every trajectory is
exactly the image's pose (``exp(0)`` is the identity): the virtual views of an image start identical to the plain view.

``centered`` trajectories subtract the offset at mid-exposure (u = 0.5), so the image's pose is the middle of its
exposure (where structure-from-motion on blurry images puts it) and the trajectory only spreads the views around it:
the table's common offset, a pose correction, is the camera optimizer's job, not the blur model's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from dynsplat_ns.rotations import compose

TrajectoryKind = Literal["linear", "spline"]
#: Control knots per image of each trajectory kind.
NUM_KNOTS = {"linear": 2, "spline": 4}


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


class ExposureTrajectory(nn.Module):
    """Per-image camera trajectories over the exposure.

    Args:
        num_images: number of training images (the camera optimizer's indexing: ``camera.metadata["cam_idx"]``).
        kind: ``linear`` (start/end knots) or ``spline`` (four cubic B-spline knots).
        init_std: standard deviation of a (seeded) random initial offset; 0 starts exactly at the identity.
        centered: subtract the offset at u = 0.5: mid-exposure is the image's pose.
    """

    def __init__(
        self, num_images: int, kind: TrajectoryKind = "linear", init_std: float = 0.0, centered: bool = False
    ) -> None:
        super().__init__()
        if kind not in NUM_KNOTS:
            raise ValueError(f"unknown trajectory kind {kind!r} (use 'linear' or 'spline')")
        self.kind: TrajectoryKind = kind
        self.centered = bool(centered)
        knots = torch.zeros(max(int(num_images), 1), NUM_KNOTS[kind], 6)
        if init_std > 0:
            knots.normal_(0.0, init_std, generator=torch.Generator().manual_seed(0))
        self.knots = nn.Parameter(knots)  # [num_images, knots, 6]

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
