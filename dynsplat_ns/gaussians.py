"""The per-Gaussian parameter dict: initialisation from seed points and activations.

Raw (optimised) parameters, leading dimension N::

    means [N, 3]   scales [N, 3] (log)   quats [N, 4] (wxyz, unnormalised)   opacities [N, 1] (logit)
    features_dc [N, 3]   features_rest [N, (sh_degree + 1)² − 1, 3]

Motion models add their own per-Gaussian entries to the same dict so densification keeps them in lock-step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel for ``degree``."""
    return (degree + 1) ** 2


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] → 0th-order SH coefficient."""
    return (rgb - 0.5) / SH_C0


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 4096) -> Tensor:
    """Mean distance of every point to its ``k`` nearest neighbours (pure torch, chunked).

    Args:
        points: [N, 3].
        k: neighbours (excluding the point itself).
        chunk: rows per distance block.

    Returns:
        [N] distances (a small constant where N ≤ k).
    """
    n = points.shape[0]
    if n <= k:
        return torch.full((n,), 0.01, dtype=points.dtype, device=points.device)
    out = []
    for start in range(0, n, chunk):
        d = torch.cdist(points[start : start + chunk], points)  # [B, N]
        vals = d.topk(k + 1, dim=1, largest=False).values[:, 1:]
        out.append(vals.mean(dim=1))
    return torch.cat(out).clamp_min(1e-7)


def random_quats(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniformly random unit quaternions [n, 4] (wxyz)."""
    u, v, w = torch.rand(3, n, generator=generator)
    return torch.stack(
        [
            torch.sqrt(1 - u) * torch.sin(2 * math.pi * v),
            torch.sqrt(1 - u) * torch.cos(2 * math.pi * v),
            torch.sqrt(u) * torch.sin(2 * math.pi * w),
            torch.sqrt(u) * torch.cos(2 * math.pi * w),
        ],
        dim=-1,
    )


def init_gaussian_params(
    means: Tensor,
    colors: Tensor | None,
    sh_degree: int,
    initial_opacity: float = 0.1,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Initial raw parameters from seed points.

    Args:
        means: [N, 3] float seed positions.
        colors: [N, 3] uint8 (0–255) or float (0–1) colours, or None for random colours.
        sh_degree: maximum SH degree (0 means plain colour through a sigmoid).
        initial_opacity: opacity after activation.
        seed: RNG seed for rotations / random colours.

    Returns:
        A dict of raw tensors (not Parameters) with leading dimension N.
    """
    gen = torch.Generator().manual_seed(seed)
    means = means.detach().float().cpu()
    n = means.shape[0]
    scales = torch.log(knn_mean_distance(means))[:, None].repeat(1, 3)
    if colors is None or colors.shape[0] != n:
        rgb = torch.rand(n, 3, generator=gen)
    else:
        rgb = colors.detach().float().cpu()
        if colors.dtype == torch.uint8 or rgb.max() > 1.0:
            rgb = rgb / 255.0
    rgb = rgb.clamp(1e-3, 1 - 1e-3)
    features_dc = rgb_to_sh(rgb) if sh_degree > 0 else torch.logit(rgb)
    return {
        "means": means.clone(),
        "scales": scales,
        "quats": random_quats(n, gen),
        "features_dc": features_dc,
        "features_rest": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
        "opacities": torch.logit(torch.full((n, 1), initial_opacity)),
    }
