"""The compiled EWA projection (:mod:`dynsplat_ns.render.projection_compiled`) against the torch reference.

Tolerances: float64 outputs agree to 1e-12 and gradients to 1e-9 (same formulas, other rounding); float32 outputs to
1e-5 relative and gradients to 1e-4 of the largest reference gradient. Radii are integers and must be equal. Skipped
without the compiled kernels.
"""

from __future__ import annotations

import pytest
import torch
from rasterize_testkit import random_scene, with_grads

from dynsplat_ns.render import rasterize
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.projection_compiled import project_compiled

KEYS = ("means", "quats", "scales", "viewmats")


def _scene(n=60, n_cams=3, dtype=torch.float64, seed=0):
    scene = random_scene(n=n, n_cams=n_cams, width=32, height=24, seed=seed, dtype=dtype)
    # A few Gaussians right at the camera 0 centre plane, just behind and just in front of the near plane.
    eye = torch.linalg.inv(scene["viewmats"][0])[:3, 3]
    forward = scene["viewmats"][0, 2, :3]
    for i, z in enumerate((0.0, -0.02, 0.005, 0.03)):
        scene["means"][-1 - i] = eye + z * forward
    return scene


def _project(fn, scene, **kwargs):
    leaves = with_grads(scene, KEYS)
    args = [leaves[k] for k in ("means", "quats", "scales", "viewmats", "Ks")]
    proj = fn(*args, scene["width"], scene["height"], **kwargs)
    return proj, leaves


def _compare(scene, rtol, atol, grad_tol, **kwargs):
    proj_c, leaves_c = _project(project_compiled, scene, **kwargs)
    proj_t, leaves_t = _project(project_gaussians, scene, **kwargs)
    torch.testing.assert_close(proj_c.radii, proj_t.radii, rtol=0, atol=0)
    outs = ["means2d", "depths", "conics"] + (["compensations"] if kwargs.get("calc_compensations") else [])
    gen = torch.Generator().manual_seed(1)
    cotangents = [torch.randn(getattr(proj_t, name).shape, generator=gen, dtype=proj_t.depths.dtype) for name in outs]
    losses = [
        sum((getattr(proj, name) * cot).sum() for name, cot in zip(outs, cotangents, strict=True))
        for proj in (proj_c, proj_t)
    ]
    for name in outs:
        torch.testing.assert_close(getattr(proj_c, name), getattr(proj_t, name), rtol=rtol, atol=atol, msg=name)
    grads_c = torch.autograd.grad(losses[0], [leaves_c[k] for k in KEYS])
    grads_t = torch.autograd.grad(losses[1], [leaves_t[k] for k in KEYS])
    for key, g_c, g_t in zip(KEYS, grads_c, grads_t, strict=True):
        scale = g_t.abs().max().clamp(min=1.0)
        assert torch.count_nonzero(g_t) > 0, key
        torch.testing.assert_close(g_c / scale, g_t / scale, rtol=grad_tol, atol=grad_tol, msg=f"grad {key}")
    return proj_t


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torch_fp64(kernels, mode, seed):
    """Outputs and gradients wrt means, quats, scales and viewmats, three cameras, with Gaussians behind the cameras,
    at the near plane, off screen (their Jacobian clamped to 1.3x the field of view) and beyond the far plane."""
    scene = _scene(seed=seed)
    proj = _compare(scene, 1e-12, 1e-12, 1e-9, far_plane=3.5, calc_compensations=mode == "antialiased")
    x_over_z = proj.means2d[..., 0]
    depth = proj.depths
    assert (depth < 0.01).any() and (depth > 3.5).any(), "near and far culling should both trigger"
    assert ((proj.radii == 0) & (depth > 0.01) & (depth < 3.5)).any(), "off-screen culling should trigger"
    lim = 1.3 * scene["width"] / 2 + scene["width"] / 2  # pixel position of the clamp for a centred principal point
    assert ((x_over_z > lim) & (depth > 0.01)).any(), "the Jacobian clamp should be active"


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_matches_torch_fp32(kernels, mode):
    scene = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in _scene(seed=2).items()}
    _compare(scene, 1e-5, 1e-4, 1e-4, calc_compensations=mode == "antialiased")


def test_rasterize_viewmats_and_ks_gradients_match_torch(kernels):
    """End to end with SH colours: viewmats gradients through the compiled projection match torch's; with
    ``Ks.requires_grad`` the compiled backend projects in torch, so Ks gets its gradient too."""
    scene = random_scene(n=40, n_cams=2, width=24, height=20, sh_degree=1, seed=6)
    for keys in (("means", "viewmats"), ("means", "viewmats", "Ks")):
        grads = {}
        for backend in ("cpp", "torch"):
            leaves = with_grads(scene, keys)
            render, alpha, _ = rasterize(**leaves, render_mode="RGB+D", backend=backend, rasterize_mode="antialiased")
            gen = torch.Generator().manual_seed(3)
            loss = (render * torch.randn(render.shape, generator=gen, dtype=render.dtype)).sum() + alpha.sum()
            grads[backend] = torch.autograd.grad(loss, [leaves[k] for k in keys])
        for key, g_c, g_t in zip(keys, grads["cpp"], grads["torch"], strict=True):
            assert torch.count_nonzero(g_t) > 0, key
            torch.testing.assert_close(g_c, g_t, rtol=1e-9, atol=1e-9, msg=key)


def test_thread_count_does_not_change_results(kernels):
    """Each Gaussian's gradient is summed over cameras in one task and viewmats gradients per fixed chunk: bitwise
    identical results for 1, 2 and 3 threads (20k Gaussians, enough for several threads)."""
    scene = random_scene(n=20000, n_cams=2, width=64, height=48, seed=8, dtype=torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            proj, leaves = _project(project_compiled, scene, calc_compensations=True)
            loss = proj.means2d.sum() + proj.conics.square().sum() + proj.depths.sum() + proj.compensations.sum()
            grads = torch.autograd.grad(loss, [leaves[k] for k in KEYS])
            results.append([proj.radii, proj.means2d, proj.conics, *grads])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)
