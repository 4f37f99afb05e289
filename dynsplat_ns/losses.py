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
