"""Closed-form checks of the torch backend (and the dense reference) on one or a few Gaussians."""

from __future__ import annotations

import math

import pytest
import torch
from rasterize_testkit import intrinsics

from dynsplat_ns.render import RasterSettings, rasterize
from dynsplat_ns.render.dense_reference import dense_rasterize

W = H = 21
FOCAL = 30.0
DEPTH = 2.0
SCALE = 0.1  # 3D std; projected std = FOCAL * SCALE / DEPTH = 1.5 px


def _one_gaussian(opacity: float, eps2d: float, render_mode: str = "RGB"):
    dtype = torch.float64
    means = torch.tensor([[0.0, 0.0, DEPTH]], dtype=dtype)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype)
    scales = torch.full((1, 3), SCALE, dtype=dtype)
    opacities = torch.tensor([opacity], dtype=dtype)
    colors = torch.tensor([[0.9, 0.2, 0.4]], dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype)[None]
    ks = intrinsics(W, H, FOCAL, dtype)[None]  # principal point 10.5 = centre of pixel (10, 10)
    bg = torch.tensor([[0.1, 0.5, 0.3]], dtype=dtype)
    out = rasterize(
        means, quats, scales, opacities, colors, viewmats, ks, W, H, backgrounds=bg, render_mode=render_mode,
        eps2d=eps2d, backend="torch",
    )
    return out, colors[0], bg[0]


@pytest.mark.parametrize("eps2d", [0.0, 0.3])
def test_single_isotropic_gaussian_profile(eps2d):
    opacity = 0.8
    (render, alpha, meta), color, bg = _one_gaussian(opacity, eps2d)
    var = (FOCAL * SCALE / DEPTH) ** 2 + eps2d  # projected variance incl. blur

    assert meta["means2d"][0, 0].tolist() == pytest.approx([10.5, 10.5], abs=1e-12)
    assert meta["depths"][0, 0].item() == pytest.approx(DEPTH, abs=1e-12)
    assert meta["conics"][0, 0].tolist() == pytest.approx([1.0 / var, 0.0, 1.0 / var], abs=1e-12)
    assert meta["radii"][0, 0].item() == math.ceil(3.0 * math.sqrt(var + 0.1))  # gsplat's eigen-clamp of 0.01

    # Peak alpha is the opacity; the profile along a row and a diagonal is Gaussian with the projected variance.
    assert alpha[0, 10, 10, 0].item() == pytest.approx(opacity, abs=1e-12)
    for k in range(1, 4):
        expected = opacity * math.exp(-0.5 * k * k / var)
        assert alpha[0, 10, 10 + k, 0].item() == pytest.approx(expected, abs=1e-12)
        assert alpha[0, 10 - k, 10, 0].item() == pytest.approx(expected, abs=1e-12)
        assert alpha[0, 10 + k, 10 + k, 0].item() == pytest.approx(opacity * math.exp(-k * k / var), abs=1e-12)

    # Colour over the background: a * c + (1 - a) * bg everywhere.
    expected_rgb = alpha[0] * color + (1.0 - alpha[0]) * bg
    torch.testing.assert_close(render[0], expected_rgb, rtol=0, atol=1e-12)
    # Far corners get nothing (alpha < 1/255 there), so they show the pure background.
    assert alpha[0, 0, 0, 0].item() == 0.0
    torch.testing.assert_close(render[0, 0, 0], bg, rtol=0, atol=0)


def test_single_gaussian_alpha_threshold_cuts_the_tail():
    opacity = 0.5
    (_, alpha, _), _, _ = _one_gaussian(opacity, eps2d=0.3)
    var = (FOCAL * SCALE / DEPTH) ** 2 + 0.3
    for k in range(0, 10):
        value = opacity * math.exp(-0.5 * k * k / var)
        expected = value if value >= 1.0 / 255.0 else 0.0
        assert alpha[0, 10, 10 + k, 0].item() == pytest.approx(expected, abs=1e-12), k


@pytest.mark.parametrize("mode", ["D", "ED", "RGB+D", "RGB+ED"])
def test_single_gaussian_depth_modes(mode):
    (render, alpha, _), color, _ = _one_gaussian(0.7, eps2d=0.3, render_mode=mode)
    depth = render[0, ..., -1]
    covered = alpha[0, ..., 0] > 0
    if mode.endswith("ED"):
        torch.testing.assert_close(depth[covered], torch.full_like(depth[covered], DEPTH), rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(depth, DEPTH * alpha[0, ..., 0], rtol=0, atol=1e-12)
    assert torch.all(depth[~covered] == 0)
    assert render.shape[-1] == (4 if mode.startswith("RGB") else 1)


@pytest.mark.parametrize("renderer", ["torch", "dense"])
def test_early_stop_rule_matches_gsplat(renderer):
    """Five stacked Gaussians with alpha 0.95 at one pixel: T goes 1, .05, .0025, 1.25e-4, and the 4th would
    take it to 6.25e-6 <= 1e-4, so exactly three are composited and the pixel keeps T = 1.25e-4."""
    dtype = torch.float64
    n = 5
    means = torch.zeros(n, 3, dtype=dtype)
    means[:, 2] = torch.arange(n, dtype=dtype) + 2.0  # front to back
    scales = (means[:, 2:3] * 1.5 / FOCAL).repeat(1, 3)  # 1.5 px projected std for every layer
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(n, 1)
    opacities = torch.full((n,), 0.95, dtype=dtype)
    colors = torch.eye(n, dtype=dtype)  # one channel per layer reveals its weight
    viewmats = torch.eye(4, dtype=dtype)[None]
    ks = intrinsics(W, H, FOCAL, dtype)[None]
    bg = torch.full((1, n), 2.0, dtype=dtype)
    args = (means, quats, scales, opacities, colors, viewmats, ks, W, H)
    if renderer == "torch":
        render, alpha, _ = rasterize(*args, backgrounds=bg, backend="torch")
    else:
        render, alpha = dense_rasterize(*args[:7], bg, settings=RasterSettings(width=W, height=H))
    t_left = 0.05**3
    expected = torch.tensor([0.95, 0.05 * 0.95, 0.05**2 * 0.95, 0.0, 0.0], dtype=dtype) + 2.0 * t_left
    torch.testing.assert_close(render[0, 10, 10], expected, rtol=0, atol=1e-12)
    assert alpha[0, 10, 10, 0].item() == pytest.approx(1.0 - t_left, abs=1e-12)


def test_antialiased_mode_scales_opacity_by_the_blur_compensation():
    dtype = torch.float64
    means = torch.tensor([[0.0, 0.0, DEPTH]], dtype=dtype)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype)
    scales = torch.full((1, 3), SCALE, dtype=dtype)
    opacity = 0.8
    ks = intrinsics(W, H, FOCAL, dtype)[None]
    args = (means, quats, scales, torch.tensor([opacity], dtype=dtype), torch.ones(1, 3, dtype=dtype))
    _, alpha, meta = rasterize(
        *args, torch.eye(4, dtype=dtype)[None], ks, W, H, eps2d=0.3, rasterize_mode="antialiased", backend="torch"
    )
    var0 = (FOCAL * SCALE / DEPTH) ** 2
    compensation = var0 / (var0 + 0.3)  # sqrt(det(S) / det(S + eps I)) for an isotropic S = var0 I
    assert meta["opacities"][0, 0].item() == pytest.approx(opacity * compensation, abs=1e-12)
    assert alpha[0, 10, 10, 0].item() == pytest.approx(opacity * compensation, abs=1e-12)
