"""The EWA projection of :mod:`dynsplat_ns.render.projection` as compiled CPU kernels with an explicit backward.

:func:`project_compiled` returns what :func:`dynsplat_ns.render.projection.project_gaussians` returns (same formulas,
same culling, same gradients; ``covars2d`` is not computed) from one fused C++ loop per Gaussian over the cameras
(``csrc/projection_kernels.cpp``), and its autograd function differentiates means, quats, scales and viewmats (the
intrinsics get no gradient: with ``Ks.requires_grad`` the compiled backend projects in torch instead). Used by the
compiled CPU backend only; the torch projection stays the reference it is tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynsplat_ns.kernels.cpu import load_cpu_kernels

__all__ = ["CompiledProjection", "project_compiled"]


class CompiledProjection(NamedTuple):
    """Per-camera screen-space Gaussians (the fields of :class:`dynsplat_ns.render.projection.Projection` that the
    compositor and ``meta`` use).

    Attributes:
        radii: Pixel radius, 0 for culled Gaussians. [C, N] int32.
        means2d: Projected centres in pixels. [C, N, 2]
        depths: Camera-space z of the centres. [C, N]
        conics: Upper triangle (xx, xy, yy) of the inverse blurred 2D covariance. [C, N, 3]
        compensations: Mip-splatting opacity factor, or None. [C, N]
    """

    radii: Tensor
    means2d: Tensor
    depths: Tensor
    conics: Tensor
    compensations: Tensor | None


def _kernels():
    module = load_cpu_kernels()
    if module is None:
        raise RuntimeError("project_compiled needs the compiled CPU kernels, which are unavailable")
    return module


class _ProjectionFunction(torch.autograd.Function):
    """(means, quats, scales, viewmats) -> (radii, means2d, depths, conics, compensations), in C++."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane, calc_comp):
        inputs = [t.detach().contiguous() for t in (means, quats, scales, viewmats, Ks)]
        config = (width, height, float(eps2d), float(near_plane), float(far_plane))
        radii, means2d, depths, conics, comps = _kernels().project_forward(*inputs, *config, bool(calc_comp))
        ctx.save_for_backward(*inputs)
        ctx.config = config
        ctx.calc_comp = bool(calc_comp)
        ctx.mark_non_differentiable(radii)
        return radii, means2d, depths, conics, comps

    @staticmethod
    @once_differentiable
    def backward(ctx, _v_radii, v_means2d, v_depths, v_conics, v_comps):
        inputs = ctx.saved_tensors
        dtype = inputs[0].dtype
        want_view = bool(ctx.needs_input_grad[3])
        grads = [g.to(dtype).contiguous() for g in (v_means2d, v_depths, v_conics)]
        v_comps = v_comps.to(dtype).contiguous() if ctx.calc_comp else inputs[0].new_empty(0)
        v_means, v_quats, v_scales, v_view = _kernels().project_backward(
            *inputs, *ctx.config, *grads, v_comps, want_view
        )
        needs = ctx.needs_input_grad
        return (
            v_means if needs[0] else None,
            v_quats if needs[1] else None,
            v_scales if needs[2] else None,
            v_view if want_view else None,
            None, None, None, None, None, None, None,
        )


def project_compiled(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    calc_compensations: bool = False,
) -> CompiledProjection:
    """Project 3D Gaussians into every camera with the compiled kernels (arguments of
    :func:`dynsplat_ns.render.projection.project_gaussians`; float32/float64 CPU tensors of one dtype).

    Returns:
        A :class:`CompiledProjection`; ``means2d``, ``depths``, ``conics`` and ``compensations`` carry gradients to
        means, quats, scales and viewmats (not to Ks).

    Raises:
        RuntimeError: when the compiled kernels are unavailable.
    """
    radii, means2d, depths, conics, comps = _ProjectionFunction.apply(
        means, quats, scales, viewmats, Ks, int(width), int(height), eps2d, near_plane, far_plane, calc_compensations
    )
    return CompiledProjection(radii, means2d, depths, conics, comps if calc_compensations else None)
