"""Depth as a capture ships it, not as the renderer knows it: the errors of LiDAR and monocular depth estimators.

A generated scene's depth is exact (the ray caster's z). A user's is not: DyCheck's iPhone LiDAR depth is metric but
low-resolution, noisy, off by a per-frame scale, wrong by a smooth low-frequency field, and has holes and mixed
(bled) values at depth edges; a monocular estimator's disparity has the same kinds of error, up to scale and shift.
:func:`degrade_depth` applies those errors to an exact depth map, so benchmarks measure priors as users have them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DepthDegradation:
    """The errors :func:`degrade_depth` applies (every one off at 0)."""

    downsample: int = 4
    """Resolution divisor: the depth is averaged over ``k×k`` blocks (surface pixels only) and repeated back, so a
    block across a depth edge holds a value between the two surfaces (bleeding)."""
    scale_error: float = 0.03
    """Standard deviation of one multiplicative scale error per frame (metric depth off by a few %)."""
    lowfreq_error: float = 0.05
    """Standard deviation of a smooth multiplicative error field (a 3×3 grid of factors, bilinear over the frame)."""
    noise: float = 0.01
    """Standard deviation of the per-pixel multiplicative noise (after the downsampling: one value per block)."""
    edge_jump: float = 0.05
    """Relative depth jump between neighbouring blocks that marks a depth edge."""
    edge_holes: float = 0.7
    """Probability that a block at a depth edge is a hole (0); the others keep their bled value."""


#: What DyCheck's iPhone LiDAR depth looks like next to the truth (the defaults).
LIDAR = DepthDegradation()


def degrade_depth(depth: np.ndarray, rng: np.random.Generator, settings: DepthDegradation = LIDAR) -> np.ndarray:
    """An exact depth map with a capture's errors (see :class:`DepthDegradation`).

    Args:
        depth: ``[H, W]`` or ``[H, W, 1]`` depth, 0 where there is no surface.
        rng: Random generator (one per scene; frames draw in order).
        settings: Which errors, how large.

    Returns:
        Float32 depth of the input's shape; 0 where the input has no surface and in the edge holes.
    """
    shape = depth.shape
    z = np.asarray(depth, dtype=np.float64).reshape(shape[0], shape[1])
    height, width = z.shape
    valid = z > 0
    k = max(int(settings.downsample), 1)
    # Lower resolution: the mean of the surface pixels of each k×k block (blocks padded at the border).
    rows, cols = -(-height // k), -(-width // k)
    pad = ((0, rows * k - height), (0, cols * k - width))
    blocks_z = np.pad(z * valid, pad).reshape(rows, k, cols, k)
    blocks_n = np.pad(valid.astype(np.float64), pad).reshape(rows, k, cols, k)
    count = blocks_n.sum(axis=(1, 3))
    low = np.where(count > 0, blocks_z.sum(axis=(1, 3)) / np.maximum(count, 1.0), 0.0)  # [rows, cols]
    # Edge holes: blocks whose neighbours differ by more than the jump (or have no surface) mostly drop out.
    if settings.edge_holes > 0:
        padded = np.pad(low, 1, mode="edge")
        neighbours = np.stack([padded[1 + dy : 1 + dy + rows, 1 + dx : 1 + dx + cols]
                               for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # fmt: skip
        jump = np.where(neighbours > 0, np.abs(neighbours - low) / np.maximum(low, 1e-9), 0.0).max(axis=0)
        edge = (low > 0) & (jump > settings.edge_jump)
        low = np.where(edge & (rng.random(low.shape) < settings.edge_holes), 0.0, low)
    # Multiplicative errors: per-frame scale, smooth field, noise per block.
    factor = 1.0 + settings.scale_error * rng.standard_normal()
    if settings.lowfreq_error > 0:
        factor = factor * _smooth_field(rng, rows, cols, settings.lowfreq_error)
    if settings.noise > 0:
        factor = factor * (1.0 + settings.noise * rng.standard_normal(low.shape))
    low = low * np.maximum(factor, 0.05)
    out = np.repeat(np.repeat(low, k, axis=0), k, axis=1)[:height, :width]
    out = np.where(valid, out, 0.0)  # no depth where there is no surface
    return out.reshape(shape).astype(np.float32)


def _smooth_field(rng: np.random.Generator, rows: int, cols: int, std: float) -> np.ndarray:
    """``1 + std · N(0, 1)`` on a 3×3 grid, bilinearly interpolated to ``[rows, cols]``."""
    grid = 1.0 + std * rng.standard_normal((3, 3))
    ys, xs = np.linspace(0.0, 2.0, rows), np.linspace(0.0, 2.0, cols)
    y0, x0 = np.minimum(ys.astype(int), 1), np.minimum(xs.astype(int), 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = lambda dy, dx: grid[(y0 + dy)[:, None], (x0 + dx)[None, :]]  # noqa: E731
    return (1 - fy) * ((1 - fx) * g(0, 0) + fx * g(0, 1)) + fy * ((1 - fx) * g(1, 0) + fx * g(1, 1))
