"""Tile-free enumeration of the (Gaussian, pixel) pairs that a camera composites.

Visible Gaussians are ranked front to back and expanded into candidate pairs (:mod:`dynsplat_ns.render.windows`);
pairs are sorted by pixel, then depth, and gsplat's early stop (:mod:`dynsplat_ns.render.rules`) is applied, so the
returned pairs are exactly those that receive weight. Large problems run in a few front-to-back depth batches that
carry each pixel's transmittance: pairs at pixels that already stopped are dropped before sorting, and Gaussians
whose whole box has stopped are never evaluated. Nothing here is differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from dynsplat_ns.render.rules import T_MIN
from dynsplat_ns.render.windows import RankedGaussians, rank_visible, window_candidates, window_groups

__all__ = ["PixelPairs", "CameraPairs", "build_pairs", "segment_chunks"]

_CANDIDATE_CHUNK = 1 << 21  # candidate window cells evaluated at once (bounds the transient memory)
_INT32_KEYS_BELOW = 2**31  # sort keys pixel * V + rank use int32 (faster) while they fit
_SINGLE_BATCH_CANDIDATES = 1 << 21  # up to this many candidates, one depth batch (no early skipping)


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


def _depth_batches(counts: Tensor) -> list[tuple[int, int]]:
    """Rank ranges of the depth batches: one batch for small problems, else three (1/4, 1/4 and 1/2 of the
    candidates), so heavily occluded pixels stop early and the Gaussians behind them are skipped."""
    total = int(counts.sum()) if len(counts) else 0
    if total <= _SINGLE_BATCH_CANDIDATES:
        return [(0, len(counts))]
    ends = torch.cumsum(counts, 0)
    marks = torch.tensor([total / 4, total / 2], dtype=torch.float64, device=counts.device).to(ends.dtype)
    cuts = [0] + torch.searchsorted(ends, marks).tolist() + [len(counts)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _alive_in_boxes(alive: Tensor, gs: RankedGaussians, ranks: Tensor, width: int, height: int) -> Tensor:
    """Number of not-yet-stopped pixels in each box, from an integral image of ``alive``. [R] int64"""
    table = torch.zeros(height + 1, width + 1, dtype=torch.int64, device=alive.device)
    table[1:, 1:] = alive.reshape(height, width).to(torch.int64).cumsum(0).cumsum(1)
    flat = table.reshape(-1)
    x0 = gs.corner.index_select(0, ranks) % width
    y0 = torch.div(gs.corner.index_select(0, ranks), width, rounding_mode="floor")
    x1, y1 = x0 + gs.nx.index_select(0, ranks), y0 + gs.ny.index_select(0, ranks)
    stride = width + 1
    return flat[y1 * stride + x1] - flat[y0 * stride + x1] - flat[y1 * stride + x0] + flat[y0 * stride + x0]


def _segments(pixel: Tensor, n_pix: int) -> tuple[Tensor, Tensor]:
    """First index and length of each pixel's run in a pixel-sorted pair list. [M] -> [P] int64, [P] int64"""
    bounds = torch.searchsorted(pixel, torch.arange(n_pix + 1, device=pixel.device, dtype=pixel.dtype))  # [P + 1]
    return bounds[:-1], bounds[1:] - bounds[:-1]


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
    gs = rank_visible(means2d, conics, opacities, depths, radii, width, height)
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
        for ww, wh, members in window_groups(gs.nx[ranks], gs.ny[ranks], _CANDIDATE_CHUNK):
            n_candidates += len(members) * ww * wh
            key, alpha = window_candidates(gs, ranks[members], ww, wh, width, key_dtype)
            keys.append(key)
            alphas.append(alpha)
        if not keys:
            continue
        key, alpha = torch.cat(keys), torch.cat(alphas)
        del keys, alphas
        if batches:  # pairs at pixels that already stopped are dropped before sorting
            idx = torch.nonzero(alive.index_select(0, torch.div(key, n_ranks, rounding_mode="floor"))).squeeze(1)
            key, alpha = key.index_select(0, idx), alpha.index_select(0, idx)
            if len(key) == 0:
                continue

        # 2. Sort by pixel, then front to back (keys are unique).
        key, perm = torch.sort(key, stable=True)  # keys are unique; the stable sort is the faster one here
        alpha = alpha.index_select(0, perm)
        del perm
        pixel = torch.div(key, n_ranks, rounding_mode="floor")  # [M]
        rank = key - pixel * n_ranks  # [M]
        del key

        # 3. Log transmittance behind each pair: carried + per-pixel inclusive cumsum of log(1 - alpha), float64.
        log_keep = torch.log1p(-alpha).to(torch.float64)  # [M]
        after = torch.cumsum(log_keep, 0)  # [M] global inclusive prefix
        seg_start, seg_count = _segments(pixel, n_pix)  # [P], [P]
        # Replace the global prefix in front of each pixel's first pair by the carried log transmittance.
        offset = (after - log_keep).index_select(0, seg_start.clamp(max=max(len(after) - 1, 0))) - log_trans  # [P]
        after = after - offset.index_select(0, pixel)  # [M]

        # 4. gsplat's early stop: a pixel stops before the first pair that would bring T to <= T_MIN. Per pixel the
        #    kept pairs are a prefix, so a pixel stopped iff its last pair was not kept.
        keep = after > math.log(T_MIN)  # [M]
        covered = torch.nonzero(seg_count).squeeze(1)  # [P'] pixels with pairs in this batch
        last = seg_start.index_select(0, covered) + seg_count.index_select(0, covered) - 1  # [P']
        if not bool(keep.all()):
            alive[covered] &= keep.index_select(0, last)
            idx = torch.nonzero(keep).squeeze(1)
            pixel, rank, alpha = pixel.index_select(0, idx), rank.index_select(0, idx), alpha.index_select(0, idx)
            before = (after - log_keep).index_select(0, idx)
            start_before_cut = seg_start
            seg_start, seg_count = _segments(pixel, n_pix)
            covered = torch.nonzero(seg_count).squeeze(1)
            # The last kept pair of a pixel, located in the arrays before the cut (its kept pairs are a prefix).
            last = start_before_cut.index_select(0, covered) + seg_count.index_select(0, covered) - 1
            log_trans[covered] = after.index_select(0, last)
        else:
            log_trans[covered] = after.index_select(0, last)
            before = after - log_keep
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
