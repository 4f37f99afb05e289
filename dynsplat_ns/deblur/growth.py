"""Gaussians grown by an isotropic 3D variance, their energy in a view conserved (defocus, the evaluation filter).

Adding an isotropic 3D variance ``s²`` to a Gaussian ``R S² Rᵀ`` gives ``R (S² + s² I) Rᵀ``, i.e.
``scales' = sqrt(scales² + s²)`` exactly; its projection adds ``s² J Jᵀ`` to the 2D covariance (J: the pinhole Jacobian
at the centre), and the opacity is scaled by ``sqrt(det Σ / det(Σ + s² J Jᵀ))`` so the footprint's energy is conserved
(as gsplat's antialiased mode does for ``eps2d``). It changes the rasterizer's *inputs*, so it works unchanged on every
backend (our CPU ``rasterize()`` and gsplat's CUDA ``rasterization``). A zero variance is exactly the identity (values
and gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dynsplat_ns.render.projection import project_gaussians

#: Gaussians closer than this (camera z) are culled by the rasterizer; their growth uses depth 1 instead.
NEAR = 0.01


def grow_in_view(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmat: Tensor, K: Tensor, width: int,
    height: int, var3d: Tensor | Callable[[Tensor], Tensor], eps2d: float = 0.3,
) -> tuple[Tensor, Tensor]:
    """:func:`grow_gaussians` for one camera (world-to-camera [4, 4], intrinsics [3, 3]): projects the Gaussians
    (log-``scales`` [N, 3], activated ``opacities`` [N]) and grows them by ``var3d`` [N], or by ``var3d(depths)`` for
    a variance that depends on each Gaussian's camera depth z [N] (negative behind the camera)."""
    viewmat, K = viewmat.reshape(1, 4, 4), K.reshape(1, 3, 3)
    proj = project_gaussians(means, quats, torch.exp(scales), viewmat, K, width, height, eps2d=eps2d)
    z = proj.depths[0]
    if callable(var3d):
        var3d = var3d(z)
    zs = torch.where(z > NEAR, z, torch.ones_like(z))
    return grow_gaussians(means, scales, opacities, viewmat, K, var3d, proj.covars2d[0], zs)


def grow_gaussians(
    means: Tensor, scales: Tensor, opacities: Tensor, viewmat: Tensor, K: Tensor, var3d: Tensor, covars2d: Tensor,
    zs: Tensor,
) -> tuple[Tensor, Tensor]:
    """Gaussians grown by an isotropic 3D variance, their energy in one view conserved.

    Args:
        means: centres [N, 3].
        scales: log-scales [N, 3].
        opacities: activated opacities [N].
        viewmat: world-to-camera [1, 4, 4].
        K: intrinsics [1, 3, 3].
        var3d: added variance [N] (world units²).
        covars2d: the Gaussians' projected covariances [N, 3] (a, b, c; including the rasterizer's eps2d).
        zs: camera depths [N] (positive).

    Returns:
        ``(scales' [N, 3], opacities' [N])``, activated; exactly ``(exp(scales), opacities)`` (values and gradients)
        where ``var3d`` is 0.
    """
    new_scales = torch.exp(grown_log_scales(scales, var3d[:, None]))
    # The projected added covariance s² J Jᵀ (J: pinhole Jacobian at the centre), and the energy compensation.
    fx, fy = K[0, 0, 0], K[0, 1, 1]
    rot, trans = viewmat[0, :3, :3], viewmat[0, :3, 3]
    x, y, _ = (means @ rot.T + trans).unbind(-1)
    iz2 = 1.0 / (zs * zs)
    dxx = var3d * fx * fx * iz2 * (1.0 + x * x * iz2)
    dyy = var3d * fy * fy * iz2 * (1.0 + y * y * iz2)
    dxy = var3d * fx * fy * x * y * iz2 * iz2
    a, b, c = covars2d.unbind(-1)  # includes eps2d
    det = (a * c - b * b).clamp(min=1e-10)
    extra = a * dyy + c * dxx - 2.0 * b * dxy + (dxx * dyy - dxy * dxy)
    compensation = torch.rsqrt(1.0 + extra / det)  # extra >= 0 (a PSD term)
    return new_scales, opacities * compensation


def bake_filter(params: dict[str, Tensor], var3d: Tensor) -> dict[str, Tensor]:
    """Raw Gaussian parameters (log-``scales`` [N, 3], ``opacities`` logits [N, 1]) grown by the variance ``var3d`` [N]
    for a view-independent file (PLY export): scales ``sqrt(scale² + var)``, opacity scaled by the growth of the
    footprint of the two largest axes (a surfel seen face-on), since a file cannot hold the per-view compensation."""
    var = var3d[:, None]
    scales = grown_log_scales(params["scales"], var)
    top2 = torch.topk(params["scales"], 2, dim=-1).values
    ratio = torch.exp((top2 - grown_log_scales(top2, var)).sum(-1, keepdim=True))  # [N, 1] footprint area ratio
    opacity = (torch.sigmoid(params["opacities"]) * ratio).clamp(1e-6, 1.0 - 1e-6)
    return {**params, "scales": scales, "opacities": torch.logit(opacity)}


def grown_log_scales(log_scales: Tensor, var: Tensor) -> Tensor:
    """``log sqrt(scale² + var)`` computed in log space: exactly ``log_scales`` (value and gradient) where ``var`` is
    0 (``var`` broadcasts against ``log_scales``)."""
    return log_scales + 0.5 * torch.log1p(var * torch.exp(-2.0 * log_scales))
