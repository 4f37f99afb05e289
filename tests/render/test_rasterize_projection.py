"""Projection and SH conventions against gsplat 1.4.0's pure-torch reference implementations (CPU-safe)."""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics
from rasterize_testkit import random_scene

from dynsplat_ns.render.projection import project_gaussians, quat_scale_to_covar
from dynsplat_ns.render.sh import eval_sh, sh_bases


def test_covariance_matches_gsplat():
    gen = torch.Generator().manual_seed(0)
    quats = torch.randn(50, 4, generator=gen, dtype=torch.float64) * 3.0  # unnormalised on purpose
    scales = torch.rand(50, 3, generator=gen, dtype=torch.float64) + 0.01
    covars_ref, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(quat_scale_to_covar(quats, scales), covars_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps2d", [0.3, 0.0])
def test_projection_matches_gsplat_torch_impl(eps2d):
    width, height = 40, 30
    scene = random_scene(n=200, n_cams=3, width=width, height=height, seed=1)
    covars, _ = _quat_scale_to_covar_preci(scene["quats"], scene["scales"], compute_preci=False)
    radii_ref, means2d_ref, depths_ref, conics_ref, comp_ref = _fully_fused_projection(
        scene["means"], covars, scene["viewmats"], scene["Ks"], width, height, eps2d=eps2d, calc_compensations=True
    )
    proj = project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], width, height,
        eps2d=eps2d, calc_compensations=True,
    )
    assert proj.radii.dtype == torch.int32 and proj.radii.shape == (3, 200)
    assert torch.equal(proj.radii, radii_ref.to(torch.int32))
    visible = proj.radii > 0
    culled = ~visible
    assert 100 < visible.sum() < 600 and culled.sum() > 30, "scene should exercise both visible and culled"
    torch.testing.assert_close(proj.depths, depths_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(proj.means2d[visible], means2d_ref[visible], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(proj.conics[visible], conics_ref[visible], rtol=1e-10, atol=1e-12)
    if eps2d > 0:
        torch.testing.assert_close(proj.compensations[visible], comp_ref[visible], rtol=1e-10, atol=1e-12)
    # The 2D covariance is the inverse of the conic.
    a, b, c = proj.covars2d[visible].unbind(-1)
    ca, cb, cc = proj.conics[visible].unbind(-1)
    torch.testing.assert_close(a * ca + b * cb, torch.ones_like(a), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a * cb + b * cc, torch.zeros_like(a), rtol=1e-10, atol=1e-10)


def test_culling_rules():
    """Behind the near plane, beyond the far plane, and off-screen Gaussians all get radius 0."""
    dtype = torch.float64
    means = torch.tensor(
        [[0.0, 0.0, 2.0], [0.0, 0.0, 0.005], [0.0, 0.0, -1.0], [0.0, 0.0, 50.0], [30.0, 0.0, 2.0]], dtype=dtype
    )
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(5, 1)
    scales = torch.full((5, 3), 0.05, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype)[None]
    ks = torch.tensor([[[20.0, 0.0, 10.0], [0.0, 20.0, 10.0], [0.0, 0.0, 1.0]]], dtype=dtype)
    proj = project_gaussians(means, quats, scales, viewmats, ks, 20, 20, near_plane=0.01, far_plane=10.0)
    assert proj.radii[0].tolist()[1:] == [0, 0, 0, 0]
    assert proj.radii[0, 0] > 0
    assert torch.isfinite(proj.means2d).all() and torch.isfinite(proj.conics).all()


def test_projection_gradients_are_finite_for_culled_gaussians():
    dtype = torch.float64
    means = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 2.0]], dtype=dtype, requires_grad=True)  # first: z = 0
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(2, 1)
    scales = torch.full((2, 3), 0.05, dtype=dtype)
    ks = torch.tensor([[[20.0, 0.0, 10.0], [0.0, 20.0, 10.0], [0.0, 0.0, 1.0]]], dtype=dtype)
    proj = project_gaussians(means, quats, scales, torch.eye(4, dtype=dtype)[None], ks, 20, 20)
    (proj.means2d.sum() + proj.conics.sum()).backward()
    assert torch.isfinite(means.grad).all()


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat(degree):
    gen = torch.Generator().manual_seed(degree)
    dirs = torch.randn(64, 3, generator=gen, dtype=torch.float64) * 2.0
    coeffs = torch.randn(64, 16, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        eval_sh(degree, dirs, coeffs), _spherical_harmonics(degree, dirs, coeffs), rtol=1e-12, atol=1e-12
    )


def test_sh_bases_are_orthonormal():
    """Monte-Carlo check on the sphere: E[Y_i Y_j] = delta_ij / (4 pi)."""
    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=gen, dtype=torch.float64), dim=-1)
    bases = sh_bases(3, dirs)  # [M, 16]
    gram = bases.t() @ bases / len(dirs) * (4.0 * torch.pi)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), rtol=0, atol=0.02)
