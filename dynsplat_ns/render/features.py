"""Per-camera features to composite: colours (or SH -> RGB), the depth channel of each render mode, backgrounds."""

from __future__ import annotations

import torch
from torch import Tensor

from dynsplat_ns.render.sh import sh_to_rgb

__all__ = ["RENDER_MODES", "camera_centers", "gaussian_colors", "composite_features", "finish_render"]

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def camera_centers(viewmats: Tensor) -> Tensor:
    """World-space camera centres of world-to-camera matrices. [C, 4, 4] -> [C, 3]"""
    return torch.linalg.inv(viewmats)[:, :3, 3]


def gaussian_colors(means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: int | None) -> Tensor:
    """Colours per camera and Gaussian.

    Args:
        means: Gaussian centres. [N, 3]
        colors: Post-activation features [N, D] / [C, N, D], or SH coefficients [N, K, 3] / [C, N, K, 3].
        viewmats: World-to-camera matrices. [C, 4, 4]
        sh_degree: None for plain features, else the SH degree to evaluate (view dir = mean - camera centre).

    Returns:
        Features. [C, N, D] (D = 3 for SH); a broadcast view when no per-camera work was needed.
    """
    n_cams = viewmats.shape[0]
    if sh_degree is None:
        return colors if colors.dim() == 3 else colors.expand(n_cams, -1, -1)
    dirs = means[None, :, :] - camera_centers(viewmats)[:, None, :]  # [C, N, 3]
    coeffs = colors if colors.dim() == 4 else colors.expand(n_cams, -1, -1, -1)  # [C, N, K, 3]
    return sh_to_rgb(sh_degree, dirs, coeffs)  # [C, N, 3]


def composite_features(
    colors: Tensor | None, depths: Tensor, backgrounds: Tensor | None, render_mode: str
) -> tuple[Tensor, Tensor | None]:
    """Channels that get alpha-composited for a render mode (depth is appended last, as gsplat does).

    Args:
        colors: Per-camera colours (unused, may be None, for the depth-only modes). [C, N, D]
        depths: Camera-space depths. [C, N]
        backgrounds: Background colours or None. [C, D]
        render_mode: One of :data:`RENDER_MODES`.

    Returns:
        ``(features [C, N, D'], backgrounds [C, D'] or None)`` where D' is D, 1 or D + 1. Depth channels get a zero
        background.
    """
    if render_mode == "RGB":
        return colors, backgrounds
    if render_mode in ("D", "ED"):
        bg = None if backgrounds is None else backgrounds.new_zeros(backgrounds.shape[0], 1)
        return depths[..., None], bg
    feats = torch.cat([colors.expand(depths.shape[0], -1, -1), depths[..., None]], dim=-1)  # [C, N, D + 1]
    if backgrounds is not None:
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(backgrounds.shape[0], 1)], dim=-1)
    return feats, backgrounds


def finish_render(render: Tensor, alpha: Tensor, render_mode: str) -> Tensor:
    """Turn the accumulated depth channel into expected depth for the "ED" modes.

    Args:
        render: Composited features, depth last. [C, H, W, D']
        alpha: Accumulated opacity. [C, H, W, 1]
        render_mode: One of :data:`RENDER_MODES`.

    Returns:
        The render with ``depth / max(alpha, 1e-10)`` in its last channel for "ED"/"RGB+ED", else ``render``.
    """
    if render_mode not in ("ED", "RGB+ED"):
        return render
    return torch.cat([render[..., :-1], render[..., -1:] / alpha.clamp(min=1e-10)], dim=-1)
