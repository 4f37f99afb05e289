"""Candidate (Gaussian, pixel) pairs of one camera, evaluated as broadcast windows.

Every visible Gaussian gets a pixel box: gsplat's tile range (see :mod:`dynsplat_ns.render.rules`) intersected with
the bounding box of its ellipse ``alpha >= 1/255`` (a pure speed-up: pixels outside it fail the threshold anyway).
Boxes are rounded up to a few window shapes; all Gaussians sharing a shape are evaluated at once as a
[rows, cols, Gaussians] grid, and only cells with ``alpha >= 1/255`` are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from dynsplat_ns.render.rules import ALPHA_MAX, ALPHA_MIN, TILE_SIZE

__all__ = ["RankedGaussians", "rank_visible", "support_boxes", "window_size", "window_groups", "window_candidates"]

_MERGE_WASTE_CELLS = 1 << 15  # padding cells that cost about as much as one more window group (~0.3 ms)


def support_boxes(
    means2d: Tensor, conics: Tensor, opacities: Tensor, radii: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel boxes ``[x0, x1) x [y0, y1)`` that may hold pairs with ``alpha >= 1/255``.

    Args:
        means2d: Projected centres. [V, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [V, 3]
        opacities: Opacities. [V]
        radii: Pixel radii (> 0). [V]
        width: Image width.
        height: Image height.

    Returns:
        ``x0, x1, y0, y1``, each [V] int64, clipped to the image (empty boxes have ``x1 <= x0`` or ``y1 <= y0``).
    """
    mx, my = means2d[:, 0], means2d[:, 1]
    r = radii.to(means2d.dtype)
    # gsplat's tile range: floor((m - r) / 16) .. ceil((m + r) / 16), clipped to the tile grid.
    tile_r = r / TILE_SIZE
    tx0 = torch.floor(mx / TILE_SIZE - tile_r).clamp(min=0) * TILE_SIZE
    tx1 = torch.ceil(mx / TILE_SIZE + tile_r).clamp(min=0) * TILE_SIZE
    ty0 = torch.floor(my / TILE_SIZE - tile_r).clamp(min=0) * TILE_SIZE
    ty1 = torch.ceil(my / TILE_SIZE + tile_r).clamp(min=0) * TILE_SIZE
    # Ellipse {d : d^T conic d <= 2 log(255 o)} bounding box: half widths sqrt(2 log(255 o) * cov_xx) etc.
    det = (conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2).clamp(min=1e-30)
    level = 2.0 * torch.log(torch.clamp(opacities * 255.0, min=1.0))
    ex = torch.sqrt(level * conics[:, 2] / det) * 1.001 + 1e-3  # small margin for float rounding
    ey = torch.sqrt(level * conics[:, 0] / det) * 1.001 + 1e-3
    x0 = torch.maximum(torch.ceil(mx - 0.5 - ex), tx0).clamp(min=0)
    x1 = torch.minimum(torch.floor(mx - 0.5 + ex) + 1, tx1).clamp(max=width)
    y0 = torch.maximum(torch.ceil(my - 0.5 - ey), ty0).clamp(min=0)
    y1 = torch.minimum(torch.floor(my - 0.5 + ey) + 1, ty1).clamp(max=height)
    to_int = [t.to(torch.int64) for t in (x0, x1, y0, y1)]
    return to_int[0], to_int[1], to_int[2], to_int[3]


def window_size(extent: int) -> int:
    """Round a box side up to a coarse window size (1..4, then 2^k or 1.5 * 2^k), so few window shapes exist."""
    if extent <= 4:
        return max(extent, 1)
    size = 4
    while size < extent:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def window_groups(nx: Tensor, ny: Tensor, budget: int) -> Iterator[tuple[int, int, Tensor]]:
    """Group boxes into shared window shapes; yield ``(win_w, win_h, indices)`` with ``len * win_w * win_h ~ budget``.

    Each box gets a rounded window (see :func:`window_size`); then shape classes are merged, smallest first, while
    the padding a merge adds stays below ``_MERGE_WASTE_CELLS`` (each group costs a few dozen small torch calls).
    """
    if len(nx) == 0:
        return
    longest = int(torch.maximum(nx.max(), ny.max()))
    table = torch.tensor([window_size(e) for e in range(longest + 1)], dtype=torch.int64, device=nx.device)
    base = window_size(longest) + 1
    shape_key = table[ny] * base + table[nx]  # [V]
    keys, counts = torch.unique(shape_key, return_counts=True)
    classes = sorted(
        ((k % base, k // base, k, c) for k, c in zip(keys.tolist(), counts.tolist(), strict=True)),
        key=lambda cls: cls[0] * cls[1],
    )
    merged: list[tuple[int, int, list[int], int]] = []  # (win_w, win_h, shape keys, members)
    for ww, wh, key, count in classes:
        if merged:
            mw, mh, mkeys, mcount = merged[-1]
            nw, nh = max(mw, ww), max(mh, wh)
            waste = mcount * (nw * nh - mw * mh) + count * (nw * nh - ww * wh)
            if waste <= _MERGE_WASTE_CELLS:
                merged[-1] = (nw, nh, mkeys + [key], mcount + count)
                continue
        merged.append((ww, wh, [key], count))
    for ww, wh, mkeys, _ in merged:
        members = torch.nonzero(torch.isin(shape_key, torch.tensor(mkeys, device=nx.device))).squeeze(1)
        step = max(1, budget // (ww * wh))
        for s in range(0, len(members), step):
            yield ww, wh, members[s : s + step]


class RankedGaussians(NamedTuple):
    """Visible Gaussians of one camera in front-to-back order (row = depth rank), with their pixel boxes."""

    ids: Tensor  # [V] int64 Gaussian index
    attrs: Tensor  # [8, V] (mean_x - x0 - 0.5, mean_y - y0 - 0.5, conic a, b, c, opacity, box w, box h)
    corner: Tensor  # [V] int64 flat pixel index of the box's top-left corner
    nx: Tensor  # [V] int64 box width
    ny: Tensor  # [V] int64 box height


def rank_visible(
    means2d: Tensor, conics: Tensor, opacities: Tensor, depths: Tensor, radii: Tensor, width: int, height: int
) -> RankedGaussians:
    """Visible Gaussians of one camera (radius > 0, opacity >= 1/255), sorted front to back, with their boxes.

    Args:
        means2d: Projected centres. [N, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [N, 3]
        opacities: Opacities. [N]
        depths: Camera-space depths. [N]
        radii: Pixel radii, 0 = culled. [N]
        width: Image width.
        height: Image height.

    Returns:
        The :class:`RankedGaussians` (depth ties keep the Gaussian index order).
    """
    vis = torch.nonzero((radii > 0) & (opacities >= ALPHA_MIN)).squeeze(1)  # [V]
    vis = vis[torch.argsort(depths[vis], stable=True)]  # front to back
    mean, conic, opac = means2d[vis], conics[vis], opacities[vis]
    x0, x1, y0, y1 = support_boxes(mean, conic, opac, radii[vis], width, height)
    nx, ny = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
    dtype = mean.dtype
    # (mean - x0 - 0.5) - col below equals mean - (x0 + col + 0.5) exactly: all terms share the ulp grid of mean.
    attrs = torch.stack(
        [mean[:, 0] - x0.to(dtype) - 0.5, mean[:, 1] - y0.to(dtype) - 0.5, conic[:, 0], conic[:, 1], conic[:, 2],
         opac, nx.to(dtype), ny.to(dtype)],
    )  # [8, V]
    return RankedGaussians(vis, attrs, y0 * width + x0, nx, ny)


def window_candidates(
    gs: RankedGaussians, group: Tensor, ww: int, wh: int, width: int, key_dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Evaluate a window of wh x ww pixels per Gaussian by broadcasting; keep pairs with alpha >= 1/255.

    Args:
        gs: The ranked Gaussians.
        group: Ranks of the G Gaussians sharing this window shape. [G]
        ww: Window width (>= each member's box width).
        wh: Window height (>= each member's box height).
        width: Image width.
        key_dtype: Integer dtype of the sort key ``pixel * V + rank``.

    Returns:
        ``(key [K], alpha [K])`` of the kept pairs.
    """
    # Layout [wh, ww, G]: the member axis is innermost, so the broadcast arithmetic runs over long contiguous rows.
    off_x, off_y, a, b, c, opac, box_w, box_h = gs.attrs.index_select(1, group).unbind(0)  # each [G]
    cols = torch.arange(ww, device=group.device, dtype=off_x.dtype)[:, None]  # [ww, 1]
    rows = torch.arange(wh, device=group.device, dtype=off_x.dtype)[:, None, None]  # [wh, 1, 1]
    dx, dy = off_x - cols, off_y - rows  # [ww, G], [wh, 1, G]
    # Cells outside the member's own box get sigma = +inf (alpha 0): adding 0 elsewhere keeps sigma bit-identical.
    out_x = torch.where(cols < box_w, 0.0, math.inf)  # [ww, G]
    out_y = torch.where(rows < box_h, 0.0, math.inf)  # [wh, 1, G]
    # -sigma = -(0.5 * (a dx^2 + c dy^2) + b dx dy), rounded exactly like the dense reference evaluates sigma
    # (halving is exact, so it can be applied to each term on the small broadcast tensors).
    neg_sigma = ((a * dx * dx + out_x) * -0.5 + (c * dy * dy + out_y) * -0.5) - (b * dx) * dy  # [wh, ww, G]
    falloff = (opac * torch.exp(neg_sigma)).reshape(-1)  # [wh * ww * G]
    flat = torch.nonzero(falloff >= ALPHA_MIN).squeeze(1)  # [K]
    bad = neg_sigma.reshape(-1).index_select(0, flat) > 0  # sigma < 0: degenerate conic, skipped like gsplat
    if bool(bad.any()):
        flat = flat[~bad]
    # key = pixel * V + rank, built on the window and gathered at the kept cells.
    n_ranks = len(gs.ids)
    base = (gs.corner.index_select(0, group) * n_ranks + group).to(key_dtype)  # [G]
    offsets = torch.arange(wh, device=group.device)[:, None] * width + torch.arange(ww, device=group.device)
    key = (offsets.to(key_dtype)[:, :, None] * n_ranks + base).reshape(-1)  # [wh * ww * G]
    return key.index_select(0, flat), torch.clamp_max(falloff.index_select(0, flat), ALPHA_MAX)
