"""Batched motion (issue 12 §1): ``forward(gaussians, ts[B])`` equals the per-time calls for every built-in model, and
regularisers reuse the state the render computed instead of deforming again."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.motion import (
    HexPlaneMotionConfig,
    MarblesMotionConfig,
    ShapeOfMotionConfig,
    StaticMotionConfig,
)
from dynsplat_ns.motion.base import MOVABLE_KEYS

TIMES = [0.1, 0.55, 0.93, 0.55]  # a repeated time and times between frames


def _gaussians(n: int = 150) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    q = torch.randn(n, 4, generator=g)
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": q / q.norm(dim=-1, keepdim=True),
        "opacities": torch.randn(n, 1, generator=g),
    }


def _moving(name: str, **kw):
    """A model of each kind with parameters moved off the identity, and its Gaussians (motion parameters included)."""
    torch.manual_seed(0)
    configs = {
        "static": lambda: StaticMotionConfig(),
        "hexplane": lambda: HexPlaneMotionConfig(resolution=(6, 6, 6, 5), feature_dim=4, net_width=16,
                                                 static_warmup_steps=0, **kw),
        "som": lambda: ShapeOfMotionConfig(num_bases=3, **kw),
        "marbles": lambda: MarblesMotionConfig(**kw),
    }  # fmt: skip
    model = configs[name]().setup(num_frames=5, aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    gs = _gaussians()
    gs.update(model.per_gaussian_params(gs))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for key in set(gs) - set(MOVABLE_KEYS):
            gs[key] = gs[key] + 0.3 * torch.randn_like(gs[key])
    return model, {k: v.clone().requires_grad_(True) for k, v in gs.items()}


@pytest.mark.parametrize("name", ["static", "hexplane", "som", "marbles"])
def test_batched_forward_equals_per_time_calls(name):
    model, gs = _moving(name)
    batched = model(gs, torch.tensor(TIMES))
    assert isinstance(batched, list) and len(batched) == len(TIMES)
    assert isinstance(model(gs, TIMES[0]), dict)  # one time keeps returning one dict
    for t, state in zip(TIMES, batched, strict=True):
        single = model(gs, t)
        assert state.keys() == single.keys()
        for key in MOVABLE_KEYS:
            torch.testing.assert_close(state[key], single[key], rtol=1e-5, atol=1e-6, msg=f"{name} {key} t={t}")
    if name != "static":
        assert not torch.allclose(batched[0]["means"], batched[2]["means"])  # the times really differ
    assert model(gs, TIMES) is not None and len(model(gs, TIMES)) == len(TIMES)  # a sequence is a batch too


def test_batched_forward_while_inactive_is_canonical():
    model, gs = _moving("hexplane")
    model.config.static_warmup_steps = 10
    model.set_step(3)
    for state in model(gs, torch.tensor(TIMES)):
        assert all(torch.equal(state[k], gs[k]) for k in MOVABLE_KEYS)


@pytest.mark.parametrize("name", ["hexplane", "som"])
def test_batched_gradients_equal_per_time_gradients(name):
    model, gs = _moving(name)
    cot = torch.randn(len(TIMES), gs["means"].shape[0], 3, generator=torch.Generator().manual_seed(2))
    inputs = [*gs.values(), *model.parameters()]

    def grads(states):
        loss = sum((s["means"] * c).sum() + (s["quats"] * c[:, :1]).sum() for s, c in zip(states, cot, strict=True))
        return torch.autograd.grad(loss, inputs, allow_unused=True)

    batched = grads(model(gs, torch.tensor(TIMES)))
    single = grads([model(gs, t) for t in TIMES])
    assert sum(g is not None for g in batched) > 2
    for b, s in zip(batched, single, strict=True):
        assert (b is None) == (s is None)
        if b is not None:
            torch.testing.assert_close(b, s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kw", "key"), [("som", {"rigidity_weight": 1.0}, "rigidity"), ("marbles", {}, "isometry")]
)
def test_regularisers_reuse_the_render_state(name, kw, key, monkeypatch):
    """After a training-mode forward at t, a regulariser at t reads that state (no second deformation) and gives the
    value a fresh deformation gives; once a parameter changed in place, it deforms afresh."""
    model, gs = _moving(name, **kw)
    fresh = model.regularization(gs, 0.55)[key]
    states = model(gs, [0.1, 0.55, 0.93])  # e.g. the model's distinct render times
    calls = []
    original = model.deform
    monkeypatch.setattr(model, "deform", lambda *a: calls.append(a) or original(*a))
    torch.manual_seed(0)  # the losses sample Gaussians; same sample for both evaluations
    reused = model.regularization(gs, 0.55)[key]
    assert calls == [] and model.state_at(gs, 0.55) is states[1]
    torch.manual_seed(0)
    model._rendered = None
    recomputed = model.regularization(gs, 0.55)[key]
    assert len(calls) == 1
    torch.testing.assert_close(reused, recomputed)
    assert reused.requires_grad and fresh.shape == reused.shape

    model(gs, 0.55)
    calls.clear()
    with torch.no_grad():
        next(iter(model.parameters()), gs["means"]).add_(0.01)  # an optimizer step: in-place update
    model.regularization(gs, 0.55)
    assert len(calls) == 1
    model.eval()
    model(gs, 0.55)  # eval renders keep nothing
    assert model._rendered is None
