"""Front-to-back alpha compositing of (Gaussian, pixel) pairs with a hand-written backward.

Per pixel p with pairs i = 1..n (front to back), ``T_i = prod_{j<i} (1 - a_j)``, weights ``w_i = a_i T_i``:

    render_p = sum_i w_i f_i + T_final bg        alpha_p = 1 - T_final

The backward is the exact derivative of that forward (the pair set, threshold and early stop are treated as
constants, like gsplat's kernels do). With ``q_i = f_i . dL/drender_p`` and ``R_i = sum_{j>i} w_j q_j``:

    dL/da_i = T_i q_i - (R_i + T_final (bg . dL/drender_p - dL/dalpha_p)) / (1 - a_i)

and ``a = min(0.999, o exp(-sigma))`` passes gradients only where it is not clamped. Per-pixel gradients of the 2D
means are summed into ``means2d.grad`` and, with ``absgrad``, their absolute values into ``means2d.absgrad``.
Work is done per camera, per depth batch (front to back in the forward, back to front in the backward, carrying
the per-pixel sums) and in pixel-aligned chunks of pairs, so memory stays bounded. Only the transmittance and the
suffix sums R_i are accumulated in float64; everything else runs in the input dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynsplat_ns.render.pairs import CameraPairs, build_pairs, segment_chunks
from dynsplat_ns.render.rules import ALPHA_MAX

__all__ = ["composite_pairs", "PairCompositor"]

_PAIR_CHUNK = 1 << 20  # pairs processed at once in the per-pair forward/backward passes


def _pair_offsets(mean_x: Tensor, mean_y: Tensor, gauss: Tensor, pixel: Tensor, width: int, n_pix: int):
    """Offsets ``d = mean2d - pixel centre`` of pairs, recomputed in the backward exactly as the forward had them.

    Args:
        mean_x: Contiguous projected x of every Gaussian of the camera. [N]
        mean_y: Contiguous projected y. [N]
        gauss: Gaussian of each pair. [K] int32
        pixel: Flat pixel of each pair. [K] int32
        width: Image width.
        n_pix: Pixels in the image (decides whether float32 decodes pixel indices exactly).

    Returns:
        ``(dx, dy)``, each [K].
    """
    dtype = mean_x.dtype
    work = torch.float32 if n_pix < 2**24 and dtype != torch.float64 else torch.float64
    pix = pixel.to(work)
    py = torch.floor(pix / width)  # exact: integers below 2^24 (float32) or 2^53 (float64)
    px = pix - py * width
    dx = mean_x.index_select(0, gauss) - (px.to(dtype) + 0.5)
    dy = mean_y.index_select(0, gauss) - (py.to(dtype) + 0.5)
    return dx, dy


class PairCompositor(torch.autograd.Function):
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
        stats: dict | None,
    ) -> tuple[Tensor, Tensor]:
        n_cams, _, n_ch = features.shape
        n_pix = width * height
        render = means2d.new_zeros(n_cams, n_ch, n_pix)  # channel-major while accumulating
        t_final = means2d.new_ones(n_cams, n_pix)
        all_pairs: list[CameraPairs] = []
        for cam in range(n_cams):
            pairs = build_pairs(
                means2d[cam], conics[cam], opacities[cam], depths[cam], radii[cam], width, height
            )
            all_pairs.append(pairs)
            if stats is not None:
                for key, value in (("n_pairs", pairs.n_pairs), ("n_candidates", pairs.n_candidates)):
                    stats[key] = stats.get(key, 0) + value
                stats["n_skipped"] = stats.get("n_skipped", 0) + pairs.n_skipped
            feats_t = features[cam].t().contiguous()  # [D, N]
            for batch in pairs.batches:
                for s, e in segment_chunks(batch.seg_start, batch.seg_count, len(batch.gauss), _PAIR_CHUNK):
                    gauss, pixel = batch.gauss[s:e], batch.pixel[s:e]
                    weight = batch.alpha[s:e] * batch.trans[s:e]  # [K]
                    for ch in range(n_ch):
                        render[cam, ch].index_add_(0, pixel, weight * feats_t[ch].index_select(0, gauss))
            t_final[cam] = pairs.trans_final
            if backgrounds is not None:
                render[cam] += backgrounds[cam][:, None] * t_final[cam][None, :]

        ctx.all_pairs = all_pairs
        ctx.width, ctx.height, ctx.absgrad = width, height, absgrad
        ctx.has_backgrounds = backgrounds is not None
        # means2d is kept by reference so that backward can attach `.absgrad` to the very tensor in `meta`.
        ctx.means2d_ref = means2d if absgrad else None
        ctx.save_for_backward(means2d, conics, opacities, features, backgrounds, t_final)
        render_out = render.permute(0, 2, 1).reshape(n_cams, height, width, n_ch)
        alpha_out = (1.0 - t_final).reshape(n_cams, height, width, 1)
        return render_out, alpha_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_render: Tensor, grad_alpha: Tensor):
        means2d, conics, opacities, features, backgrounds, t_final = ctx.saved_tensors
        width, height = ctx.width, ctx.height
        n_cams, n_gauss, n_ch = features.shape
        n_pix = width * height
        dtype = means2d.dtype
        want_geo = any(ctx.needs_input_grad[:3]) or ctx.absgrad
        want_feat = ctx.needs_input_grad[3]

        g_render = grad_render.reshape(n_cams, n_pix, n_ch).permute(0, 2, 1).contiguous()  # [C, D, P]
        g_alpha = grad_alpha.reshape(n_cams, n_pix)  # [C, P]
        # Per-Gaussian sums over pairs; the conic and opacity factors (constant per Gaussian) are applied at the end:
        # dL/dmean = conic @ (sum u, sum w), dL/dconic = (sum u dx / 2, sum u dy, sum w dy / 2), dL/do = sum(.) / o.
        sums = means2d.new_zeros(n_cams, 6, n_gauss)  # u, w, u dx, u dy, w dy, v_alpha * alpha
        v_abs = means2d.new_zeros(n_cams, n_gauss, 2) if ctx.absgrad else None
        v_feats = features.new_zeros(n_cams, n_ch, n_gauss)  # channel-major while accumulating
        v_bg = None
        if ctx.has_backgrounds and ctx.needs_input_grad[4]:
            v_bg = (g_render * t_final[:, None, :]).sum(-1)  # [C, D]

        for cam in range(n_cams):
            pairs: CameraPairs = ctx.all_pairs[cam]
            feats_t = features[cam].t().contiguous()  # [D, N]
            g_cam = g_render[cam]  # [D, P]
            # Per pixel, the part of R_i behind pair i's batch: starts as T_final * (bg . dL/drender - dL/dalpha)
            # and collects sum_j w_j q_j of each batch as the batches are visited back to front.
            behind = -g_alpha[cam]
            if backgrounds is not None:
                behind = behind + (backgrounds[cam][:, None] * g_cam).sum(0)
            behind = (t_final[cam] * behind).to(torch.float64)  # [P]
            mean_x, mean_y = means2d[cam, :, 0].contiguous(), means2d[cam, :, 1].contiguous()
            conic_cols = [conics[cam, :, i].contiguous() for i in range(3)] if v_abs is not None else None
            for batch in reversed(pairs.batches):
                seg_last = batch.seg_start + batch.seg_count - 1  # [P]
                batch_wq = torch.zeros_like(behind) if want_geo else None  # [P]
                for s, e in segment_chunks(batch.seg_start, batch.seg_count, len(batch.gauss), _PAIR_CHUNK):
                    gauss, pixel, trans, alpha = batch.gauss[s:e], batch.pixel[s:e], batch.trans[s:e], batch.alpha[s:e]
                    weight = alpha * trans  # [K]
                    q = torch.zeros_like(weight)  # [K] features . dL/drender
                    for ch in range(n_ch):
                        g_pair = g_cam[ch].index_select(0, pixel)  # [K]
                        if want_feat:
                            v_feats[cam, ch].index_add_(0, gauss, weight * g_pair)
                        if want_geo:
                            q += feats_t[ch].index_select(0, gauss) * g_pair
                    if not want_geo:
                        continue
                    # R_i = (sum of w q after i in this batch) + behind[pixel]; the first part from a float64
                    # prefix sum over this pixel-aligned chunk.
                    wq = (weight * q).to(torch.float64)
                    prefix = torch.cumsum(wq, 0)  # [K]
                    last_local = seg_last.index_select(0, pixel) - s  # [K] index of the pixel's last pair
                    rest = prefix.index_select(0, last_local) - prefix + behind.index_select(0, pixel)  # [K]
                    batch_wq.index_add_(0, pixel, wq)
                    v_alpha = trans * q - (rest / (1.0 - alpha.to(torch.float64))).to(dtype)  # [K]
                    # alpha = min(0.999, o exp(-sigma)): no gradient where clamped; elsewhere alpha is the falloff,
                    # so d alpha / d o = alpha / o and d alpha / d sigma = -alpha.
                    v_alpha = torch.where(alpha < ALPHA_MAX, v_alpha, torch.zeros_like(v_alpha)) * alpha
                    dx, dy = _pair_offsets(mean_x, mean_y, gauss, pixel, width, n_pix)
                    u, w = v_alpha * dx, v_alpha * dy  # [K] = -(dL/dsigma) * d
                    for row, value in enumerate((u, w, u * dx, u * dy, w * dy, v_alpha)):
                        sums[cam, row].index_add_(0, gauss, value)
                    if v_abs is not None:  # per-pixel |dL/dmean2d|, which needs the conic per pair
                        conic_a, conic_b, conic_c = (col.index_select(0, gauss) for col in conic_cols)
                        v_abs[cam, :, 0].index_add_(0, gauss, (conic_a * u + conic_b * w).abs())
                        v_abs[cam, :, 1].index_add_(0, gauss, (conic_b * u + conic_c * w).abs())
                if batch_wq is not None:
                    behind += batch_wq

        # dsigma/dmean = conic @ d and dsigma/dconic = (dx^2 / 2, dx dy, dy^2 / 2); u, w carry -dL/dsigma * d.
        sum_u, sum_w, sum_udx, sum_udy, sum_wdy, sum_va = sums.unbind(1)  # [C, N] each
        conic_a, conic_b, conic_c = conics.unbind(-1)  # [C, N] each
        v_means = -torch.stack([conic_a * sum_u + conic_b * sum_w, conic_b * sum_u + conic_c * sum_w], dim=-1)
        v_conics = -torch.stack([0.5 * sum_udx, sum_udy, 0.5 * sum_wdy], dim=-1)  # [C, N, 3]
        v_opac = torch.where(opacities > 0, sum_va / opacities, torch.zeros_like(sum_va))  # [C, N]
        if v_abs is not None and ctx.means2d_ref is not None:
            ctx.means2d_ref.absgrad = v_abs
        return (
            v_means if ctx.needs_input_grad[0] else None,
            v_conics if ctx.needs_input_grad[1] else None,
            v_opac if ctx.needs_input_grad[2] else None,
            v_feats.permute(0, 2, 1) if want_feat else None,
            v_bg,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def composite_pairs(
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
    stats: dict | None = None,
) -> tuple[Tensor, Tensor]:
    """Rasterize screen-space Gaussians by compositing their (Gaussian, pixel) pairs.

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
        stats: Optional dict that receives counts summed over cameras: ``n_candidates`` (window cells evaluated),
            ``n_pairs`` (pairs composited, i.e. alpha >= 1/255 and before the early stop) and ``n_skipped``
            (Gaussians not evaluated because their whole box had stopped).

    Returns:
        ``(render [C, H, W, D], alpha [C, H, W, 1])``.
    """
    return PairCompositor.apply(
        means2d, conics, opacities, features, backgrounds, depths.detach(), radii, width, height, absgrad, stats
    )
