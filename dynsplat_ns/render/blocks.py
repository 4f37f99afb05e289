"""Front-to-back lists of the Gaussians that may touch each small block of pixels.

The images are cut into ``block x block`` pixel blocks (``block`` divides gsplat's 16 px tile, so every block lies
entirely inside or entirely outside a Gaussian's tile range). Each visible Gaussian gets a pixel box: its gsplat tile
range intersected with the bounding box of its ellipse ``alpha >= 1/255`` (a pure speed-up: pixels outside that
ellipse fail the threshold anyway). It is listed in every block its box overlaps; each block's list is ordered front
to back (depth ties by Gaussian index, as gsplat's stable sort). Nothing here is differentiable.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dynsplat_ns.render.rules import ALPHA_MIN, TILE_SIZE

__all__ = ["BlockLists", "block_lists", "support_boxes"]


class BlockLists(NamedTuple):
    """The Gaussians listed in each pixel block of every camera.

    Blocks are numbered ``cam * blocks_y * blocks_x + by * blocks_x + bx``; Gaussians ``cam * N + g``.

    Attributes:
        gauss: Flat Gaussian index of each (block, Gaussian) intersection, grouped by block, front to back. [I]
        start: First intersection of each block. [C * blocks_y * blocks_x] int64
        count: Number of intersections of each block. [C * blocks_y * blocks_x] int64
        block: Block side in pixels.
        blocks_x: Blocks per image row.
        blocks_y: Blocks per image column.
    """

    gauss: Tensor
    start: Tensor
    count: Tensor
    block: int
    blocks_x: int
    blocks_y: int


def support_boxes(
    means2d: Tensor, conics: Tensor, opacities: Tensor, radii: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel boxes ``[x0, x1) x [y0, y1)`` outside which each Gaussian's ``alpha`` is below 1/255.

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


@torch.no_grad()
def block_lists(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    block: int,
) -> BlockLists:
    """List every visible Gaussian in the blocks its support box overlaps, front to back per block.

    Args:
        means2d: Projected centres. [C, N, 2]
        conics: Inverse 2D covariances (xx, xy, yy). [C, N, 3]
        opacities: Per-camera opacities. [C, N]
        depths: Camera-space depths (sort key). [C, N]
        radii: Pixel radii, 0 = culled. [C, N]
        width: Image width.
        height: Image height.
        block: Block side in pixels (divides 16; :attr:`BlockOptions.block_size`).

    Returns:
        The :class:`BlockLists`.
    """
    if TILE_SIZE % block:
        raise ValueError(f"block size {block} must divide gsplat's tile size {TILE_SIZE}")
    n_cams, n_gauss = depths.shape
    device = depths.device
    blocks_x, blocks_y = -(-width // block), -(-height // block)
    n_blocks = n_cams * blocks_x * blocks_y

    flat_depth = depths.reshape(-1)
    vis = torch.nonzero((radii.reshape(-1) > 0) & (opacities.reshape(-1) >= ALPHA_MIN)).squeeze(1)  # [V]
    vis = vis[torch.argsort(flat_depth[vis], stable=True)]  # front to back, ties by index
    x0, x1, y0, y1 = support_boxes(
        means2d.reshape(-1, 2)[vis],
        conics.reshape(-1, 3)[vis],
        opacities.reshape(-1)[vis],
        radii.reshape(-1)[vis],
        width,
        height,
    )
    bx0, by0 = torch.div(x0, block, rounding_mode="floor"), torch.div(y0, block, rounding_mode="floor")
    nbx = torch.where(x1 > x0, torch.div(x1 + block - 1, block, rounding_mode="floor") - bx0, 0)  # [V]
    nby = torch.where(y1 > y0, torch.div(y1 + block - 1, block, rounding_mode="floor") - by0, 0)  # [V]
    per_gauss = nbx * nby  # [V] blocks overlapped
    n_inter = int(per_gauss.sum()) if len(per_gauss) else 0

    # Expand each Gaussian into its blocks (generated front to back), then a stable sort by block keeps that order.
    owner = torch.repeat_interleave(torch.arange(len(vis), device=device), per_gauss)  # [I]
    first = torch.cumsum(per_gauss, 0) - per_gauss  # [V]
    local = torch.arange(n_inter, device=device) - first.index_select(0, owner)  # [I]
    row_len = nbx.index_select(0, owner)
    ly = torch.div(local, row_len.clamp(min=1), rounding_mode="floor")
    lx = local - ly * row_len
    cam = torch.div(vis.index_select(0, owner), n_gauss, rounding_mode="floor")
    block_id = (cam * blocks_y + by0.index_select(0, owner) + ly) * blocks_x + bx0.index_select(0, owner) + lx
    key_dtype = torch.int32 if n_blocks < 2**31 else torch.int64
    _, perm = torch.sort(block_id.to(key_dtype), stable=True)
    gauss = vis.index_select(0, owner.index_select(0, perm))  # [I]
    count = torch.bincount(block_id, minlength=n_blocks)  # [B]
    start = torch.cumsum(count, 0) - count
    return BlockLists(gauss, start, count, block, blocks_x, blocks_y)
