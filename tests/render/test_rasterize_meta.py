"""The meta contract (what gsplat's strategies read), absgrad, and a CPU run of gsplat's DefaultStrategy."""

from __future__ import annotations

import pytest
import torch
from gsplat.strategy import DefaultStrategy
from rasterize_testkit import random_scene, with_grads

from dynsplat_ns.render import META_KEYS, rasterize


def test_meta_keys_shapes_and_culling():
    scene = random_scene(n=30, n_cams=2, seed=0, dtype=torch.float32)
    render, alpha, meta = rasterize(**scene, backend="torch")
    assert set(meta) == set(META_KEYS)
    assert meta["backend"] == "torch" and meta["packed"] is False
    assert meta["gaussian_ids"] is None and meta["camera_ids"] is None
    assert (meta["width"], meta["height"], meta["n_cameras"]) == (24, 20, 2)
    assert meta["radii"].dtype == torch.int32 and meta["radii"].shape == (2, 30)
    assert meta["means2d"].shape == (2, 30, 2)
    assert meta["depths"].shape == (2, 30) and meta["conics"].shape == (2, 30, 3)
    assert meta["opacities"].shape == (2, 30)
    # The testkit puts the first 3 Gaussians behind the cameras and the next 3 far off to the side.
    assert torch.all(meta["radii"][:, :6] == 0)
    assert torch.all(meta["radii"][:, 6:].sum(0) > 0)
    assert render.dtype == alpha.dtype == torch.float32


def test_means2d_grad_and_absgrad():
    scene = with_grads(random_scene(n=30, n_cams=2, width=8, height=6, seed=1))
    render, alpha, meta = rasterize(**scene, absgrad=True, backend="torch")
    means2d = meta["means2d"]
    assert not means2d.is_leaf
    means2d.retain_grad()
    gen = torch.Generator().manual_seed(0)
    cot_r = torch.randn(render.shape, generator=gen, dtype=render.dtype)
    cot_a = torch.randn(alpha.shape, generator=gen, dtype=alpha.dtype)
    ((render * cot_r).sum() + (alpha * cot_a).sum()).backward(retain_graph=True)
    grad, absgrad = means2d.grad.clone(), means2d.absgrad.clone()
    assert grad.shape == absgrad.shape == (2, 30, 2)
    visible = meta["radii"] > 0
    assert torch.count_nonzero(grad[visible]) > 0
    assert torch.all(grad[~visible] == 0) and torch.all(absgrad[~visible] == 0)

    # absgrad is the sum over pixels of |per-pixel gradient|: rebuild it one pixel at a time.
    expected = torch.zeros_like(absgrad)
    for cam in range(2):
        for y in range(6):
            for x in range(8):
                mask_r, mask_a = torch.zeros_like(cot_r), torch.zeros_like(cot_a)
                mask_r[cam, y, x], mask_a[cam, y, x] = 1.0, 1.0
                loss = (render * cot_r * mask_r).sum() + (alpha * cot_a * mask_a).sum()
                (g,) = torch.autograd.grad(loss, means2d, retain_graph=True)
                expected += g.abs()
    torch.testing.assert_close(absgrad, expected, rtol=1e-10, atol=1e-12)
    assert torch.all(absgrad >= grad.abs() - 1e-12)
    assert (absgrad > grad.abs() + 1e-9).any(), "some Gaussian should see gradients of both signs"


def test_no_absgrad_attribute_without_flag():
    scene = with_grads(random_scene(n=10, n_cams=1, seed=2))
    render, _, meta = rasterize(**scene, backend="torch")
    meta["means2d"].retain_grad()
    render.sum().backward()
    assert meta["means2d"].grad is not None
    assert not hasattr(meta["means2d"], "absgrad")


def _params_and_optimizers(n: int, seed: int):
    scene = random_scene(n=n, n_cams=1, width=32, height=24, seed=seed, dtype=torch.float32)
    opacities = scene["opacities"].clone()
    opacities[:4] = 1e-3  # these get pruned
    params = torch.nn.ParameterDict(
        {
            "means": scene["means"],
            "scales": torch.log(scene["scales"]),
            "quats": scene["quats"],
            "opacities": torch.logit(opacities),
            "colors": torch.logit(scene["colors"].clamp(0.05, 0.95)),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    return scene, params, optimizers


def _render(params, scene, absgrad):
    return rasterize(
        params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
        torch.sigmoid(params["colors"]), scene["viewmats"], scene["Ks"], scene["width"], scene["height"],
        absgrad=absgrad, backend="torch",
    )


@pytest.mark.parametrize("absgrad", [False, True])
def test_default_strategy_grows_and_prunes_on_cpu(absgrad):
    scene, params, optimizers = _params_and_optimizers(n=60, seed=3)
    strategy = DefaultStrategy(
        refine_start_iter=0, refine_every=1, reset_every=10_000, grow_grad2d=1e-12, grow_scale3d=0.07,
        prune_opa=0.005, absgrad=absgrad,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    target = torch.rand(1, 24, 32, 3, generator=torch.Generator().manual_seed(0))

    n_before = len(params["means"])
    for step in (1, 2):
        render, _, meta = _render(params, scene, absgrad)
        strategy.step_pre_backward(params, optimizers, state, step, meta)
        loss = ((render - target) ** 2).mean()
        loss.backward()
        image_grad = meta["means2d"].absgrad if absgrad else meta["means2d"].grad  # [1, N, 2]
        n_grow = int((image_grad[0].norm(dim=-1) > 0).sum())  # duplicated or split: +1 each
        n_low = int((torch.sigmoid(params["opacities"]) < 0.005).sum())  # pruned (they get no gradient)
        n_now = len(params["means"])
        strategy.step_post_backward(params, optimizers, state, step, meta)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        n_after = len(params["means"])
        assert n_grow > 10 and n_low == (4 if step == 1 else 0)
        assert n_after == n_now + n_grow - n_low
        assert all(len(p) == n_after for p in params.values())
        for key, opt in optimizers.items():
            assert opt.param_groups[0]["params"][0] is params[key]
            for value in opt.state[params[key]].values():
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    assert value.shape == params[key].shape
    assert torch.sigmoid(params["opacities"]).min() >= 0.005
    assert len(params["means"]) > n_before
    render, alpha, _ = _render(params, scene, absgrad)  # the grown scene still renders
    assert torch.isfinite(render).all() and alpha.max() > 0.5
