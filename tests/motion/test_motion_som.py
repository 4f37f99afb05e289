"""Shape-of-Motion bases: identity at init, continuity in time, coefficient init, learning, errors."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.motion import ShapeOfMotionConfig


def _gaussians(n: int = 200) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(n, 4, generator=g)
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": q / q.norm(dim=-1, keepdim=True),
        "opacities": torch.randn(n, 1, generator=g),
    }


def _model(num_frames: int = 6, **kw):
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    model = ShapeOfMotionConfig(num_bases=4, **kw).setup(num_frames=num_frames, aabb=aabb)
    gs = _gaussians()
    gs.update(model.per_gaussian_params(gs))
    return model, gs


def test_identity_at_init():
    model, gs = _model()
    for t in (0.0, 0.41, 1.0):
        out = model(gs, t)
        assert torch.allclose(out["means"], gs["means"], atol=1e-6)
        assert torch.allclose(out["quats"], gs["quats"], atol=1e-6)
        assert torch.equal(out["scales"], gs["scales"])


def test_coefficients_start_spatially_coherent():
    model, gs = _model()
    coefs = gs["motion_coefs"]
    assert coefs.shape == (200, 4)
    weights = torch.softmax(coefs, dim=-1)
    assert torch.allclose(weights.sum(-1), torch.ones(200))
    # nearest neighbours mostly share their dominant basis
    d = torch.cdist(gs["means"], gs["means"]) + torch.eye(200) * 10
    nn_idx = d.argmin(dim=1)
    dominant = weights.argmax(dim=-1)
    assert (dominant == dominant[nn_idx]).float().mean() > 0.7


def test_motion_is_continuous_in_time_and_interpolates_between_frames():
    model, gs = _model(num_frames=5)
    with torch.no_grad():
        model.transls.normal_(0, 0.3)
        model.rots.add_(torch.randn_like(model.rots) * 0.2)
    frame = [model(gs, k / 4)["means"] for k in range(5)]
    eps = 1e-4
    for t in torch.linspace(0, 1 - eps, 17).tolist():
        a, b = model(gs, t)["means"], model(gs, t + eps)["means"]
        assert (a - b).abs().max() < 1e-2
    # no snapping: a time between two frames is neither frame
    mid = model(gs, 0.125)["means"]
    assert (mid - frame[0]).abs().max() > 1e-3 and (mid - frame[1]).abs().max() > 1e-3
    with torch.no_grad():
        model.rots.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]).expand_as(model.rots))
    mid = model(gs, 0.125)["means"]
    halfway = 0.5 * (model(gs, 0.0)["means"] + model(gs, 0.25)["means"])
    assert torch.allclose(mid, halfway, atol=1e-5)


def test_learns_a_rigid_time_dependent_translation():
    model, gs = _model(num_frames=3, smoothness_weight=0.0)
    params = [p for group in model.param_groups().values() for p in group] + [gs["motion_coefs"].requires_grad_()]
    opt = torch.optim.Adam(params, lr=2e-2)
    target = {0.0: 0.0, 0.5: 0.3, 1.0: -0.3}
    losses = []
    for step in range(240):
        t = list(target)[step % 3]
        loss = (model(gs, t)["means"] - gs["means"] - torch.tensor([target[t], 0, 0])).square().mean()
        loss = loss + sum(model.regularization(gs, t).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.05 * sum(losses[:3])
    shift = (model(gs, 0.5)["means"] - gs["means"])[:, 0].mean()
    assert abs(float(shift) - 0.3) < 0.05


def test_regularisers():
    model, gs = _model()
    reg = model.regularization(gs, 0.5)
    assert reg["bases_smoothness"].item() == 0.0 and "rigidity" not in reg
    model, gs = _model(rigidity_weight=1.0)
    with torch.no_grad():
        model.transls.normal_(0, 0.5)
    assert model.regularization(gs, 0.5)["rigidity"].item() > 0.0


def test_bad_number_of_bases_is_a_clear_error():
    with pytest.raises(ValueError, match="num_bases must be"):
        ShapeOfMotionConfig(num_bases=0).setup(num_frames=4)
