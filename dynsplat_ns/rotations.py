"""Rotation and rigid-motion helpers in pure torch: 6D ↔ matrix, matrix → quaternion (wxyz), quaternion product,
se(3) offsets composed onto camera poses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from torch import Tensor

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rot6d_to_matrix(d6: Tensor) -> Tensor:
    """Continuous 6D rotation (Zhou et al. 2019) [..., 6] → rotation matrix [..., 3, 3] (Gram–Schmidt, rows)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def matrix_to_quat(m: Tensor) -> Tensor:
    """Rotation matrix [..., 3, 3] → unit quaternion [..., 4] (wxyz), numerically safe for every rotation."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    q_abs = torch.sqrt(
        torch.stack(
            [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
        ).clamp_min(1e-12)
    )
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    ) / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return F.normalize(q, dim=-1)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of quaternions [..., 4] (wxyz); applies b first, then a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def se3_matrices(tangent: Tensor) -> Tensor:
    """[K, 6] (translation, axis-angle) → [K, 4, 4] rigid transforms; exactly the identity for a zero vector."""
    rt = exp_map_SO3xR3(tangent)  # [K, 3, 4]
    bottom = torch.zeros(rt.shape[0], 1, 4, dtype=rt.dtype, device=rt.device)
    bottom[..., 3] = 1.0
    return torch.cat([rt, bottom], dim=1)


def compose(c2w: Tensor, offsets: Tensor) -> Tensor:
    """``c2w @ exp(offset)`` for each of ``offsets`` [K, 6]: poses [K, 3, 4] moved in the camera's own frame."""
    base = c2w.reshape(3, 4)
    delta = se3_matrices(offsets.to(base.dtype))  # [K, 4, 4]
    rot = base[:, :3] @ delta[:, :3, :3]  # [K, 3, 3]
    trans = (base[:, :3] @ delta[:, :3, 3:4]).squeeze(-1) + base[:, 3]  # [K, 3]
    return torch.cat([rot, trans[..., None]], dim=-1)
