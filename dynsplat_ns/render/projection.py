"""EWA projection of 3D Gaussians onto pinhole image planes, in pure torch.

Conventions follow gsplat 1.4.0's ``fully_fused_projection`` (non-packed): OpenCV cameras (x right, y down,
z forward), world-to-camera ``viewmats``, pinhole ``Ks``, pixel centres at ``+0.5``, a 2D blur ``eps2d`` added to
the projected covariance, a radius of ``ceil(3 * sqrt(largest eigenvalue))`` and ``radius == 0`` for culled
Gaussians. Everything is differentiable with plain autograd; radii are not.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Projection", "quat_scale_to_covar", "project_gaussians"]


class Projection(NamedTuple):
    """Per-camera screen-space Gaussians.

    Attributes:
        radii: Pixel radius, 0 for culled Gaussians. [C, N] int32.
        means2d: Projected centres in pixels. [C, N, 2]
        depths: Camera-space z of the centres. [C, N]
        conics: Upper triangle (xx, xy, yy) of the inverse blurred 2D covariance. [C, N, 3]
        covars2d: Upper triangle (xx, xy, yy) of the blurred 2D covariance. [C, N, 3]
        compensations: Mip-splatting opacity factor sqrt(det(cov) / det(cov + eps2d I)), or None. [C, N]
    """

    radii: Tensor
    means2d: Tensor
    depths: Tensor
    conics: Tensor
    covars2d: Tensor
    compensations: Tensor | None


def _rotation(quats: Tensor) -> Tensor:
    """Rotation matrices of (unnormalised) wxyz quaternions. [N, 4] -> [N, 3, 3]"""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)  # [N] each
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariance ``R S S^T R^T`` from (unnormalised, wxyz) quaternions and scales.

    Args:
        quats: Rotations as wxyz quaternions, any norm. [N, 4]
        scales: Per-axis standard deviations (already activated). [N, 3]

    Returns:
        Covariance matrices. [N, 3, 3]
    """
    m = _rotation(quats) * scales[:, None, :]  # [N, 3, 3] = R S
    return m @ m.transpose(-1, -2)


def project_gaussians(
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
) -> Projection:
    """Project 3D Gaussians into every camera (EWA splatting with a pinhole Jacobian).

    Args:
        means: Centres in world space. [N, 3]
        quats: wxyz quaternions (normalised here). [N, 4]
        scales: Activated scales. [N, 3]
        viewmats: World-to-camera matrices (OpenCV). [C, 4, 4]
        Ks: Pinhole intrinsics. [C, 3, 3]
        width: Image width in pixels.
        height: Image height in pixels.
        eps2d: Blur added to the diagonal of each 2D covariance.
        near_plane: Gaussians with camera z below this are culled.
        far_plane: Gaussians with camera z above this are culled.
        calc_compensations: Also return the anti-aliasing opacity compensation.

    Returns:
        A :class:`Projection`. Culled entries have radius 0; their other values are finite but meaningless.
    """
    rot = viewmats[:, :3, :3]  # [C, 3, 3]
    trans = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    # Covariance factor M = R(q) diag(s) in camera space (Sigma_cam = Mc Mc^T), as one GEMM per camera.
    factor = _rotation(quats) * scales[:, None, :]  # [N, 3, 3]
    factor_c = torch.einsum("cij,njk->cnik", rot, factor)  # [C, N, 3, 3]

    x, y, z = means_c.unbind(-1)  # [C, N] each
    depth_ok = (z >= near_plane) & (z <= far_plane)  # [C, N]
    # Culled-by-depth Gaussians use z = 1 so nothing divides by ~0 (their gradients are exactly zero anyway).
    zs = torch.where(depth_ok, z, torch.ones_like(z))  # [C, N]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]  # [C, 1]
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)  # [C, N, 2]

    # The Jacobian is evaluated at a centre clamped to 1.3x the field of view (as gsplat/3DGS do), which keeps
    # Gaussians far outside the frustum from exploding into huge footprints.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)  # [C, 1]
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_x_neg), lim_x_pos)  # [C, N]
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_y_neg), lim_y_pos)  # [C, N]
    # J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]; its rows times Mc, elementwise (tiny matmuls are slow).
    rows_x = (fx / zs)[..., None] * factor_c[..., 0, :] - (fx * tx / (zs * zs))[..., None] * factor_c[..., 2, :]
    rows_y = (fy / zs)[..., None] * factor_c[..., 1, :] - (fy * ty / (zs * zs))[..., None] * factor_c[..., 2, :]
    # cov2d = (J Mc)(J Mc)^T, kept as its upper triangle (xx, xy, yy). [C, N] each
    cov_xx, cov_xy, cov_yy = (rows_x * rows_x).sum(-1), (rows_x * rows_y).sum(-1), (rows_y * rows_y).sum(-1)

    a, b, c = cov_xx, cov_xy, cov_yy
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b  # [C, N]
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)  # [C, N, 3]
    covars2d = torch.stack([a, b, c], dim=-1)  # [C, N, 3]
    compensations = None
    if calc_compensations:
        compensations = torch.sqrt(torch.clamp(det_orig / det_safe, min=0.0))  # [C, N]

    with torch.no_grad():
        half_trace = 0.5 * (a + c)
        lam_max = half_trace + torch.sqrt(torch.clamp(half_trace * half_trace - det, min=0.01))
        radius = torch.ceil(3.0 * torch.sqrt(lam_max))  # [C, N]
        mx, my = means2d[..., 0], means2d[..., 1]
        on_screen = (mx + radius > 0) & (mx - radius < width) & (my + radius > 0) & (my - radius < height)
        keep = depth_ok & (det > 0) & on_screen
        radii = torch.where(keep, radius, torch.zeros_like(radius)).to(torch.int32)  # [C, N]

    return Projection(radii, means2d, z, conics, covars2d, compensations)
