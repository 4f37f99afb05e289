"""Gaussian Marbles: isotropic, identity offsets at init, continuous in time, memory cap, regularisers."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.motion import MarblesMotionConfig


def _gaussians(n: int = 100) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, 1, generator=g),
    }


def _model(num_frames: int = 5, **kw):
    model = MarblesMotionConfig(**kw).setup(num_frames=num_frames)
    gs = _gaussians()
    gs.update(model.per_gaussian_params(gs))
    return model, gs


def test_identity_means_isotropic_unrotated():
    model, gs = _model()
    assert gs["marble_offsets"].shape == (100, 5, 3) and not gs["marble_offsets"].any()
    out = model(gs, 0.3)
    assert torch.equal(out["means"], gs["means"])
    assert torch.allclose(out["scales"], gs["scales"].mean(-1, keepdim=True).expand(-1, 3))
    assert torch.equal(out["quats"], torch.tensor([1.0, 0, 0, 0]).expand(100, 4))


def test_offsets_interpolate_continuously():
    model, gs = _model(num_frames=3)
    gs["marble_offsets"] = torch.randn(100, 3, 3, generator=torch.Generator().manual_seed(3))
    at = {t: model(gs, t)["means"] - gs["means"] for t in (0.0, 0.25, 0.5)}
    assert torch.allclose(at[0.0], gs["marble_offsets"][:, 0])
    assert torch.allclose(at[0.5], gs["marble_offsets"][:, 1])
    assert torch.allclose(at[0.25], 0.5 * (at[0.0] + at[0.5]), atol=1e-6)


def test_memory_cap():
    model = MarblesMotionConfig(max_motion_floats=3000).setup(num_frames=10)
    assert model.max_gaussians() == 100
    with pytest.raises(ValueError, match="max_motion_floats"):
        model.per_gaussian_params(_gaussians(101))


def test_regularisers_zero_at_init_positive_when_moving():
    model, gs = _model()
    reg = model.regularization(gs, 0.5)
    assert reg["velocity_smoothness"].item() == 0.0 and reg["isometry"].item() == 0.0
    gs["marble_offsets"] = torch.randn(100, 5, 3)
    reg = model.regularization(gs, 0.5)
    assert reg["velocity_smoothness"].item() > 0 and reg["isometry"].item() > 0


def test_offset_magnitude_pulls_unneeded_offsets_back_to_zero():
    """A drift shared by neighbouring frames (a linear-in-time path) is invisible to the second-difference smoothness
    but not to the magnitude term, whose gradient points every offset back to zero."""
    model, gs = _model(magnitude_weight=2.0)
    reg = model.regularization(gs, 0.5)
    assert reg["offset_magnitude"].item() == 0.0
    drift = torch.linspace(0.0, 1.0, 5)[None, :, None] * torch.tensor([0.3, 0.0, 0.0])
    gs["marble_offsets"] = drift.expand(100, 5, 3).clone().requires_grad_(True)
    reg = model.regularization(gs, 0.5)
    assert reg["velocity_smoothness"].item() < 1e-10  # a linear path: no second difference
    assert reg["offset_magnitude"].item() == pytest.approx(2.0 * drift.abs().mean().item())
    reg["offset_magnitude"].backward()
    grad = gs["marble_offsets"].grad
    assert (grad[:, 1:, 0] > 0).all() and (grad[:, :, 1:] == 0).all()
    assert "offset_magnitude" not in _model()[0].regularization(gs, 0.5)  # weight 0: no term


def test_offset_stillness_stops_a_slow_drift_but_not_a_constant_shift():
    """Total variation in time: zero for a Gaussian shifted by the same offset at every frame (it is static), positive
    for a drift shared by neighbouring frames, which the second-difference smoothness does not see."""
    model, gs = _model(stillness_weight=3.0)
    gs["marble_offsets"] = torch.full((100, 5, 3), 0.4)
    assert model.regularization(gs, 0.5)["offset_stillness"].item() == 0.0
    drift = torch.linspace(0.0, 1.0, 5)[None, :, None] * torch.tensor([0.2, 0.0, 0.0])
    gs["marble_offsets"] = drift.expand(100, 5, 3).clone().requires_grad_(True)
    reg = model.regularization(gs, 0.5)
    assert reg["velocity_smoothness"].item() < 1e-10
    assert reg["offset_stillness"].item() == pytest.approx(3.0 * 0.05 / 3, rel=1e-5)  # |Δ| = 0.05 on x only
    reg["offset_stillness"].backward()
    grad = gs["marble_offsets"].grad[:, :, 0]
    assert (grad[:, 0] < 0).all() and (grad[:, -1] > 0).all()  # the ends are pulled together
