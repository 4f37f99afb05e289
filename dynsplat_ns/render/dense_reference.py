"""Slow, obviously-correct dense rasterizer: every visible Gaussian against every pixel, plain autograd.

It is the test oracle for the torch backend and the "naive dense" baseline of ``benchmarks/rasterizer.py``. It shares
the projection and colour code (tested on their own) but not the compositing: alphas come from a dense
[Gaussians, pixels] grid, ordered by depth, with a ``cumprod`` transmittance. Rules (as gsplat 1.4.0):

* a Gaussian with ``radius > 0`` may touch the pixels of the 16x16 tiles overlapped by ``mean2d +- radius``;
* ``alpha = min(0.999, opacity * exp(-sigma))``; pairs with ``alpha < 1/255`` (or ``sigma < 0``) are skipped;
* a pixel stops before the first Gaussian whose inclusion would take its transmittance to ``<= 1e-4``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from dynsplat_ns.render.features import composite_features, finish_render, gaussian_colors
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.rules import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE_SIZE
from dynsplat_ns.render.settings import RasterSettings

__all__ = ["dense_composite_pixels", "dense_rasterize"]


def dense_composite_pixels(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    pixel_ids: Tensor,
) -> tuple[Tensor, Tensor]:
    """Composite the visible Gaussians of one camera over a set of pixels.

    Args:
        means2d: Projected centres. [N, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [N, 3]
        opacities: Opacities. [N]
        features: Features. [N, D]
        depths: Depths. [N]
        radii: Pixel radii, 0 = culled. [N]
        width: Image width (to decode ``pixel_ids``).
        pixel_ids: Flat pixel indices ``y * width + x``. [P]

    Returns:
        ``(colour without background [P, D], final transmittance [P])``.
    """
    vis = torch.nonzero(radii > 0).squeeze(1)
    vis = vis[torch.argsort(depths[vis], stable=True)]  # front to back, ties by index
    mean, conic, opac, feat = means2d[vis], conics[vis], opacities[vis], features[vis]  # [V, ...]
    radius = radii[vis].to(mean.dtype)  # [V]

    pix_x = (pixel_ids % width).to(mean.dtype)  # [P]
    pix_y = torch.div(pixel_ids, width, rounding_mode="floor").to(mean.dtype)  # [P]
    dx = mean[:, 0:1] - (pix_x[None, :] + 0.5)  # [V, P]
    dy = mean[:, 1:2] - (pix_y[None, :] + 0.5)  # [V, P]
    sigma = 0.5 * (conic[:, 0:1] * dx * dx + conic[:, 2:3] * dy * dy) + conic[:, 1:2] * dx * dy  # [V, P]
    alpha = torch.clamp_max(opac[:, None] * torch.exp(-sigma), ALPHA_MAX)  # [V, P]

    with torch.no_grad():
        tx0 = torch.floor(mean[:, 0] / TILE_SIZE - radius / TILE_SIZE).clamp(min=0) * TILE_SIZE  # [V]
        tx1 = torch.ceil(mean[:, 0] / TILE_SIZE + radius / TILE_SIZE).clamp(min=0) * TILE_SIZE
        ty0 = torch.floor(mean[:, 1] / TILE_SIZE - radius / TILE_SIZE).clamp(min=0) * TILE_SIZE
        ty1 = torch.ceil(mean[:, 1] / TILE_SIZE + radius / TILE_SIZE).clamp(min=0) * TILE_SIZE
        in_tiles = (
            (pix_x[None] >= tx0[:, None]) & (pix_x[None] < tx1[:, None])
            & (pix_y[None] >= ty0[:, None]) & (pix_y[None] < ty1[:, None])
        )  # [V, P]
        used = in_tiles & (alpha >= ALPHA_MIN) & (sigma >= 0)  # [V, P]
        trans_after = torch.cumprod(1.0 - torch.where(used, alpha, 0.0).to(torch.float64), dim=0)  # [V, P]
        used &= trans_after > T_MIN  # early stop (a prefix, as transmittance never increases)

    a = torch.where(used, alpha, torch.zeros_like(alpha))  # [V, P]
    trans_incl = torch.cumprod(1.0 - a, dim=0)  # [V, P]
    trans_excl = torch.cat([torch.ones_like(trans_incl[:1]), trans_incl[:-1]], dim=0)  # [V, P]
    weights = a * trans_excl  # [V, P]
    colour = weights.t() @ feat  # [P, D]
    # clone: a view would keep the whole [V, P] grid alive (e.g. across checkpointed chunks)
    t_final = trans_incl[-1].clone() if len(vis) else torch.ones_like(pix_x)  # [P]
    return colour, t_final


def dense_rasterize(
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
    pixel_chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Dense twin of :func:`dynsplat_ns.render.rasterize` (classic mode, inputs assumed valid).

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] or SH [(C,) N, K, 3]
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: [C, D] or None.
        settings: Image size and options; ``rasterize_mode`` must be "classic". ``absgrad``, ``backend``,
            ``torch_options`` and ``compiled_block`` are not read (no ``meta`` here).
        pixel_chunk: If set, pixels are processed in chunks of this size under activation checkpointing, so the
            autograd graph does not hold the [Gaussians, chunk] grids (the backward recomputes each chunk).

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1])``.

    Raises:
        ValueError: for ``settings.rasterize_mode != "classic"`` (the reference has no antialiasing).
    """
    if settings.rasterize_mode != "classic":
        mode = settings.rasterize_mode
        raise ValueError(f"dense_rasterize: only rasterize_mode='classic' is supported, got {mode!r}")
    width, height, render_mode = settings.width, settings.height, settings.render_mode
    proj = project_gaussians(
        means, quats, scales, viewmats, Ks, width, height, eps2d=settings.eps2d, near_plane=settings.near_plane,
        far_plane=settings.far_plane,
    )
    n_cams, n_pix = viewmats.shape[0], width * height
    rgb = None if render_mode in ("D", "ED") else gaussian_colors(means, colors, viewmats, settings.sh_degree)
    feats, bgs = composite_features(rgb, proj.depths, backgrounds, render_mode)  # [C, N, D'], [C, D']
    opac = opacities[None, :].expand(n_cams, -1)  # [C, N]
    chunk = pixel_chunk or n_pix
    renders, alphas = [], []
    for cam in range(n_cams):
        cam_args = (proj.means2d[cam], proj.conics[cam], opac[cam], feats[cam], proj.depths[cam], proj.radii[cam])
        colour_parts, trans_parts = [], []
        for start in range(0, n_pix, chunk):
            ids = torch.arange(start, min(start + chunk, n_pix), device=means.device)
            if pixel_chunk is not None and torch.is_grad_enabled():
                colour, trans = checkpoint(dense_composite_pixels, *cam_args, width, ids, use_reentrant=False)
            else:
                colour, trans = dense_composite_pixels(*cam_args, width, ids)
            colour_parts.append(colour)
            trans_parts.append(trans)
        colour, trans = torch.cat(colour_parts), torch.cat(trans_parts)  # [P, D'], [P]
        if bgs is not None:
            colour = colour + trans[:, None] * bgs[cam][None, :]
        renders.append(colour.reshape(height, width, -1))
        alphas.append((1.0 - trans).reshape(height, width, 1))
    render, alpha = torch.stack(renders), torch.stack(alphas)
    return finish_render(render, alpha, render_mode), alpha
