"""Torch backend vs the dense reference: outputs and gradients on tiny random scenes, every render mode."""

from __future__ import annotations

import pytest
import torch
from rasterize_testkit import GRAD_KEYS, backend_args, random_scene, with_grads

from dynsplat_ns.render import RENDER_MODES, BlockOptions, rasterize
from dynsplat_ns.render.blocks import block_lists, support_boxes
from dynsplat_ns.render.dense_reference import dense_rasterize
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.torch_backend import rasterize_torch

COLOR_CONFIGS = {
    "rgb": dict(channels=3),
    "d5": dict(channels=5),
    "sh0": dict(sh_degree=0),
    "sh3": dict(sh_degree=3),
    "sh3-per-camera": dict(sh_degree=3, per_camera_colors=True),
    "d5-per-camera": dict(channels=5, per_camera_colors=True),
}


def _render_both(scene, render_mode, dense_chunk=None, options=None):
    torch_scene = with_grads(scene)
    dense_scene = with_grads(scene)
    render_t, alpha_t, _ = rasterize(**torch_scene, render_mode=render_mode, backend="torch", torch_options=options)
    tensors, settings = backend_args(dense_scene, render_mode=render_mode)
    render_d, alpha_d = dense_rasterize(**tensors, settings=settings, pixel_chunk=dense_chunk)
    return (render_t, alpha_t, torch_scene), (render_d, alpha_d, dense_scene)


def _grads(render, alpha, scene, cot_render, cot_alpha):
    loss = (render * cot_render).sum() + (alpha * cot_alpha).sum()
    leaves = [scene[k] for k in GRAD_KEYS]
    return torch.autograd.grad(loss, leaves, allow_unused=True)


@pytest.mark.parametrize("render_mode", RENDER_MODES)
@pytest.mark.parametrize("colors", list(COLOR_CONFIGS))
def test_outputs_and_grads_match_dense_fp64(render_mode, colors):
    scene = random_scene(n=30, n_cams=2, width=24, height=20, seed=3, **COLOR_CONFIGS[colors])
    (render_t, alpha_t, scene_t), (render_d, alpha_d, scene_d) = _render_both(scene, render_mode)

    assert render_t.shape == render_d.shape
    assert alpha_t.shape == (2, 20, 24, 1)
    assert alpha_d.max() > 0.5, "scene should be visibly covered"
    torch.testing.assert_close(render_t, render_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha_t, alpha_d, rtol=1e-9, atol=1e-9)

    gen = torch.Generator().manual_seed(7)
    cot_render = torch.randn(render_t.shape, generator=gen, dtype=render_t.dtype)
    cot_alpha = torch.randn(alpha_t.shape, generator=gen, dtype=alpha_t.dtype)
    grads_t = _grads(render_t, alpha_t, scene_t, cot_render, cot_alpha)
    grads_d = _grads(render_d, alpha_d, scene_d, cot_render, cot_alpha)
    for key, g_t, g_d in zip(GRAD_KEYS, grads_t, grads_d, strict=True):
        if g_d is None:  # e.g. colours in the depth-only modes
            assert g_t is None or torch.count_nonzero(g_t) == 0, key
            continue
        assert g_t is not None, key
        assert torch.count_nonzero(g_d) > 0, f"{key}: reference gradient is all zero, the test would be vacuous"
        torch.testing.assert_close(g_t, g_d, rtol=1e-7, atol=1e-9, msg=f"gradient of {key}")


def test_outputs_and_grads_match_dense_fp32():
    scene64 = random_scene(n=40, n_cams=2, width=24, height=20, sh_degree=2, seed=11)
    scene = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in scene64.items()}
    (render_t, alpha_t, scene_t), (render_d, alpha_d, scene_d) = _render_both(scene, "RGB+ED", dense_chunk=97)
    assert render_t.dtype == torch.float32
    torch.testing.assert_close(render_t, render_d, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(alpha_t, alpha_d, rtol=1e-4, atol=1e-4)
    gen = torch.Generator().manual_seed(1)
    cot_render = torch.randn(render_t.shape, generator=gen)
    cot_alpha = torch.randn(alpha_t.shape, generator=gen)
    for key, g_t, g_d in zip(
        GRAD_KEYS,
        _grads(render_t, alpha_t, scene_t, cot_render, cot_alpha),
        _grads(render_d, alpha_d, scene_d, cot_render, cot_alpha),
        strict=True,
    ):
        scale = g_d.abs().max().clamp(min=1.0)
        torch.testing.assert_close(g_t / scale, g_d / scale, rtol=1e-4, atol=1e-4, msg=f"gradient of {key}")


def _assert_grads_match(render_t, alpha_t, scene_t, render_d, alpha_d, scene_d, rtol=1e-7, atol=1e-9):
    cot_render, cot_alpha = torch.randn_like(render_t), torch.randn_like(alpha_t)
    for key, g_t, g_d in zip(
        GRAD_KEYS,
        _grads(render_t, alpha_t, scene_t, cot_render, cot_alpha),
        _grads(render_d, alpha_d, scene_d, cot_render, cot_alpha),
        strict=True,
    ):
        torch.testing.assert_close(g_t, g_d, rtol=rtol, atol=atol, msg=f"gradient of {key}")


def _clamped_alphas(scene) -> int:
    """How many Gaussians reach the 0.999 alpha clamp at the centre of the pixel nearest their projected mean
    (computed from the projection alone, independently of the compositor)."""
    proj = project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], scene["width"], scene["height"]
    )
    d = proj.means2d[0] - (torch.floor(proj.means2d[0]) + 0.5)  # [N, 2] offset from the nearest pixel centre
    conic = proj.conics[0]
    sigma = 0.5 * (conic[:, 0] * d[:, 0] ** 2 + conic[:, 2] * d[:, 1] ** 2) + conic[:, 1] * d[:, 0] * d[:, 1]
    return int((scene["opacities"] * torch.exp(-sigma) >= 0.999).sum())


@pytest.mark.parametrize("chunk", [64, 2])
def test_crowded_scene_exercises_early_stop_and_matches_dense(chunk):
    """Many opaque, overlapping Gaussians: most pixels stop early, alpha saturates at 0.999 near the centres of the
    fully opaque ones, and both renderers must agree. With tiny chunks, transmittance is carried from chunk to chunk
    and blocks whose pixels have all stopped leave the walk (their remaining Gaussians are never evaluated)."""
    options = BlockOptions(chunk_size=chunk)
    scene = random_scene(n=300, n_cams=1, width=16, height=12, seed=5)
    scene["opacities"] = torch.full_like(scene["opacities"], 0.97)
    scene["opacities"][::3] = 1.0
    scene["scales"] = scene["scales"] * 2.5
    stats: dict = {}
    tensors, settings = backend_args(scene, render_mode="RGB+D", torch_options=options)
    rasterize_torch(**tensors, settings=settings, stats=stats)
    if chunk == 2:
        assert stats["n_skipped"] > 0, "stopped blocks should skip the Gaussians behind them"

    (render_t, alpha_t, scene_t), (render_d, alpha_d, scene_d) = _render_both(scene, "RGB+D", options=options)
    assert (alpha_t > 1 - 1e-3).sum() > 150, "expected most pixels to saturate"
    torch.testing.assert_close(render_t, render_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha_t, alpha_d, rtol=1e-9, atol=1e-9)
    _assert_grads_match(render_t, alpha_t, scene_t, render_d, alpha_d, scene_d)


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16])
def test_block_lists_hold_overlapping_gaussians_front_to_back(block):
    """Every block lists exactly the visible Gaussians whose support box overlaps it, in depth order."""
    scene = random_scene(n=60, n_cams=2, width=24, height=20, seed=2)
    width, height = 24, 20
    proj = project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], width, height
    )
    opac = scene["opacities"][None].expand(2, -1)
    lists = block_lists(proj.means2d, proj.conics, opac, proj.depths, proj.radii, width, height, block)
    n_gauss = scene["means"].shape[0]
    assert len(lists.gauss) > 50
    for cam in range(2):
        x0, x1, y0, y1 = support_boxes(proj.means2d[cam], proj.conics[cam], opac[cam], proj.radii[cam], width, height)
        visible = (proj.radii[cam] > 0) & (opac[cam] >= 1.0 / 255.0)
        for by in range(lists.blocks_y):
            for bx in range(lists.blocks_x):
                blk = (cam * lists.blocks_y + by) * lists.blocks_x + bx
                listed = lists.gauss[lists.start[blk] : lists.start[blk] + lists.count[blk]] - cam * n_gauss
                overlaps = (
                    visible & (x0 < (bx + 1) * block) & (x1 > bx * block) & (y0 < (by + 1) * block) & (y1 > by * block)
                )
                assert set(listed.tolist()) == set(torch.nonzero(overlaps).squeeze(1).tolist())
                depth = proj.depths[cam][listed]
                assert torch.all(depth[1:] >= depth[:-1]), "each block's list must run front to back"


def test_chunking_and_block_sizes_do_not_change_results():
    """Tiny chunks, several grids per chunk (tiny cell budget), no grid merging and every block size, passed as
    ``rasterize(torch_options=...)``, give the same renders and gradients as the defaults."""
    scene = random_scene(n=40, n_cams=2, width=24, height=20, sh_degree=1, seed=9)
    cot = None
    results = []
    for options in (
        None,
        BlockOptions(block_size=4),
        BlockOptions(block_size=1, chunk_size=3, cell_budget=50),
        BlockOptions(block_size=2, chunk_size=5, min_chunk_size=1, cell_budget=1, min_grid_cells=0),
        BlockOptions(block_size=8, chunk_size=1, max_chunk_size=2),
        BlockOptions(block_size=16, chunk_size=7, cell_budget=300, min_grid_cells=1 << 30),
    ):
        leaves = with_grads(scene)
        render, alpha, _ = rasterize(
            **leaves, render_mode="RGB+D", absgrad=True, backend="torch", torch_options=options
        )
        if cot is None:
            cot = (torch.randn_like(render), torch.randn_like(alpha))
        grads = _grads(render, alpha, leaves, *cot)
        results.append((render, alpha, grads, leaves["means"]))
    r0, a0, g0, _ = results[0]
    for r1, a1, g1, _ in results[1:]:
        torch.testing.assert_close(r1, r0, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a1, a0, rtol=1e-12, atol=1e-12)
        for key, x, y in zip(GRAD_KEYS, g1, g0, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("case", ["no-gaussians", "all-culled", "one-pixel"])
def test_degenerate_scenes(case):
    scene = random_scene(n=10, n_cams=2, width=24, height=20, seed=0)
    if case == "no-gaussians":
        scene = {k: (v[..., :0, :] if k == "colors" else v[:0]) if k in GRAD_KEYS[:5] else v for k, v in scene.items()}
    elif case == "all-culled":
        scene["means"] = scene["means"] + torch.tensor([0.0, 0.0, 50.0], dtype=torch.float64)
        scene["means"][:, 0] += 100.0
    else:
        scene.update(width=1, height=1)
        scene["Ks"] = scene["Ks"].clone()
        scene["Ks"][:, :2, :2] = torch.eye(2, dtype=torch.float64) * 3.0
        scene["Ks"][:, :2, 2] = 0.5
    leaves = with_grads(scene)
    render, alpha, meta = rasterize(**leaves, render_mode="RGB+ED", backend="torch")
    tensors, settings = backend_args(scene, render_mode="RGB+ED")
    render_d, alpha_d = dense_rasterize(**tensors, settings=settings)
    torch.testing.assert_close(render, render_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha, alpha_d, rtol=1e-9, atol=1e-9)
    (render.sum() + alpha.sum()).backward()
    assert torch.isfinite(leaves["means"].grad).all()
    if case == "one-pixel":
        assert torch.all(alpha > 0.3)
    else:
        assert torch.all(alpha == 0) and torch.all(meta["radii"] == 0)
        torch.testing.assert_close(render[..., :3], scene["backgrounds"][:, None, None, :].expand(2, 20, 24, 3))


def test_saturated_alpha_matches_dense():
    """Opaque Gaussians centred on pixel centres: alpha is clamped at 0.999 there (no gradient through the clamp)."""
    dtype = torch.float64
    gen = torch.Generator().manual_seed(4)
    n, width, height, focal = 8, 16, 12, 14.0
    pix_x = torch.randint(2, width - 2, (n,), generator=gen)
    pix_y = torch.randint(2, height - 2, (n,), generator=gen)
    pix = torch.stack([pix_x, pix_y], -1)
    depth = torch.linspace(2.0, 3.4, n, dtype=dtype)
    xy = (pix.to(dtype) + 0.5 - torch.tensor([width / 2, height / 2], dtype=dtype)) * depth[:, None] / focal
    scene = {
        "means": torch.cat([xy, depth[:, None]], -1),
        "quats": torch.randn(n, 4, generator=gen, dtype=dtype),
        "scales": torch.rand(n, 3, generator=gen, dtype=dtype) * 0.1 + 0.15,
        "opacities": torch.tensor([1.0, 0.9995] * (n // 2), dtype=dtype),
        "colors": torch.rand(n, 3, generator=gen, dtype=dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "Ks": torch.tensor([[[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]], dtype=dtype),
        "width": width,
        "height": height,
        "backgrounds": torch.rand(1, 3, generator=gen, dtype=dtype),
    }
    (render_t, alpha_t, scene_t), (render_d, alpha_d, scene_d) = _render_both(scene, "RGB")
    assert _clamped_alphas(scene) >= n // 2, "the clamp should be active"
    torch.testing.assert_close(render_t, render_d, rtol=1e-9, atol=1e-9)
    _assert_grads_match(render_t, alpha_t, scene_t, render_d, alpha_d, scene_d)


def test_opaque_wall_in_front_skips_everything_behind():
    """Two huge opaque Gaussians in front stop every pixel in the first chunk; every Gaussian behind them is skipped
    without evaluation and the render still matches the dense reference."""
    options = BlockOptions(chunk_size=2)
    dtype = torch.float64
    gen = torch.Generator().manual_seed(3)
    n_small, width, height, focal = 200, 24, 20, 20.0
    depth = torch.cat([torch.tensor([1.0, 1.1], dtype=dtype), torch.rand(n_small, generator=gen, dtype=dtype) + 3.0])
    xy = (torch.rand(n_small + 2, 2, generator=gen, dtype=dtype) - 0.5) * depth[:, None] * 1.1
    xy[:2] = 0.0
    scales = torch.rand(n_small + 2, 3, generator=gen, dtype=dtype) * 0.05 + 0.05
    scales[:2] = 50.0  # walls: alpha ~ 0.999 over the whole image
    scene = {
        "means": torch.cat([xy, depth[:, None]], -1),
        "quats": torch.randn(n_small + 2, 4, generator=gen, dtype=dtype),
        "scales": scales,
        "opacities": torch.cat([torch.ones(2, dtype=dtype), torch.full((n_small,), 0.5, dtype=dtype)]),
        "colors": torch.rand(n_small + 2, 3, generator=gen, dtype=dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "Ks": torch.tensor([[[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]], dtype=dtype),
        "width": width,
        "height": height,
        "backgrounds": torch.rand(1, 3, generator=gen, dtype=dtype),
    }
    proj = project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], width, height
    )
    visible_small = int((proj.radii[0, 2:] > 0).sum())
    assert visible_small > 100
    stats: dict = {}
    tensors, settings = backend_args(scene, render_mode="RGB+D", torch_options=options)
    rasterize_torch(**tensors, settings=settings, stats=stats)
    assert stats["n_skipped"] >= visible_small  # each small Gaussian is listed in at least one block
    assert stats["n_composited"] == width * height  # the first wall only

    (render_t, alpha_t, scene_t), (render_d, alpha_d, scene_d) = _render_both(scene, "RGB+D", options=options)
    torch.testing.assert_close(render_t, render_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha_t, alpha_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha_t, torch.full_like(alpha_t, 1 - 1e-3))  # T = 1e-3 behind the first wall
    _assert_grads_match(render_t, alpha_t, scene_t, render_d, alpha_d, scene_d)
