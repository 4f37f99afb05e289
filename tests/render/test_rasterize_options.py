"""BlockOptions: the torch backend's block/chunk sizes are an argument (validated), never module globals."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from rasterize_testkit import GRAD_KEYS, backend_args, random_scene, with_grads

from dynsplat_ns.render import BlockOptions, rasterize
from dynsplat_ns.render.torch_backend import rasterize_torch


def test_defaults_are_documented_values():
    options = BlockOptions()
    assert (options.block_size, options.chunk_size, options.min_chunk_size, options.max_chunk_size) == (2, 64, 8, 1024)
    assert (options.min_grid_cells, options.cell_budget) == (1 << 15, 1 << 22)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.block_size = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block_size=3), r"block_size must divide gsplat's 16-pixel tile \(1, 2, 4, 8, 16\), got 3"),
        (dict(block_size=32), "block_size must divide"),
        (dict(block_size=0), "block_size must be a positive int, got 0"),
        (dict(chunk_size=-4), "chunk_size must be a positive int, got -4"),
        (dict(chunk_size=2.5), "chunk_size must be a positive int, got 2.5"),
        (dict(cell_budget=True), "cell_budget must be a positive int, got True"),
        (dict(min_grid_cells=-1), "min_grid_cells must be a non-negative int, got -1"),
        (dict(chunk_size=2048), r"chunk_size \(2048\) must not exceed max_chunk_size \(1024\)"),
    ],
)
def test_nonsense_options_are_rejected_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlockOptions(**kwargs)


def test_rasterize_rejects_options_that_are_not_block_options():
    scene = random_scene(n=5, n_cams=1, width=8, height=8)
    with pytest.raises(TypeError, match="torch_options.*BlockOptions, got dict"):
        rasterize(**scene, backend="torch", torch_options={"block_size": 4})


def test_options_change_the_work_but_not_renders_or_gradients():
    """Each option reaches the compositor (the counts of evaluated cells and skipped list entries change), while
    renders and gradients through ``rasterize(torch_options=...)`` stay identical."""
    scene = random_scene(n=120, n_cams=1, width=24, height=20, seed=5)
    scene["opacities"] = torch.full_like(scene["opacities"], 0.95)  # most pixels stop early
    scene["scales"] = scene["scales"] * 2.0
    variants = {
        "default": BlockOptions(),
        "big blocks": BlockOptions(block_size=8),
        "tiny chunks": BlockOptions(block_size=2, chunk_size=1, min_chunk_size=1),
    }
    counts = {}
    for name, options in variants.items():
        stats: dict = {}
        with torch.no_grad():
            tensors, settings = backend_args(scene, render_mode="RGB", torch_options=options)
            rasterize_torch(**tensors, settings=settings, stats=stats)
        counts[name] = (stats["n_cells"], stats["n_skipped"], stats["n_composited"])
    assert len({c[0] for c in counts.values()}) == 3, f"cells evaluated should differ per option set: {counts}"
    assert counts["tiny chunks"][1] > counts["default"][1], "tiny chunks should skip more entries behind stopped pixels"
    assert len({c[2] for c in counts.values()}) == 1, "composited contributions are a property of the scene"

    reference = None
    for options in variants.values():
        leaves = with_grads(scene)
        render, alpha, _ = rasterize(**leaves, backend="torch", torch_options=options)
        gen = torch.Generator().manual_seed(0)
        loss = (render * torch.randn(render.shape, generator=gen, dtype=render.dtype)).sum() + alpha.sum()
        grads = torch.autograd.grad(loss, [leaves[k] for k in GRAD_KEYS])
        if reference is None:
            reference = (render, alpha, grads)
            continue
        torch.testing.assert_close(render, reference[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(alpha, reference[1], rtol=1e-12, atol=1e-12)
        for key, g, g0 in zip(GRAD_KEYS, grads, reference[2], strict=True):
            torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12, msg=key)
