"""Units of the blur model: exposure trajectories (linear and cubic spline) and bounded exposure times."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.deblur.exposure import ExposureTimes, ExposureTimesConfig
from dynsplat_ns.deblur.trajectory import (
    ExposureTrajectory,
    ExposureTrajectoryConfig,
    interpolation_weights,
    sample_positions,
)


def _trajectory(num_images: int, kind: str, init_std: float = 0.0, centered: bool = False) -> ExposureTrajectory:
    config = ExposureTrajectoryConfig(kind=kind, init_std=init_std, centered=centered)
    return config.setup(num_images=num_images)


def _exposure(num_frames: int, exposure_range=(0.1, 0.9), shared: bool = False) -> ExposureTimes:
    return ExposureTimesConfig(exposure_range=exposure_range, shared=shared).setup(num_frames=num_frames)


def _pose() -> torch.Tensor:
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))[0]
    return torch.cat([rot, torch.tensor([[0.3], [-1.2], [2.0]])], dim=1)


@pytest.mark.parametrize("kind", ["linear", "spline"])
def test_zero_trajectory_is_exactly_the_pose(kind):
    traj = _trajectory(4, kind)
    c2w = _pose()
    poses = traj.virtual_c2w(c2w[None], 2, 7)
    assert poses.shape == (7, 3, 4)
    assert torch.equal(poses, c2w.expand(7, 3, 4))


@pytest.mark.parametrize("kind", ["linear", "spline"])
def test_weights_form_a_partition_of_unity(kind):
    w = interpolation_weights(kind, sample_positions(9))
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(9))


def test_linear_trajectory_runs_from_start_to_end_in_the_camera_frame():
    traj = _trajectory(3, "linear")
    with torch.no_grad():
        traj.knots[1, 0] = torch.tensor([-0.1, 0.0, 0.0, 0.0, 0.0, 0.0])  # start: 0.1 to the camera's left
        traj.knots[1, 1] = torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])  # end: 0.1 to its right
    c2w = _pose()
    poses = traj.virtual_c2w(c2w, 1, 3)
    x_axis = c2w[:, 0]
    for pose, s in zip(poses, (-0.1, 0.0, 0.1), strict=True):
        torch.testing.assert_close(pose[:, 3], c2w[:, 3] + s * x_axis)
        torch.testing.assert_close(pose[:, :3], c2w[:, :3])
    start, end = traj.endpoints(1)
    torch.testing.assert_close(start, traj.knots[1, 0].detach())
    torch.testing.assert_close(end, traj.knots[1, 1].detach())


def test_exposure_fraction_is_bounded_and_sub_times_centre_on_the_frame():
    exposure = _exposure(11, (0.1, 0.9))
    with torch.no_grad():
        exposure.logits.copy_(torch.linspace(-50.0, 50.0, 11))
    fractions = exposure.fraction()
    assert fractions.min() >= 0.1 - 1e-6 and fractions.max() <= 0.9 + 1e-6  # float32 rounding
    with torch.no_grad():
        exposure.logits.zero_()
    taus = exposure.sub_times(0.5, sample_positions(5))  # frame 5; exposure 0.5 of the interval 0.1
    torch.testing.assert_close(taus, torch.tensor([0.475, 0.4875, 0.5, 0.5125, 0.525]))
    assert exposure.sub_times(0.0, sample_positions(3)).min() == 0.0  # clamped at the sequence's start
    assert torch.equal(_exposure(1).sub_times(0.3, sample_positions(3)), torch.full((3,), 0.3))


@pytest.mark.parametrize("kind", ["linear", "spline"])
def test_centered_trajectory_keeps_the_pose_at_mid_exposure(kind):
    """Centered: whatever the knots, mid-exposure is the image's pose and the views spread symmetrically (linear)."""
    traj = _trajectory(2, kind, init_std=0.05, centered=True)
    c2w = _pose()
    poses = traj.virtual_c2w(c2w, 1, 5)
    torch.testing.assert_close(poses[2], c2w)
    assert not torch.allclose(poses[0], c2w, atol=1e-3)  # the knots still spread the views
    start, end = traj.endpoints(1)
    knots = traj.knots[1].detach()
    if kind == "linear":  # offsets (u - 1/2) (end - start): the common offset of the knots is ignored
        torch.testing.assert_close(start, -end)
        torch.testing.assert_close(end - start, knots[1] - knots[0])
    free = _trajectory(2, kind, init_std=0.05)  # same seed, not centered: mid-exposure moves
    assert not torch.allclose(free.virtual_c2w(c2w, 1, 5)[2], c2w, atol=1e-4)


def test_shared_exposure_is_one_value_for_every_frame():
    exposure = _exposure(6, (0.1, 0.9), shared=True)
    assert exposure.logits.shape == (1,)
    with torch.no_grad():
        exposure.logits.fill_(1.0)
    fractions = exposure.fraction()
    assert fractions.shape == (6,) and torch.allclose(fractions, fractions[0].expand(6))
    torch.testing.assert_close(exposure.fraction(4), fractions[0])


def test_per_frame_exposure_is_the_shared_shutter_plus_the_frames_deviation():
    """Default: fraction_f = lo + (hi - lo) sigmoid(base + logit_f); the base gets the gradient of every frame's
    sub-times, a frame's own logit only its own."""
    exposure = _exposure(6, (0.1, 0.9))
    assert exposure.logits.shape == (6,) and exposure.base is not None and exposure.base.shape == (1,)
    with torch.no_grad():
        exposure.base.fill_(0.5)
        exposure.logits.copy_(torch.linspace(-1.0, 1.0, 6))
    expected = 0.1 + 0.8 * torch.sigmoid(0.5 + torch.linspace(-1.0, 1.0, 6))
    torch.testing.assert_close(exposure.fraction(), expected)
    torch.testing.assert_close(exposure.fraction(2), expected[2])
    for t in (0.2, 0.8):  # frames 1 and 4
        exposure.sub_times(t, sample_positions(3)).pow(2).sum().backward()
    assert exposure.base.grad.abs().item() > 0
    assert exposure.logits.grad.nonzero().flatten().tolist() == [1, 4]
    assert _exposure(6, shared=True).base is None

