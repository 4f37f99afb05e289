"""float64 ``torch.autograd.gradcheck`` of the torch backend (its backward is hand-written)."""

from __future__ import annotations

import pytest
import torch
from rasterize_testkit import random_scene

from dynsplat_ns.render import rasterize
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.rules import ALPHA_MIN

KEYS = ("means", "quats", "scales", "opacities", "colors", "backgrounds")


def _gradcheck_scene(n, n_cams, width, height, seed, **kw):
    """A scene whose no-grad decisions cannot flip within the finite-difference step.

    Opacities stay below 0.35, so no pair above the 1/255 threshold lies outside the 3-sigma pixel box (hence the
    tile/box support never matters), the early stop cannot trigger and alpha is never clamped at 0.999. Depths are
    well separated so the sort order is stable. The only remaining switch, the 1/255 threshold itself, is checked
    to be far from every candidate pair.
    """
    scene = random_scene(n=n, n_cams=n_cams, width=width, height=height, seed=seed, **kw)
    gen = torch.Generator().manual_seed(seed)
    scene["opacities"] = torch.rand(n, generator=gen, dtype=torch.float64) * 0.2 + 0.12
    scene["means"][:, 2] = torch.linspace(-0.5, 0.5, n, dtype=torch.float64)[torch.randperm(n, generator=gen)]
    proj = project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], width, height
    )
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    d = proj.means2d[..., None, None, :] - torch.stack([xs, ys], -1).to(torch.float64)  # [C, N, H, W, 2]
    a, b, c = (proj.conics[..., i, None, None] for i in range(3))
    sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
    alpha = scene["opacities"][None, :, None, None] * torch.exp(-sigma)  # [C, N, H, W]
    visible = (proj.radii > 0)[..., None, None].expand_as(alpha)
    margin = ((alpha[visible] - ALPHA_MIN).abs() / ALPHA_MIN).min()
    assert margin > 1e-4, f"seed {seed}: a pair sits at the alpha threshold, pick another seed"
    assert (proj.radii > 0).sum() >= n_cams * n // 2
    return scene


def _as_function(scene, render_mode):
    fixed = {k: v for k, v in scene.items() if k not in KEYS}

    def fn(*tensors):
        leaves = dict(zip(KEYS, tensors, strict=True))
        render, alpha, _ = rasterize(**fixed, **leaves, render_mode=render_mode, backend="torch")
        return render, alpha

    inputs = tuple(scene[k].detach().clone().requires_grad_(True) for k in KEYS)
    return fn, inputs


@pytest.mark.parametrize("render_mode", ["RGB", "RGB+ED"])
def test_gradcheck_one_camera(render_mode):
    scene = _gradcheck_scene(n=8, n_cams=1, width=10, height=8, seed=4)
    fn, inputs = _as_function(scene, render_mode)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_two_cameras_sh():
    scene = _gradcheck_scene(n=10, n_cams=2, width=9, height=8, seed=6, sh_degree=2)
    fn, inputs = _as_function(scene, "RGB+D")
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)
