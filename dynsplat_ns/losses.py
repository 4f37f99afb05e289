"""Regularisers shared by motion models (grid smoothness, sparsity)."""

from __future__ import annotations

import torch
from torch import Tensor


def plane_tv(plane: Tensor) -> Tensor:
    """Total variation (squared first differences, both axes) of a feature plane [1, F, H, W]."""
    h = (plane[..., 1:, :] - plane[..., :-1, :]).square().mean() if plane.shape[-2] > 1 else plane.new_zeros(())
    w = (plane[..., :, 1:] - plane[..., :, :-1]).square().mean() if plane.shape[-1] > 1 else plane.new_zeros(())
    return h + w


def time_smoothness(plane: Tensor) -> Tensor:
    """Squared second difference along the time axis (dim −2) of a space-time plane [1, F, T, X]."""
    if plane.shape[-2] < 3:
        return plane.new_zeros(())
    d1 = plane[..., 1:, :] - plane[..., :-1, :]
    d2 = d1[..., 1:, :] - d1[..., :-1, :]
    return d2.square().mean()


def l1_to_one(plane: Tensor) -> Tensor:
    """Mean |1 − plane|: keeps multiplicative time planes near 'no change'."""
    return (1.0 - plane).abs().mean()


def finite_difference_smoothness(x: Tensor, dim: int = 1) -> Tensor:
    """Mean squared second difference of ``x`` along ``dim`` (temporal smoothness of per-frame parameters)."""
    if x.shape[dim] < 3:
        return x.new_zeros(())
    d1 = torch.diff(x, dim=dim)
    return torch.diff(d1, dim=dim).square().mean()


def knn_isometry(canonical: Tensor, moved: Tensor, num_samples: int = 1024, k: int = 8) -> Tensor:
    """Mean |‖xᵢ−xⱼ‖ₜ − ‖xᵢ−xⱼ‖_canonical| over k nearest canonical neighbours of a random sample of Gaussians.

    Neighbours are found among the sample each call, so the loss needs no cached index that densification would
    invalidate.

    Args:
        canonical: [N, 3] canonical means.
        moved: [N, 3] means at time t.
        num_samples: Gaussians sampled per call.
        k: neighbours per sampled Gaussian.
    """
    n = canonical.shape[0]
    if n < 2:
        return canonical.new_zeros(())
    idx = torch.randperm(n, device=canonical.device)[: min(num_samples, n)]
    c, m = canonical[idx], moved[idx]
    k = min(k, c.shape[0] - 1)
    with torch.no_grad():
        nbr = torch.cdist(c, c).topk(k + 1, dim=1, largest=False).indices[:, 1:]  # [S, k]
    d_canon = (c[:, None] - c[nbr]).norm(dim=-1)
    d_moved = (m[:, None] - m[nbr]).norm(dim=-1)
    return (d_moved - d_canon).abs().mean()
