"""Compiled CPU rasterizer: C++ projection, torch colours, C++ block lists and compositor (:mod:`.cpu_kernels`).

Same contract and ``meta`` as :func:`dynsplat_ns.render.torch_backend.rasterize_torch`: the EWA projection runs in
compiled loops with an explicit backward (:mod:`dynsplat_ns.render.projection_compiled`; with ``Ks.requires_grad``
the torch projection is used instead), SH colours and the anti-aliasing compensation stay in torch (autograd carries
the gradients from ``means2d``/``conics``/``opacities``/features into means, quats, scales, viewmats, opacities and
colours), and the block lists and the compositing step run in compiled loops. The compositor's autograd function
returns d(loss)/d(means2d, conics, opacities, features, backgrounds) and, with ``absgrad``, attaches
``means2d.absgrad`` to the very tensor in ``meta``, like the torch compositor.

The compositor cuts the image into ``block x block`` pixel blocks (``block`` divides gsplat's 16 px tile), lists
each visible Gaussian in the blocks its support box overlaps (the boxes of
:func:`dynsplat_ns.render.blocks.support_boxes`, as the torch backend) front to back, and walks every block's list
once per pixel with early termination, one block per task on ``torch.get_num_threads()`` threads. Supported dtypes:
float32 and float64.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynsplat_ns.kernels.cpu import load_cpu_kernels
from dynsplat_ns.render.features import finish_render
from dynsplat_ns.render.meta import make_meta
from dynsplat_ns.render.options import DEFAULT_COMPILED_BLOCK
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.projection_compiled import project_compiled
from dynsplat_ns.render.rules import TILE_SIZE
from dynsplat_ns.render.settings import RasterSettings
from dynsplat_ns.render.torch_backend import composite_inputs

__all__ = ["COMPILED_DTYPES", "DEFAULT_COMPILED_BLOCK", "composite_compiled", "rasterize_compiled"]

#: Dtypes the compiled kernels handle.
COMPILED_DTYPES = (torch.float32, torch.float64)
# DEFAULT_COMPILED_BLOCK (re-exported here) lives in options.py, the default of RasterSettings.compiled_block.


def _kernels():
    module = load_cpu_kernels()
    if module is None:
        raise RuntimeError(
            "rasterize: backend='cpp' needs the compiled CPU kernels, which are unavailable (see the warning above); "
            "use backend='torch' or backend='auto'"
        )
    return module


class CompiledCompositor(torch.autograd.Function):
    """Autograd function: (means2d, conics, opacities, features, backgrounds) -> (render, alpha), in C++."""

    @staticmethod
    def forward(
        ctx,
        means2d: Tensor,  # [C, N, 2]
        conics: Tensor,  # [C, N, 3]
        opacities: Tensor,  # [C, N]
        features: Tensor,  # [C, N, D]
        backgrounds: Tensor | None,  # [C, D] or None
        depths: Tensor,  # [C, N] sort key only
        radii: Tensor,  # [C, N] int32
        width: int,
        height: int,
        absgrad: bool,
        block: int,
    ) -> tuple[Tensor, Tensor]:
        ext = _kernels()
        n_cams, n_gauss, n_ch = features.shape
        blocks_x, blocks_y = -(-width // block), -(-height // block)
        flat_m = means2d.detach().reshape(-1, 2).contiguous()
        flat_c = conics.detach().reshape(-1, 3).contiguous()
        flat_o = opacities.detach().reshape(-1).contiguous()
        flat_f = features.detach().reshape(-1, n_ch).contiguous()
        bg = backgrounds.detach().contiguous() if backgrounds is not None else flat_m.new_empty(0)
        with torch.no_grad():
            flat_d = depths.detach().reshape(-1).to(flat_m.dtype).contiguous()
            flat_r = radii.reshape(-1).to(torch.int32).contiguous()
            # (vis, start, entries, gen_first, gen_of_slot, packed, rows): see csrc/lists_kernels.h
            vis, start, entries, gen_first, gen_of_slot, packed, rows = ext.block_lists(
                flat_m, flat_c, flat_o, flat_d, flat_r, n_gauss, n_cams, width, height, block, blocks_x, blocks_y
            )
            render, t_final, last, masks = ext.composite_forward(
                flat_o, flat_f, bg, start, entries, packed, rows, n_cams, width, height, block, blocks_x, blocks_y
            )
        ctx.geometry = (n_cams, width, height, block, blocks_x, blocks_y)
        ctx.absgrad = absgrad
        ctx.has_backgrounds = backgrounds is not None
        ctx.means2d_ref = means2d if absgrad else None  # backward attaches `.absgrad` to the tensor in `meta`
        saved = (flat_o, flat_f, bg, start, entries, packed, rows, vis, gen_first, gen_of_slot, t_final, last, masks)
        ctx.save_for_backward(*saved)
        return render, (1.0 - t_final)[..., None]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_render: Tensor, grad_alpha: Tensor):
        ext = _kernels()
        flat_o, flat_f, bg, start, entries, packed, rows, vis, gen_first, gen_of_slot, t_final, last, masks = (
            ctx.saved_tensors
        )
        n_cams, width, height, block, blocks_x, blocks_y = ctx.geometry
        n_flat, n_ch = flat_f.shape
        n_gauss = n_flat // n_cams
        dtype = flat_f.dtype
        v_m, v_c, v_o, v_f, v_abs = ext.composite_backward(
            flat_o, flat_f, bg, start, entries, packed, rows, vis, gen_first, gen_of_slot, t_final, last, masks,
            grad_render.to(dtype).contiguous(), grad_alpha.to(dtype).reshape(n_cams, height, width).contiguous(),
            n_cams, width, height, block, blocks_x, blocks_y, bool(ctx.absgrad),
        )
        v_bg = None
        if ctx.has_backgrounds and ctx.needs_input_grad[4]:
            v_bg = (grad_render * t_final[..., None]).sum((1, 2))  # [C, D]
        if ctx.absgrad and ctx.means2d_ref is not None:
            ctx.means2d_ref.absgrad = v_abs.reshape(n_cams, n_gauss, 2)
        return (
            v_m.reshape(n_cams, n_gauss, 2) if ctx.needs_input_grad[0] else None,
            v_c.reshape(n_cams, n_gauss, 3) if ctx.needs_input_grad[1] else None,
            v_o.reshape(n_cams, n_gauss) if ctx.needs_input_grad[2] else None,
            v_f.reshape(n_cams, n_gauss, n_ch) if ctx.needs_input_grad[3] else None,
            v_bg,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def composite_compiled(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    backgrounds: Tensor | None,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    absgrad: bool = False,
    block: int = DEFAULT_COMPILED_BLOCK,
) -> tuple[Tensor, Tensor]:
    """Composite screen-space Gaussians with the compiled kernels (same arguments and results as
    :func:`dynsplat_ns.render.composite.composite_blocks`, with ``block`` the pixel block side instead of options).

    Returns:
        ``(render [C, H, W, D], alpha [C, H, W, 1])``.
    """
    if TILE_SIZE % block:
        raise ValueError(f"block size {block} must divide gsplat's tile size {TILE_SIZE}")
    return CompiledCompositor.apply(
        means2d, conics, opacities, features, backgrounds, depths.detach(), radii, width, height, absgrad, block
    )


def rasterize_compiled(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    backgrounds: Tensor | None = None,
    *,
    settings: RasterSettings,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render with the compiled CPU backend; inputs as :func:`dynsplat_ns.render.rasterize` (validated there).

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] or SH [(C,) N, K, 3]
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: [C, D] or None.
        settings: Image size and options; ``settings.compiled_block`` is the compositor's pixel block side (speed
            only, never the result), ``backend`` and ``torch_options`` are not read.

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)`` with ``meta["backend"] == "cpp"``.

    Raises:
        ValueError: for tensors that are not float32/float64 on the CPU.
        RuntimeError: when the compiled kernels are unavailable.
    """
    if means.device.type != "cpu" or means.dtype not in COMPILED_DTYPES:
        raise ValueError(
            f"rasterize: backend='cpp' needs float32/float64 CPU tensors, got {means.dtype} on {means.device.type}"
        )
    project = project_gaussians if Ks.requires_grad else project_compiled  # C++ projection: no Ks gradient
    proj, opac, feats, bgs = composite_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, settings, project=project
    )
    width, height, absgrad = settings.width, settings.height, settings.absgrad
    render, alpha = composite_compiled(
        proj.means2d, proj.conics, opac, feats, bgs, proj.depths, proj.radii, width, height, absgrad,
        settings.compiled_block,
    )
    render = finish_render(render, alpha, settings.render_mode)
    meta = make_meta("cpp", proj.radii, proj.means2d, proj.depths, proj.conics, opac, width, height, absgrad)
    return render, alpha, meta
