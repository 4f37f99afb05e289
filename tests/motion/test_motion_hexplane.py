"""4DGS HexPlane motion: identity at init, warm-up, gradients, regularisers."""

from __future__ import annotations

import torch

from dynsplat_ns.motion import HexPlaneMotionConfig, StaticMotionConfig


def _gaussians(n: int = 50) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, 1, generator=g),
    }


def _model(**kw):
    cfg = HexPlaneMotionConfig(resolution=(8, 8, 8, 5), multires=(1, 2), feature_dim=4, net_width=16, **kw)
    return cfg.setup(num_frames=5, aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))


def test_identity_at_init_for_every_time():
    model = _model(static_warmup_steps=0)
    gs = _gaussians()
    for t in (0.0, 0.37, 1.0):
        out = model(gs, t)
        for k in ("means", "scales", "quats", "opacities"):
            assert torch.equal(out[k], gs[k]), k


def test_static_warmup_then_deformation_learns_a_time_dependent_offset():
    model = _model(static_warmup_steps=10)
    gs = _gaussians()
    assert not model.active and model.regularization(gs, 0.5) == {}
    model.set_step(10)
    assert model.active
    target = {0.0: torch.tensor([0.2, 0.0, 0.0]), 1.0: torch.tensor([-0.2, 0.0, 0.0])}
    params = [p for group in model.param_groups().values() for p in group]
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for step in range(150):
        t = float(step % 2)
        loss = (model(gs, t)["means"] - gs["means"] - target[t]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    d0 = model(gs, 0.0)["means"] - gs["means"]
    d1 = model(gs, 1.0)["means"] - gs["means"]
    assert d0[:, 0].mean() > 0.1 and d1[:, 0].mean() < -0.1


def test_param_groups_cover_all_parameters_once():
    model = _model()
    grouped = [p for group in model.param_groups().values() for p in group]
    assert len(grouped) == len({id(p) for p in grouped}) == len(list(model.parameters()))
    assert set(HexPlaneMotionConfig().optimizer_configs(100)) == set(model.param_groups())


def test_regularisers_are_zero_at_init_for_time_planes_and_positive_for_tv():
    model = _model(static_warmup_steps=0)
    reg = model.regularization(_gaussians(), 0.5)
    assert reg["time_smoothness"].item() == 0.0
    assert reg["l1_time_planes"].item() == 0.0
    assert reg["plane_tv"].item() > 0.0


def test_static_model_has_no_parameters():
    model = StaticMotionConfig().setup(num_frames=3)
    gs = _gaussians()
    assert list(model.parameters()) == [] and model.param_groups() == {}
    assert torch.equal(model(gs, 0.5)["means"], gs["means"])
