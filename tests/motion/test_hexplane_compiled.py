"""The compiled CPU HexPlane lookup against the ``F.grid_sample`` path: features and gradients (planes and positions).

float64 agrees to 1e-12, float32 to 1e-5 relative; points outside [-1, 1] and exactly on the border exercise
grid_sample's border clamp (no position gradient there). Skips when the compiled kernels are unavailable.
"""

from __future__ import annotations

import pytest
import torch

import dynsplat_ns.motion.hexplane as hexplane
from dynsplat_ns.motion.hexplane import HexPlaneField


def _field_and_points(dtype):
    torch.manual_seed(0)
    field = HexPlaneField((8, 7, 6, 5), (1, 2), 4).to(dtype)
    with torch.no_grad():
        for plane in field.parameters():
            plane.uniform_(0.2, 1.2)
    xyz = torch.rand(300, 3, dtype=dtype) * 2.4 - 1.2  # some outside [-1, 1]
    xyz[:4] = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.5, -1.5, 0.3]], dtype=dtype)
    return field, xyz.requires_grad_(True)


def _features_and_grads(field, xyz, t):
    out = field(xyz, t)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return out, torch.autograd.grad((out * cot).sum(), [xyz, *field.parameters()])


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_compiled_lookup_matches_grid_sample(kernels, monkeypatch, dtype, tol):
    field, xyz = _field_and_points(dtype)
    calls = []
    usable = hexplane.compiled_hexplane_usable
    monkeypatch.setattr(hexplane, "compiled_hexplane_usable", lambda *a: calls.append(usable(*a)) or calls[-1])
    out_c, grads_c = _features_and_grads(field, xyz, 0.3)
    assert calls == [True], "the compiled lookup should have been used"
    monkeypatch.setattr(hexplane, "compiled_hexplane_usable", lambda *a: False)
    out_t, grads_t = _features_and_grads(field, xyz, 0.3)
    assert out_c.shape == (300, 8)
    torch.testing.assert_close(out_c, out_t, rtol=tol, atol=tol)
    for g_c, g_t in zip(grads_c, grads_t, strict=True):
        assert torch.count_nonzero(g_t) > 0
        scale = g_t.abs().max()
        torch.testing.assert_close(g_c / scale, g_t / scale, rtol=tol, atol=tol)
    assert torch.all(grads_c[0][0, :2] == 0) and torch.all(grads_c[0][3, :2] == 0)  # border: no position gradient


def test_positions_without_grad_and_thread_counts(kernels):
    """Planes-only gradients (positions not differentiated) agree whatever the number of threads."""
    field, _ = _field_and_points(torch.float32)
    xyz = torch.rand(10000, 3) * 2 - 1  # enough points for several threads (at least 2048 each)
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            field.zero_grad()
            field(xyz, 0.7).square().sum().backward()
            results.append([p.grad.clone() for p in field.parameters()])
    finally:
        torch.set_num_threads(threads)
    for g1, g2 in zip(*results, strict=True):  # per-thread partial sums: equal up to float32 summation order
        scale = g1.abs().max()
        torch.testing.assert_close(g1 / scale, g2 / scale, rtol=1e-5, atol=1e-6)
