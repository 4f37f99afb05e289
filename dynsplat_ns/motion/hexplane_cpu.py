"""Compiled CPU HexPlane feature lookup (``dynsplat_ns/kernels/csrc/hexplane_kernels.cpp``).

:func:`hexplane_features_compiled` computes what :meth:`dynsplat_ns.motion.hexplane.HexPlaneField.forward` computes
with ``F.grid_sample`` (bilinear, border padding, align_corners=True; per level the product of the six plane samples,
levels concatenated) in one fused loop per point, and its backward to the planes and the coordinates; CPU
``grid_sample``'s backward is the largest part of a 4DGS training step otherwise. It uses the same lazily built
extension and opt-out (``DYNSPLAT_CPU_KERNELS=0``) as the compiled rasterizer (:mod:`dynsplat_ns.kernels.cpu`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynsplat_ns.kernels.cpu import load_cpu_kernels

__all__ = ["compiled_hexplane_usable", "hexplane_features_compiled"]


def compiled_hexplane_usable(coords: Tensor, planes: Sequence[Tensor]) -> bool:
    """Whether the compiled lookup applies: float32/float64 CPU tensors of one dtype and the kernels available.

    Args:
        coords: Sample positions. [N, 4]
        planes: The planes of every level, six per level, each [1, F, H, W].
    """
    if coords.device.type != "cpu" or coords.dtype not in (torch.float32, torch.float64):
        return False
    if any(p.device.type != "cpu" or p.dtype != coords.dtype for p in planes):
        return False
    return load_cpu_kernels() is not None


class _HexPlaneLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coords: Tensor, *planes: Tensor) -> Tensor:
        ext = load_cpu_kernels()
        coords_c = coords.detach().contiguous()
        channel_last = [p.detach()[0].permute(1, 2, 0).contiguous() for p in planes]  # [H, W, F]
        ctx.save_for_backward(coords_c, *channel_last)
        return ext.hexplane_forward(coords_c, channel_last)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        ext = load_cpu_kernels()
        coords, *channel_last = ctx.saved_tensors
        want_coords = ctx.needs_input_grad[0]
        *grad_planes, grad_coords = ext.hexplane_backward(
            coords, channel_last, grad_out.to(coords.dtype).contiguous(), want_coords
        )
        needs = ctx.needs_input_grad[1:]
        grads = [g.permute(2, 0, 1)[None] if need else None for g, need in zip(grad_planes, needs, strict=True)]
        return (grad_coords if want_coords else None, *grads)


def hexplane_features_compiled(coords: Tensor, planes: Sequence[Tensor]) -> Tensor:
    """HexPlane features with the compiled kernels (check :func:`compiled_hexplane_usable` first).

    Args:
        coords: Positions and time, each in [-1, 1]. [N, 4]
        planes: Six planes per level in the order of :data:`dynsplat_ns.motion.hexplane.PLANE_AXES`, each
            [1, F, H, W] with W along the pair's first axis.

    Returns:
        Per level the product of the six bilinear samples, levels concatenated. [N, F * levels]
    """
    return _HexPlaneLookup.apply(coords, *planes)
