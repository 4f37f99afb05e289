"""Rotation helpers against nerfstudio's (pure torch) quaternion → matrix conversion."""

from __future__ import annotations

import torch
from nerfstudio.models.splatfacto import quat_to_rotmat

from dynsplat_ns.rotations import IDENTITY_6D, matrix_to_quat, quat_multiply, rot6d_to_matrix


def _random_quats(n: int) -> torch.Tensor:
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return q / q.norm(dim=-1, keepdim=True)


def test_identity_6d_is_identity_matrix():
    assert torch.equal(rot6d_to_matrix(torch.tensor(IDENTITY_6D)), torch.eye(3))


def test_rot6d_gives_rotations():
    m = rot6d_to_matrix(torch.randn(100, 6, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    assert torch.allclose(m @ m.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(m), torch.ones(100, dtype=torch.float64))


def test_matrix_to_quat_round_trip_including_near_180_degrees():
    q = _random_quats(500)
    q[:5] = torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1e-4, 1, 0, 0], [1, 0, 0, 0]], dtype=q.dtype)
    q = q / q.norm(dim=-1, keepdim=True)
    back = matrix_to_quat(quat_to_rotmat(q))
    sign = torch.sign((back * q).sum(-1, keepdim=True))
    assert torch.allclose(back * sign, q, atol=1e-6)


def test_quat_multiply_matches_matrix_product():
    a, b = _random_quats(50), _random_quats(50).flip(0)
    assert torch.allclose(quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b), atol=1e-12)
