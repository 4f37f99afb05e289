"""The compiled compositor's 8 x 8 block fast path (csrc/composite_rows.cpp: block 8 with 3 or 4 channels, the
default): per-entry pixel masks from the forward, row skipping, the absgrad compile-time switch. The generic loops
(other block sizes) are its reference here; test_rasterize_compiled.py compares both with the torch backend."""

from __future__ import annotations

import pytest
import torch
from rasterize_testkit import GRAD_KEYS, backend_args, random_scene, with_grads

from dynsplat_ns.render.compiled_backend import rasterize_compiled


def _crowded(dtype, width=21, height=13):
    """Overlapping opaque Gaussians on an image whose edge blocks are partial: most pixels stop early."""
    scene = random_scene(n=300, n_cams=2, width=width, height=height, seed=5, dtype=dtype)
    scene["opacities"] = torch.full_like(scene["opacities"], 0.97)
    scene["opacities"][::3] = 1.0
    scene["scales"] = scene["scales"] * 2.5
    return scene


def _render_and_grads(scene, render_mode, block, absgrad):
    leaves = with_grads(scene)
    tensors, settings = backend_args(leaves, render_mode=render_mode, compiled_block=block, absgrad=absgrad)
    render, alpha, meta = rasterize_compiled(**tensors, settings=settings)
    meta["means2d"].retain_grad()
    gen = torch.Generator().manual_seed(2)
    cot = torch.randn(render.shape, generator=gen, dtype=render.dtype)
    ((render * cot).sum() + (alpha * alpha).sum()).backward()
    grads = [leaves[k].grad for k in GRAD_KEYS]
    return render, alpha, grads + [meta["means2d"].grad], meta["means2d"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("render_mode", ["RGB", "RGB+D"])
def test_absgrad_switch_changes_no_other_gradient(kernels, dtype, render_mode):
    """absgrad on/off are two compiled variants of the backward: every other gradient is bitwise the same."""
    scene = _crowded(dtype)
    off = _render_and_grads(scene, render_mode, 8, absgrad=False)
    on = _render_and_grads(scene, render_mode, 8, absgrad=True)
    assert not hasattr(off[3], "absgrad") and torch.count_nonzero(on[3].absgrad) > 0
    assert torch.equal(off[0], on[0]) and torch.equal(off[1], on[1])
    for g_off, g_on in zip(off[2], on[2], strict=True):
        assert g_off is not None and torch.equal(g_off, g_on)


@pytest.mark.parametrize("render_mode", ["RGB", "RGB+D"])
def test_fast_path_matches_generic_loops(kernels, render_mode):
    """Block 8 (fast path) vs block 4 (generic loops) in float64: same renders, gradients and absgrad, on an image
    with partial blocks, two cameras, early stops and a background."""
    scene = _crowded(torch.float64)
    fast = _render_and_grads(scene, render_mode, 8, absgrad=True)
    generic = _render_and_grads(scene, render_mode, 4, absgrad=True)
    assert (fast[1] > 1 - 1e-3).sum() > 150, "expected most pixels to stop early"
    results = [*fast[:2], *fast[2], fast[3].absgrad], [*generic[:2], *generic[2], generic[3].absgrad]
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_masks_hold_the_composited_pixels(kernels):
    """The forward's per-entry masks: popcounts sum to the composited (Gaussian, pixel) pairs, which the generic
    loops' per-pixel `last` bounds from above; entries behind every pixel's stop have empty masks."""
    scene = _crowded(torch.float32, width=16, height=16)
    from dynsplat_ns.render.projection_compiled import project_compiled

    proj = project_compiled(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], 16, 16)
    n_cams, n = proj.depths.shape
    opac = scene["opacities"][None].expand(n_cams, -1).reshape(-1).contiguous()
    feats = scene["colors"][None].expand(n_cams, -1, -1).reshape(-1, 3).contiguous()
    m2, co = proj.means2d.reshape(-1, 2).contiguous(), proj.conics.reshape(-1, 3).contiguous()
    vis, start, entries, _, _, packed, rows = kernels.block_lists(
        m2, co, opac, proj.depths.reshape(-1).contiguous(), proj.radii.reshape(-1).contiguous(), n, n_cams, 16, 16,
        8, 2, 2,
    )
    _, _, last, masks = kernels.composite_forward(opac, feats, opac.new_empty(0), start, entries, packed, rows,
                                                   n_cams, 16, 16, 8, 2, 2)
    assert masks.shape == entries.shape
    counts = torch.tensor([bin(int(m) & (2**64 - 1)).count("1") for m in masks.tolist()])
    assert 0 < counts.sum() <= int(last.sum())
    for b in range(4 * n_cams):  # per block: entries at or behind the block's deepest `last` composited nowhere
        cam, rem = divmod(b, 4)
        y, x = divmod(rem, 2)
        walk = int(last[cam, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8].max())
        assert counts[int(start[b]) + walk : int(start[b + 1])].sum() == 0
        if walk:
            assert counts[int(start[b]) + walk - 1] > 0
