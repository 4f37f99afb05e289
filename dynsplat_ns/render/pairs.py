"""Tile-free enumeration of the (Gaussian, pixel) pairs that a camera composites.

For one camera, visible Gaussians are ranked front to back. Each gets a pixel box; boxes of similar size are
evaluated together as broadcast [G, h, w] windows, candidates with ``alpha < 1/255`` are dropped, and the rest are
sorted by pixel, then depth. gsplat's early stop (a pixel stops before the Gaussian whose inclusion would take its
transmittance to ``<= 1e-4``) is applied here too, so the returned pairs are exactly those that receive weight.
Large problems run in a few front-to-back depth batches that carry each pixel's transmittance: pairs at pixels
that already stopped are dropped before sorting, and Gaussians whose whole box has stopped are never evaluated.
Nothing here is differentiable.

Support rule (identical to gsplat 1.4.0's tiled rasterizer): a Gaussian with ``radius > 0`` can touch the pixels of
every 16x16 tile overlapped by the square ``mean2d +- radius``. That box is intersected with the bounding box of
the ellipse ``alpha >= 1/255`` (a pure speed-up: pixels outside it would be dropped by the threshold anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "ALPHA_MIN",
    "ALPHA_MAX",
    "T_MIN",
    "TILE_SIZE",
    "PixelPairs",
    "CameraPairs",
    "support_boxes",
    "window_size",
    "build_pairs",
    "segment_chunks",
]

ALPHA_MIN = 1.0 / 255.0  # pairs below this alpha are skipped
ALPHA_MAX = 0.999  # alpha is clamped to this
T_MIN = 1e-4  # a pixel stops before its transmittance would reach this
TILE_SIZE = 16  # gsplat's tile size, which defines where a Gaussian may contribute

_CANDIDATE_CHUNK = 1 << 21  # candidate window cells evaluated at once (bounds the transient memory)
_INT32_KEYS_BELOW = 2**31  # sort keys pixel * V + rank use int32 (faster) while they fit
_SINGLE_BATCH_CANDIDATES = 1 << 20  # up to this many candidates, one depth batch (no early skipping)


class PixelPairs(NamedTuple):
    """One depth batch of composited pairs of a camera, sorted by pixel then depth (front to back).

    Attributes:
        gauss: Gaussian index in [0, N). [M] int32
        pixel: Flat pixel index ``y * width + x``, non-decreasing. [M] int32
        alpha: ``min(0.999, opacity * exp(-sigma))`` of each pair. [M]
        trans: Transmittance in front of each pair (earlier batches included). [M]
        seg_start: First pair index of each pixel within this batch. [H * W] int64
        seg_count: Number of pairs of each pixel within this batch. [H * W] int64
    """

    gauss: Tensor
    pixel: Tensor
    alpha: Tensor
    trans: Tensor
    seg_start: Tensor
    seg_count: Tensor


class CameraPairs(NamedTuple):
    """All composited pairs of one camera, as front-to-back depth batches.

    Every pair of batch b lies in front of every pair of batch b + 1 at the same pixel, so compositing can run
    batch by batch front to back (and the backward back to front).

    Attributes:
        batches: Depth batches, front to back.
        trans_final: Transmittance left behind each pixel's last pair (1 for empty pixels). [H * W]
        n_candidates: Window cells evaluated against the alpha threshold.
        n_skipped: Gaussians skipped because every pixel of their box had already stopped.
    """

    batches: list[PixelPairs]
    trans_final: Tensor
    n_candidates: int
    n_skipped: int

    @property
    def n_pairs(self) -> int:
        """Number of composited pairs."""
        return sum(len(b.gauss) for b in self.batches)


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


def _window_groups(nx: Tensor, ny: Tensor, budget: int) -> Iterator[tuple[int, int, Tensor]]:
    """Group boxes by rounded window shape; yield ``(win_w, win_h, indices)`` with ``len * win_w * win_h ~ budget``."""
    longest = int(torch.maximum(nx.max(), ny.max())) if len(nx) else 0
    table = torch.tensor([window_size(e) for e in range(longest + 1)], dtype=torch.int64, device=nx.device)
    win_w, win_h = table[nx], table[ny]  # [V]
    base = window_size(longest) + 1
    shape_key = win_h * base + win_w  # [V]
    for key in torch.unique(shape_key).tolist():
        members = torch.nonzero(shape_key == key).squeeze(1)
        ww, wh = key % base, key // base
        step = max(1, budget // (ww * wh))
        for s in range(0, len(members), step):
            yield ww, wh, members[s : s + step]


class _RankedGaussians(NamedTuple):
    """Visible Gaussians of one camera in front-to-back order (row = depth rank), with their pixel boxes."""

    ids: Tensor  # [V] int64 Gaussian index
    attrs: Tensor  # [V, 8] (mean_x - x0 - 0.5, mean_y - y0 - 0.5, conic a, b, c, opacity, box w, box h)
    corner: Tensor  # [V] int64 flat pixel index of the box's top-left corner
    nx: Tensor  # [V] int64 box width
    ny: Tensor  # [V] int64 box height


def _rank_visible(
    means2d: Tensor, conics: Tensor, opacities: Tensor, depths: Tensor, radii: Tensor, width: int, height: int
) -> _RankedGaussians:
    vis = torch.nonzero((radii > 0) & (opacities >= ALPHA_MIN)).squeeze(1)  # [V]
    vis = vis[torch.argsort(depths[vis], stable=True)]  # front to back; ties keep the Gaussian index order
    mean, conic, opac = means2d[vis], conics[vis], opacities[vis]
    x0, x1, y0, y1 = support_boxes(mean, conic, opac, radii[vis], width, height)
    nx, ny = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
    dtype = mean.dtype
    # (mean - x0 - 0.5) - col below equals mean - (x0 + col + 0.5) exactly: all terms share the ulp grid of mean.
    attrs = torch.stack(
        [mean[:, 0] - x0.to(dtype) - 0.5, mean[:, 1] - y0.to(dtype) - 0.5, conic[:, 0], conic[:, 1], conic[:, 2],
         opac, nx.to(dtype), ny.to(dtype)],
        dim=-1,
    )  # [V, 8]
    return _RankedGaussians(vis, attrs, y0 * width + x0, nx, ny)


def _window_candidates(
    gs: _RankedGaussians, group: Tensor, ww: int, wh: int, width: int, key_dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Evaluate a [G, wh, ww] window of pixels per Gaussian by broadcasting; keep pairs with alpha >= 1/255.

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
    attrs = gs.attrs.index_select(0, group)[:, :, None, None]  # [G, 8, 1, 1]
    off_x, off_y, a, b, c, opac, box_w, box_h = attrs.unbind(1)  # each [G, 1, 1]
    cols = torch.arange(ww, device=group.device, dtype=attrs.dtype)  # [ww]
    rows = torch.arange(wh, device=group.device, dtype=attrs.dtype)[:, None]  # [wh, 1]
    dx, dy = off_x - cols, off_y - rows  # [G, 1, ww], [G, wh, 1]
    # Cells outside the member's own box get sigma = +inf (alpha 0): adding 0 elsewhere keeps sigma bit-identical.
    out_x = torch.where(cols < box_w, 0.0, math.inf)  # [G, 1, ww]
    out_y = torch.where(rows < box_h, 0.0, math.inf)  # [G, wh, 1]
    # -sigma = -(0.5 * (a dx^2 + c dy^2) + b dx dy), rounded exactly like the dense reference evaluates sigma
    # (halving is exact, so it can be applied to each term on the small broadcast tensors).
    neg_sigma = ((a * dx * dx + out_x) * -0.5 + (c * dy * dy + out_y) * -0.5) - (b * dx) * dy  # [G, wh, ww]
    falloff = (opac * torch.exp(neg_sigma)).reshape(-1)  # [G * wh * ww]
    flat = torch.nonzero(falloff >= ALPHA_MIN).squeeze(1)  # [K]
    bad = neg_sigma.reshape(-1).index_select(0, flat) > 0  # sigma < 0: degenerate conic, skipped like gsplat
    if bool(bad.any()):
        flat = flat[~bad]
    # key = pixel * V + rank, built on the window and gathered at the kept cells.
    n_ranks = len(gs.ids)
    base = (gs.corner.index_select(0, group) * n_ranks + group).to(key_dtype)  # [G]
    offsets = (torch.arange(wh, device=group.device)[:, None] * width + torch.arange(ww, device=group.device))
    key = (base[:, None, None] + offsets.to(key_dtype) * n_ranks).reshape(-1)  # [G * wh * ww]
    return key.index_select(0, flat), torch.clamp_max(falloff.index_select(0, flat), ALPHA_MAX)


def _depth_batches(counts: Tensor) -> list[tuple[int, int]]:
    """Rank ranges of the depth batches: one batch for small problems, else growing batches (1/8, 1/8, 1/4, 1/2 of
    the candidates), so heavily occluded pixels stop early and the Gaussians behind them are skipped."""
    total = int(counts.sum()) if len(counts) else 0
    if total <= _SINGLE_BATCH_CANDIDATES:
        return [(0, len(counts))]
    ends = torch.cumsum(counts, 0)
    marks = torch.tensor([total / 8, total / 4, total / 2], dtype=ends.dtype, device=counts.device)
    cuts = [0] + torch.searchsorted(ends, marks).tolist() + [len(counts)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _alive_in_boxes(alive: Tensor, gs: _RankedGaussians, ranks: Tensor, width: int, height: int) -> Tensor:
    """Number of not-yet-stopped pixels in each box, from an integral image of ``alive``. [R] int64"""
    table = torch.zeros(height + 1, width + 1, dtype=torch.int64, device=alive.device)
    table[1:, 1:] = alive.reshape(height, width).to(torch.int64).cumsum(0).cumsum(1)
    flat = table.reshape(-1)
    x0 = gs.corner.index_select(0, ranks) % width
    y0 = torch.div(gs.corner.index_select(0, ranks), width, rounding_mode="floor")
    x1, y1 = x0 + gs.nx.index_select(0, ranks), y0 + gs.ny.index_select(0, ranks)
    stride = width + 1
    return flat[y1 * stride + x1] - flat[y0 * stride + x1] - flat[y1 * stride + x0] + flat[y0 * stride + x0]


@torch.no_grad()
def build_pairs(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
) -> CameraPairs:
    """Enumerate, threshold, sort and early-stop the (Gaussian, pixel) pairs of one camera.

    Gaussians are processed in front-to-back depth batches. Each batch carries the per-pixel log transmittance of
    the batches in front of it; pixels that have stopped drop their later pairs before sorting, and Gaussians whose
    whole box has stopped are not evaluated at all.

    Args:
        means2d: Projected centres. [N, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [N, 3]
        opacities: Opacities. [N]
        depths: Camera-space depths (sort key). [N]
        radii: Pixel radii, 0 = culled. [N]
        width: Image width.
        height: Image height.

    Returns:
        The camera's :class:`CameraPairs`.
    """
    device, dtype = means2d.device, means2d.dtype
    n_pix = width * height
    gs = _rank_visible(means2d, conics, opacities, depths, radii, width, height)
    n_ranks = max(len(gs.ids), 1)
    key_dtype = torch.int32 if n_pix * n_ranks < _INT32_KEYS_BELOW else torch.int64
    log_trans = torch.zeros(n_pix, dtype=torch.float64, device=device)  # carried, per pixel
    alive = torch.ones(n_pix, dtype=torch.bool, device=device)  # pixel has not stopped yet
    batches, n_candidates, n_skipped = [], 0, 0

    for first_rank, end_rank in _depth_batches(gs.nx * gs.ny):
        ranks = torch.arange(first_rank, end_rank, device=device)
        ranks = ranks[(gs.nx.index_select(0, ranks) > 0) & (gs.ny.index_select(0, ranks) > 0)]
        if batches:  # skip Gaussians whose whole box has stopped
            live = _alive_in_boxes(alive, gs, ranks, width, height) > 0
            n_skipped += int((~live).sum())
            ranks = ranks[live]

        # 1. Candidates -> pairs with alpha >= 1/255, keyed by (pixel, depth rank).
        keys, alphas = [], []
        for ww, wh, members in _window_groups(gs.nx[ranks], gs.ny[ranks], _CANDIDATE_CHUNK):
            n_candidates += len(members) * ww * wh
            key, alpha = _window_candidates(gs, ranks[members], ww, wh, width, key_dtype)
            keys.append(key)
            alphas.append(alpha)
        if not keys:
            continue
        key, alpha = torch.cat(keys), torch.cat(alphas)
        del keys, alphas
        if batches:  # pairs at pixels that already stopped are dropped before sorting
            idx = torch.nonzero(alive.index_select(0, torch.div(key, n_ranks, rounding_mode="floor"))).squeeze(1)
            key, alpha = key.index_select(0, idx), alpha.index_select(0, idx)

        # 2. Sort by pixel, then front to back (keys are unique).
        key, perm = torch.sort(key)
        alpha = alpha.index_select(0, perm)
        del perm
        pixel = torch.div(key, n_ranks, rounding_mode="floor")  # [M]
        rank = key - pixel * n_ranks  # [M]
        del key

        # 3. Log transmittance behind each pair: carried + per-pixel inclusive cumsum of log(1 - alpha), float64.
        log_keep = torch.log1p(-alpha).to(torch.float64)  # [M]
        after = torch.cumsum(log_keep, 0)  # [M] global inclusive prefix
        seg_count = torch.bincount(pixel, minlength=n_pix)  # [P]
        seg_start = torch.cumsum(seg_count, 0) - seg_count  # [P]
        if len(after):
            # Replace the global prefix in front of each pixel's first pair by the carried log transmittance.
            offset = (after - log_keep).index_select(0, seg_start.clamp(max=len(after) - 1)) - log_trans  # [P]
            after = after - offset.index_select(0, pixel)  # [M]
        before = after - log_keep  # [M]

        # 4. gsplat's early stop: a pixel stops before the first pair that would bring T to <= T_MIN.
        keep = after > math.log(T_MIN)
        if not bool(keep.all()):
            alive[pixel[~keep]] = False
            idx = torch.nonzero(keep).squeeze(1)
            pixel, rank, alpha = pixel.index_select(0, idx), rank.index_select(0, idx), alpha.index_select(0, idx)
            before, after = before.index_select(0, idx), after.index_select(0, idx)
            seg_count = torch.bincount(pixel, minlength=n_pix)
            seg_start = torch.cumsum(seg_count, 0) - seg_count
        covered = seg_count > 0
        log_trans[covered] = after.index_select(0, (seg_start + seg_count - 1)[covered])
        batches.append(
            PixelPairs(
                gauss=gs.ids.index_select(0, rank).to(torch.int32),
                pixel=pixel.to(torch.int32),
                alpha=alpha,
                trans=torch.exp(before).to(dtype),
                seg_start=seg_start,
                seg_count=seg_count,
            )
        )
    return CameraPairs(batches, torch.exp(log_trans).to(dtype), n_candidates, n_skipped)


def segment_chunks(seg_start: Tensor, seg_count: Tensor, n_pairs: int, budget: int) -> Iterator[tuple[int, int]]:
    """Pair ranges ``[s, e)`` of about ``budget`` pairs that never split a pixel's pairs.

    Args:
        seg_start: First pair of each pixel. [P]
        seg_count: Pair count of each pixel. [P]
        n_pairs: Total number of pairs.
        budget: Target pairs per range.

    Yields:
        Consecutive ranges covering ``[0, n_pairs)``.
    """
    if n_pairs == 0:
        return
    ends = seg_start + seg_count  # [P] exclusive end of each pixel's run (non-decreasing)
    start = 0
    while start < n_pairs:
        target = min(start + budget, n_pairs)
        # The first pixel run ending at or after the target closes this chunk.
        idx = int(torch.searchsorted(ends, torch.tensor([target], device=ends.device)).item())
        end = int(ends[min(idx, len(ends) - 1)])
        end = max(end, start + 1)
        yield start, end
        start = end
