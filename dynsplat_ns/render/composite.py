"""Front-to-back alpha compositing over pixel blocks, with a hand-written backward.

Per pixel p with composited Gaussians i = 1..n (front to back), ``T_i = prod_{j<i} (1 - a_j)`` and weights
``w_i = a_i T_i``:

    render_p = sum_i w_i f_i + T_final bg        alpha_p = 1 - T_final

Each block of pixels (:mod:`dynsplat_ns.render.blocks`) walks its front-to-back Gaussian list in chunks of list
slots (sizes: :class:`dynsplat_ns.render.options.BlockOptions`); a chunk of A blocks is a dense
``[A, pixels, slots]`` grid, so the transmittance is a plain ``cumprod`` along the slot axis (in the input dtype,
as gsplat; carried from chunk to chunk) and the render a weighted sum over slots: no per-pixel sort, no segmented
scans. Cells with ``alpha < 1/255`` (or ``sigma < 0``) and cells behind a pixel's early stop get alpha 0, so every
rule of :mod:`dynsplat_ns.render.rules` holds exactly. Blocks whose pixels have all stopped leave the walk. The
backward is the exact derivative of that forward (the block lists, threshold and early stop are constants, as in
gsplat's kernels). With ``q_i = f_i . dL/drender_p`` and ``R_i = sum_{j>i} w_j q_j``:

    dL/da_i = T_i q_i - (R_i + T_final (bg . dL/drender_p - dL/dalpha_p)) / (1 - a_i)

and ``a = min(0.999, o exp(-sigma))`` passes gradients only where it is not clamped. Per-pixel gradients of the 2D
means are summed into ``means2d.grad`` and, with ``absgrad``, their absolute values into ``means2d.absgrad``. The
chunks are visited back to front in the backward, carrying each pixel's ``R``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynsplat_ns.render.blocks import BlockLists, block_lists
from dynsplat_ns.render.options import DEFAULT_BLOCK_OPTIONS, BlockOptions
from dynsplat_ns.render.rules import ALPHA_MAX, ALPHA_MIN, T_MIN

__all__ = ["composite_blocks", "BlockCompositor"]


class _Chunk(NamedTuple):
    """A dense grid of (pixel, slot) cells for A blocks; what the backward needs of it."""

    blocks: Tensor  # [A] int64 block ids
    gauss: Tensor  # [A, S] int64 flat Gaussian ids (padding slots hold a valid id and alpha 0)
    alpha: Tensor  # [A, P, S] composited alpha, 0 where nothing is composited
    trans: Tensor  # [A, P, S] transmittance in front of each cell


class _Geometry(NamedTuple):
    """Per-slot screen-space attributes and per-block pixel centres of a chunk."""

    dx: Tensor  # [A, 1, b, S] mean_x - pixel centre x
    dy: Tensor  # [A, b, 1, S] mean_y - pixel centre y
    out_x: Tensor  # [A, 1, b, 1] 0 inside the image, +inf for padding columns
    out_y: Tensor  # [A, b, 1, 1]
    conic: tuple[Tensor, Tensor, Tensor]  # each [A, 1, 1, S]
    opacity: Tensor  # [A, 1, S] (0 on padding slots)


def _geometry(
    lists: BlockLists, blocks: Tensor, gauss: Tensor, valid: Tensor, attrs: Tensor, width: int, height: int
) -> _Geometry:
    """Offsets ``d = mean2d - pixel centre`` (as the dense reference rounds them) and attributes of a chunk.

    Args:
        lists: The block lists.
        blocks: Block ids. [A]
        gauss: Flat Gaussian ids of the slots. [A, S]
        valid: Slot holds a listed Gaussian. [A, S]
        attrs: Flat per-Gaussian (mean x, mean y, conic a, b, c, opacity). [6, C * N]
        width: Image width.
        height: Image height.
    """
    b = lists.block
    n_a, n_s = gauss.shape
    mx, my, ca, cb, cc, opac = attrs.index_select(1, gauss.reshape(-1)).reshape(6, n_a, n_s).unbind(0)
    in_cam = blocks % (lists.blocks_x * lists.blocks_y)
    px = (in_cam % lists.blocks_x)[:, None] * b + torch.arange(b, device=blocks.device)  # [A, b] pixel x
    py = torch.div(in_cam, lists.blocks_x, rounding_mode="floor")[:, None] * b + torch.arange(b, device=blocks.device)
    dtype = attrs.dtype
    dx = mx[:, None, None, :] - (px.to(dtype) + 0.5)[:, None, :, None]  # [A, 1, b, S]
    dy = my[:, None, None, :] - (py.to(dtype) + 0.5)[:, :, None, None]  # [A, b, 1, S]
    out_x = torch.where(px < width, 0.0, math.inf).to(dtype)[:, None, :, None]
    out_y = torch.where(py < height, 0.0, math.inf).to(dtype)[:, :, None, None]
    conic = (ca[:, None, None, :], cb[:, None, None, :], cc[:, None, None, :])
    opacity = torch.where(valid, opac, torch.zeros_like(opac))[:, None, :]
    return _Geometry(dx, dy, out_x, out_y, conic, opacity)


def _chunk_slots(lists: BlockLists, blocks: Tensor, first: Tensor, n_slots: int) -> tuple[Tensor, Tensor]:
    """Flat Gaussian ids of slots ``first .. first + n_slots`` of each block, and which slots exist. [A, S] x2"""
    slot = first[:, None] + torch.arange(n_slots, device=blocks.device)  # [A, S]
    valid = slot < lists.count.index_select(0, blocks)[:, None]  # [A, S]
    index = (lists.start.index_select(0, blocks)[:, None] + slot).clamp(max=max(len(lists.gauss) - 1, 0))
    return lists.gauss[index], valid


def _walk_steps(
    lists: BlockLists, position: Tensor, t_walk: Tensor, n_pix: int, cap: int, options: BlockOptions
) -> list[tuple[Tensor, int]]:
    """The next grids of the walk: ``(blocks [A], slots)`` for every block with Gaussians left and pixels that have
    not stopped.

    A block takes the next power of two (>= ``options.min_chunk_size``, <= ``cap``) that holds the rest of its list,
    so short lists are not padded to ``cap``. Each grid costs a few dozen torch calls, so size classes too small to be
    worth a grid of their own (< ``options.min_grid_cells``) join the next larger class; grids stay within
    ``options.cell_budget``.
    """
    remaining = lists.count - position  # [blocks]
    walking = torch.nonzero((remaining > 0) & (t_walk.amax(1) > 0)).squeeze(1)
    if len(walking) == 0:
        return []
    rest = remaining.index_select(0, walking).to(torch.float64)
    fewest = min(options.min_chunk_size, cap)
    slots = torch.exp2(torch.ceil(torch.log2(rest))).clamp(min=fewest, max=cap).to(torch.int64)  # [A]
    sizes = torch.unique(slots)
    steps, pending = [], []  # pending: smaller classes carried up into the next size
    for i, size in enumerate(sizes.tolist()):
        pending.append(walking[slots == size])
        carried = sum(len(p) for p in pending)
        if carried * size * n_pix < options.min_grid_cells and i + 1 < len(sizes):
            continue
        blocks = torch.cat(pending) if len(pending) > 1 else pending[0]
        pending = []
        steps += [(group, size) for group in blocks.split(max(1, options.cell_budget // (n_pix * size)))]
    return steps


def _to_image(block_major: Tensor, lists: BlockLists, n_cams: int, width: int, height: int) -> Tensor:
    """[C * blocks, b * b, ...] -> [C, H, W, ...] (padding pixels cropped)."""
    b, trailing = lists.block, block_major.shape[2:]
    grid = block_major.reshape(n_cams, lists.blocks_y, lists.blocks_x, b, b, *trailing).transpose(2, 3)
    return grid.reshape(n_cams, lists.blocks_y * b, lists.blocks_x * b, *trailing)[:, :height, :width]


def _to_blocks(image: Tensor, lists: BlockLists) -> Tensor:
    """[C, H, W, ...] -> [C * blocks, b * b, ...] (padding pixels zero)."""
    b = lists.block
    n_cams, height, width, *trailing = image.shape
    padded = image.new_zeros(n_cams, lists.blocks_y * b, lists.blocks_x * b, *trailing)
    padded[:, :height, :width] = image
    grid = padded.reshape(n_cams, lists.blocks_y, b, lists.blocks_x, b, *trailing).transpose(2, 3)
    return grid.reshape(n_cams * lists.blocks_y * lists.blocks_x, b * b, *trailing)


def _below(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` number below ``value``: ``threshold(x, _below(v), .)`` keeps exactly ``x >= v``."""
    down = torch.nextafter(torch.tensor(value, dtype=dtype), torch.tensor(-math.inf, dtype=dtype))
    return float(down)


def _weighted_sum(weight: Tensor, feats: Tensor) -> Tensor:
    """``out[a, p, d] = sum_s weight[a, p, s] feats[a, s, d]``; per channel for small D (small batched GEMMs are
    slow on CPU). [A, P, S], [A, S, D] -> [A, P, D]"""
    if feats.shape[-1] > 8:
        return torch.bmm(weight, feats)
    feats_t = feats.transpose(1, 2).contiguous()  # [A, D, S]: each channel contiguous along S
    return torch.stack([(weight * feats_t[:, None, d]).sum(-1) for d in range(feats.shape[-1])], -1)


class BlockCompositor(torch.autograd.Function):
    """Autograd function: (means2d, conics, opacities, features, backgrounds) -> (render, alpha)."""

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
        options: BlockOptions,
        stats: dict | None,
    ) -> tuple[Tensor, Tensor]:
        n_cams, n_gauss, n_ch = features.shape
        dtype = means2d.dtype
        lists = block_lists(means2d, conics, opacities, depths, radii, width, height, options.block_size)
        n_blocks, n_pix = len(lists.count), lists.block * lists.block
        attrs = torch.cat([means2d.reshape(-1, 2).t(), conics.reshape(-1, 3).t(), opacities.reshape(1, -1)])  # [6, CN]
        feats = features.reshape(-1, n_ch)  # [C * N, D]
        canvas = means2d.new_zeros(n_blocks, n_pix, n_ch)
        t_final = means2d.new_ones(n_blocks, n_pix)  # transmittance behind each pixel's composited Gaussians
        t_walk = means2d.new_ones(n_blocks, n_pix)  # the same, but 0 once the pixel has stopped
        sigma_min, alpha_min = _below(0.0, dtype), _below(ALPHA_MIN, dtype)
        chunks: list[_Chunk] = []
        n_cells = n_composited = n_evaluated = 0
        position = torch.zeros_like(lists.count)  # next slot of each block's list
        with torch.no_grad():
            cap = options.chunk_size  # the first slots of every block, then twice as many per step
            while steps := _walk_steps(lists, position, t_walk, n_pix, cap, options):
                cap = min(2 * cap, options.max_chunk_size)
                for blocks, n_s in steps:
                    n_a = len(blocks)
                    first = position.index_select(0, blocks)
                    position[blocks] = first + n_s
                    gauss, valid = _chunk_slots(lists, blocks, first, n_s)
                    geo = _geometry(lists, blocks, gauss, valid, attrs, width, height)
                    a, bc, c = geo.conic
                    # sigma, rounded exactly like the dense reference (halving is exact); torch.where and boolean
                    # masks are slow on CPU, so the rules are applied with in-place thresholds.
                    sigma = ((a * geo.dx * geo.dx + geo.out_x) * 0.5 + (c * geo.dy * geo.dy + geo.out_y) * 0.5).add_(
                        (bc * geo.dx) * geo.dy
                    )
                    sigma = F.threshold_(sigma.reshape(n_a, n_pix, n_s), sigma_min, math.inf)  # sigma < 0: skip
                    alpha = sigma.neg_().exp_().mul_(geo.opacity).clamp_max_(ALPHA_MAX)  # [A, P, S]
                    alpha = F.threshold_(alpha, alpha_min, 0.0)  # alpha < 1/255: skip
                    carried = t_walk.index_select(0, blocks)  # [A, P]
                    after = torch.cumprod(1.0 - alpha, -1).mul_(carried[:, :, None])  # [A, P, S] T behind a cell
                    # gsplat's early stop: a pixel stops before the first Gaussian that would bring T to <= T_MIN.
                    keep = F.threshold(after, T_MIN, 0.0).sign_()  # 1 while T stays above T_MIN, else 0
                    alpha.mul_(keep)
                    trans = torch.cat([carried[:, :, None], after[:, :, :-1]], -1)  # [A, P, S] T in front
                    t_final[blocks] = t_final.index_select(0, blocks) * (1.0 - alpha).prod(-1)
                    t_walk[blocks] = after[:, :, -1] * keep[:, :, -1]
                    canvas.index_add_(0, blocks, _weighted_sum(alpha * trans, feats[gauss]))
                    chunks.append(_Chunk(blocks, gauss, alpha, trans))
                    if stats is not None:
                        n_cells += alpha.numel()
                        n_composited += int(torch.count_nonzero(alpha))
                        n_evaluated += int(valid.sum())

        render = _to_image(canvas, lists, n_cams, width, height)  # [C, H, W, D]
        t_image = _to_image(t_final, lists, n_cams, width, height)  # [C, H, W]
        if backgrounds is not None:
            render = render + backgrounds[:, None, None, :] * t_image[..., None]
        if stats is not None:
            stats["n_composited"] = stats.get("n_composited", 0) + n_composited
            stats["n_cells"] = stats.get("n_cells", 0) + n_cells
            stats["n_skipped"] = stats.get("n_skipped", 0) + len(lists.gauss) - n_evaluated

        ctx.lists, ctx.chunks = lists, chunks
        ctx.width, ctx.height, ctx.absgrad = width, height, absgrad
        ctx.has_backgrounds = backgrounds is not None
        # means2d is kept by reference so that backward can attach `.absgrad` to the very tensor in `meta`.
        ctx.means2d_ref = means2d if absgrad else None
        ctx.save_for_backward(means2d, conics, opacities, features, backgrounds, t_final)
        return render.contiguous(), (1.0 - t_image)[..., None].contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_render: Tensor, grad_alpha: Tensor):
        means2d, conics, opacities, features, backgrounds, t_final = ctx.saved_tensors
        lists: BlockLists = ctx.lists
        n_cams, n_gauss, n_ch = features.shape
        b = lists.block
        want_geo = any(ctx.needs_input_grad[:3]) or ctx.absgrad
        want_feat = ctx.needs_input_grad[3]

        g_blocks = _to_blocks(grad_render, lists)  # [C * blocks, P, D]
        g_alpha = _to_blocks(grad_alpha[..., 0], lists)  # [C * blocks, P]
        v_bg = None
        if ctx.has_backgrounds and ctx.needs_input_grad[4]:
            t_img = _to_image(t_final, lists, n_cams, ctx.width, ctx.height)
            v_bg = (grad_render * t_img[..., None]).sum((1, 2))  # [C, D]
        # Per pixel, the part of R_i behind the chunk being visited: starts as T_final (bg . dL/drender - dL/dalpha)
        # and collects sum_j w_j q_j of each chunk as the chunks are visited back to front.
        behind = -g_alpha
        if backgrounds is not None:
            per_cam = lists.blocks_x * lists.blocks_y
            cam_of_block = torch.arange(n_cams, device=t_final.device).repeat_interleave(per_cam)
            behind = behind + (g_blocks * backgrounds.index_select(0, cam_of_block)[:, None, :]).sum(-1)
        behind = t_final * behind  # [C * blocks, P]

        attrs = torch.cat([means2d.reshape(-1, 2).t(), conics.reshape(-1, 3).t(), opacities.reshape(1, -1)])
        feats = features.reshape(-1, n_ch)
        # Per-Gaussian sums over the chunks' cells; the conic and opacity factors (constant per Gaussian) come last:
        # dL/dmean = conic @ (sum u, sum w), dL/dconic = (sum u dx / 2, sum u dy, sum w dy / 2), dL/do = sum(.) / o,
        # with u = v dx, w = v dy and v = dL/dalpha * alpha. The loop accumulates -v (see below).
        sums = means2d.new_zeros(6, n_cams * n_gauss)  # -(u, w, u dx, u dy, w dy, v)
        v_abs = means2d.new_zeros(2, n_cams * n_gauss) if ctx.absgrad else None
        v_feats = features.new_zeros(n_cams * n_gauss, n_ch)

        for chunk in reversed(ctx.chunks):
            n_a, n_s = chunk.gauss.shape
            flat_gauss = chunk.gauss.reshape(-1)
            g_pix = g_blocks.index_select(0, chunk.blocks)  # [A, P, D]
            weight = chunk.alpha * chunk.trans  # [A, P, S]
            if want_feat:
                v_f = _weighted_sum(weight.transpose(1, 2), g_pix)  # [A, S, D]
                v_feats.index_add_(0, flat_gauss, v_f.reshape(-1, n_ch))
            if not want_geo:
                continue
            feats_t = feats[chunk.gauss].transpose(1, 2).contiguous()  # [A, D, S]
            g_t = g_pix.transpose(1, 2).contiguous()  # [A, D, P]
            q = g_t[:, 0, :, None] * feats_t[:, None, 0]  # [A, P, S] features . dL/drender
            for d in range(1, n_ch):
                q.addcmul_(g_t[:, d, :, None], feats_t[:, None, d])
            prefix = torch.cumsum(weight.mul_(q), -1)  # [A, P, S] running sum of w q
            total = prefix[:, :, -1].clone()  # [A, P]
            carried = behind.index_select(0, chunk.blocks)
            rest = prefix.neg_().add_((total + carried)[:, :, None])  # [A, P, S] R_i
            behind[chunk.blocks] = carried + total
            alpha = chunk.alpha
            v = (chunk.trans * q).sub_(rest.div_(1.0 - alpha))  # dL/dalpha
            # alpha = min(0.999, o exp(-sigma)): no gradient where clamped; elsewhere d alpha / d o = alpha / o and
            # d alpha / d sigma = -alpha. -alpha where unclamped, 0 where clamped (and on cells composited nothing):
            v.mul_(F.threshold(-alpha, -ALPHA_MAX, 0.0))  # -v (threshold keeps -alpha > -0.999)
            v = v.reshape(n_a, b, b, n_s)
            valid = torch.ones_like(chunk.gauss, dtype=torch.bool)
            geo = _geometry(lists, chunk.blocks, chunk.gauss, valid, attrs, ctx.width, ctx.height)
            dx, dy = geo.dx[:, 0], geo.dy[:, :, 0]  # [A, b, S] each (by column / by row)
            v_col = v.sum(1)  # [A, b(x), S]
            v_row = v.sum(2)  # [A, b(y), S]
            vdy_col = (v * geo.dy).sum(1)  # [A, b(x), S]
            rows = (
                (dx * v_col).sum(1),  # sum u
                (dy * v_row).sum(1),  # sum w
                (dx * dx * v_col).sum(1),  # sum u dx
                (dx * vdy_col).sum(1),  # sum u dy
                (dy * dy * v_row).sum(1),  # sum w dy
                v_col.sum(1),  # sum v
            )
            sums.index_add_(1, flat_gauss, torch.stack(rows).reshape(6, -1))
            if v_abs is not None:  # per-pixel |dL/dmean2d| = |conic @ (u, w)|
                a, bc, c = geo.conic
                gx = (v * (a * geo.dx + bc * geo.dy)).abs_().sum((1, 2))  # [A, S]
                gy = (v * (bc * geo.dx + c * geo.dy)).abs_().sum((1, 2))
                v_abs.index_add_(1, flat_gauss, torch.stack([gx, gy]).reshape(2, -1))

        # dsigma/dmean = conic @ d and dsigma/dconic = (dx^2 / 2, dx dy, dy^2 / 2); u, w carry -dL/dsigma * d.
        sum_u, sum_w, sum_udx, sum_udy, sum_wdy, sum_va = sums.neg_().reshape(6, n_cams, n_gauss).unbind(0)  # [C, N]
        conic_a, conic_b, conic_c = conics.unbind(-1)  # [C, N] each
        v_means = -torch.stack([conic_a * sum_u + conic_b * sum_w, conic_b * sum_u + conic_c * sum_w], dim=-1)
        v_conics = -torch.stack([0.5 * sum_udx, sum_udy, 0.5 * sum_wdy], dim=-1)  # [C, N, 3]
        v_opac = torch.where(opacities > 0, sum_va / opacities, torch.zeros_like(sum_va))  # [C, N]
        if v_abs is not None and ctx.means2d_ref is not None:
            ctx.means2d_ref.absgrad = v_abs.reshape(2, n_cams, n_gauss).permute(1, 2, 0)
        return (
            v_means if ctx.needs_input_grad[0] else None,
            v_conics if ctx.needs_input_grad[1] else None,
            v_opac if ctx.needs_input_grad[2] else None,
            v_feats.reshape(n_cams, n_gauss, n_ch) if want_feat else None,
            v_bg,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def composite_blocks(
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
    options: BlockOptions | None = None,
    stats: dict | None = None,
) -> tuple[Tensor, Tensor]:
    """Rasterize screen-space Gaussians block by block, walking each pixel block's front-to-back Gaussian list.

    Args:
        means2d: Projected centres. [C, N, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [C, N, 3]
        opacities: Per-camera opacities. [C, N]
        features: Features to composite. [C, N, D]
        backgrounds: Background per camera, or None. [C, D]
        depths: Depths used to sort front to back (not differentiated). [C, N]
        radii: Pixel radii, 0 = culled. [C, N]
        width: Image width.
        height: Image height.
        absgrad: Attach ``means2d.absgrad`` (sum of per-pixel |dL/dmeans2d|) during backward.
        options: Block and chunk sizes (speed/memory only); None uses :class:`BlockOptions`' defaults.
        stats: Optional dict that receives counts summed over cameras: ``n_cells`` (grid cells evaluated),
            ``n_composited`` ((Gaussian, pixel) contributions composited, i.e. alpha >= 1/255 and before the early
            stop) and ``n_skipped`` ((block, Gaussian) list entries never evaluated because every pixel of the block
            had stopped).

    Returns:
        ``(render [C, H, W, D], alpha [C, H, W, 1])``.
    """
    return BlockCompositor.apply(
        means2d, conics, opacities, features, backgrounds, depths.detach(), radii, width, height, absgrad,
        options or DEFAULT_BLOCK_OPTIONS, stats,
    )
