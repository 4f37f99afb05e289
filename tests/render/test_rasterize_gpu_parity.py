"""GPU parity: the torch backend vs gsplat 1.4.0's CUDA ``rasterization`` (outputs, meta and gradients).

Skipped without CUDA. float32 on both sides; gsplat's kernels use fast-math exp and float transmittance, so
tolerances are those of fp32 (~1e-4 on outputs, 1e-3 relative to the largest entry on gradients).
"""

from __future__ import annotations

import pytest
import torch
from rasterize_testkit import GRAD_KEYS, random_scene, with_grads

from dynsplat_ns.render import RENDER_MODES, rasterize

pytestmark = [
    pytest.mark.requires_cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _cuda_scene(sh_degree, seed=0):
    scene = random_scene(
        n=300, n_cams=2, width=64, height=48, sh_degree=sh_degree, dtype=torch.float32, seed=seed
    )
    scene["opacities"] = scene["opacities"].clamp(max=0.9)
    device = torch.device("cuda")
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in scene.items()}


def _run(scene, backend, render_mode):
    leaves = with_grads(scene)
    render, alpha, meta = rasterize(**leaves, render_mode=render_mode, absgrad=True, backend=backend)
    meta["means2d"].retain_grad()
    gen = torch.Generator(device="cuda").manual_seed(0)
    cot_r = torch.randn(render.shape, generator=gen, device="cuda")
    cot_a = torch.randn(alpha.shape, generator=gen, device="cuda")
    ((render * cot_r).sum() + (alpha * cot_a).sum()).backward()
    return render, alpha, meta, leaves


def _close_relative(a, b, atol, msg):
    scale = b.abs().max().clamp(min=1e-6)
    torch.testing.assert_close(a / scale, b / scale, rtol=0, atol=atol, msg=msg)


@pytest.mark.parametrize("render_mode", RENDER_MODES)
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_torch_backend_matches_gsplat_cuda(render_mode, sh_degree):
    scene = _cuda_scene(sh_degree)
    render_t, alpha_t, meta_t, leaves_t = _run(scene, "torch", render_mode)
    render_g, alpha_g, meta_g, leaves_g = _run(scene, "gsplat", render_mode)
    assert meta_t["backend"] == "torch" and meta_g["backend"] == "gsplat"
    assert set(meta_t) == set(meta_g)

    visible = meta_g["radii"] > 0
    assert torch.equal(meta_t["radii"] > 0, visible)
    assert (meta_t["radii"] == meta_g["radii"]).float().mean() > 0.99
    for key in ("means2d", "depths", "conics"):
        torch.testing.assert_close(meta_t[key][visible], meta_g[key][visible], rtol=1e-4, atol=1e-4, msg=key)

    torch.testing.assert_close(alpha_t, alpha_g, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(render_t, render_g, rtol=1e-4, atol=1e-4)

    for key in GRAD_KEYS:
        g_t, g_g = leaves_t[key].grad, leaves_g[key].grad
        if g_g is None or torch.count_nonzero(g_g) == 0:
            assert g_t is None or torch.count_nonzero(g_t) == 0, key
            continue
        _close_relative(g_t, g_g, 1e-3, f"gradient of {key}")
    _close_relative(meta_t["means2d"].grad[visible], meta_g["means2d"].grad[visible], 1e-3, "means2d.grad")
    _close_relative(meta_t["means2d"].absgrad[visible], meta_g["means2d"].absgrad[visible], 1e-3, "absgrad")


def test_auto_backend_picks_gsplat_on_cuda():
    scene = _cuda_scene(None)
    _, _, meta = rasterize(**scene)
    assert meta["backend"] == "gsplat"
