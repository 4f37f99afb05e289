"""The compiled CPU backend (``backend="cpp"``) against the torch backend and the dense reference.

Tolerances: float64 renders and gradients agree to 1e-9 (the math is the same, only the summation order differs);
float32 to 1e-4 (relative to the largest reference gradient), like the torch backend's own float32 test. The tests
need the compiled kernels: the first one to run builds them (about a minute, cached per user); without a C++
compiler they skip with the reason, except the fallback tests, which need none.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from rasterize_testkit import GRAD_KEYS, backend_args, random_scene, with_grads

from dynsplat_ns.kernels import cpu as cpu_kernels
from dynsplat_ns.render import RENDER_MODES, rasterize
from dynsplat_ns.render.compiled_backend import composite_compiled, rasterize_compiled
from dynsplat_ns.render.dense_reference import dense_rasterize
from dynsplat_ns.render.projection import project_gaussians


def _grads(render, alpha, scene, cot_render, cot_alpha):
    loss = (render * cot_render).sum() + (alpha * cot_alpha).sum()
    return torch.autograd.grad(loss, [scene[k] for k in GRAD_KEYS], allow_unused=True)


def _run(scene, render_mode="RGB", **kwargs):
    leaves = with_grads(scene)
    if kwargs.pop("dense", False):
        tensors, settings = backend_args(leaves, render_mode=render_mode)
        render, alpha = dense_rasterize(**tensors, settings=settings)
        return render, alpha, leaves, None
    render, alpha, meta = rasterize(**leaves, render_mode=render_mode, **kwargs)
    return render, alpha, leaves, meta


def _compare(scene, render_mode="RGB", rtol=1e-9, atol=1e-9, grad_scale=False, block=None, **kwargs):
    """Compiled vs torch backend vs dense reference: renders, alphas and the gradients of every input."""
    if block is None:
        runs = {"cpp": _run(scene, render_mode, backend="cpp", **kwargs)}
    else:
        leaves = with_grads(scene)
        tensors, settings = backend_args(leaves, render_mode=render_mode, compiled_block=block, **kwargs)
        render, alpha, meta = rasterize_compiled(**tensors, settings=settings)
        runs = {"cpp": (render, alpha, leaves, meta)}
    runs["torch"] = _run(scene, render_mode, backend="torch", **kwargs)
    if kwargs.get("rasterize_mode", "classic") == "classic":
        runs["dense"] = _run(scene, render_mode, dense=True)
    render_c, alpha_c, leaves_c, meta_c = runs["cpp"]
    assert meta_c["backend"] == "cpp"
    gen = torch.Generator().manual_seed(7)
    cot_r = torch.randn(render_c.shape, generator=gen, dtype=render_c.dtype)
    cot_a = torch.randn(alpha_c.shape, generator=gen, dtype=alpha_c.dtype)
    grads_c = _grads(render_c, alpha_c, leaves_c, cot_r, cot_a)
    for name, (render, alpha, leaves, _) in runs.items():
        if name == "cpp":
            continue
        torch.testing.assert_close(render_c, render, rtol=rtol, atol=atol, msg=f"render vs {name}")
        torch.testing.assert_close(alpha_c, alpha, rtol=rtol, atol=atol, msg=f"alpha vs {name}")
        for key, g_c, g_o in zip(GRAD_KEYS, grads_c, _grads(render, alpha, leaves, cot_r, cot_a), strict=True):
            if g_o is None or torch.count_nonzero(g_o) == 0:
                assert g_c is None or torch.count_nonzero(g_c) == 0, f"{key} vs {name}"
                continue
            scale = g_o.abs().max().clamp(min=1.0) if grad_scale else 1.0
            torch.testing.assert_close(g_c / scale, g_o / scale, rtol=rtol, atol=atol, msg=f"grad {key} vs {name}")
    return runs


@pytest.mark.parametrize("render_mode", RENDER_MODES)
@pytest.mark.parametrize("colors", ["rgb", "sh3-per-camera", "d5"])
def test_matches_torch_and_dense_fp64(kernels, render_mode, colors):
    config = {"rgb": dict(channels=3), "sh3-per-camera": dict(sh_degree=3, per_camera_colors=True)}
    config["d5"] = dict(channels=5)
    scene = random_scene(n=40, n_cams=3, width=24, height=20, seed=3, **config[colors])
    runs = _compare(scene, render_mode)
    assert runs["dense"][1].max() > 0.5, "scene should be visibly covered"


def test_matches_torch_and_dense_fp32_with_absgrad(kernels):
    scene64 = random_scene(n=60, n_cams=3, width=32, height=24, sh_degree=2, seed=11)
    scene = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in scene64.items()}
    runs = _compare(scene, "RGB+ED", rtol=1e-4, atol=1e-4, grad_scale=True, absgrad=True)
    assert runs["cpp"][0].dtype == torch.float32


def test_meta_means2d_grad_and_absgrad_match_torch(kernels):
    """DefaultStrategy reads meta["means2d"].grad / .absgrad: both must be the torch backend's."""
    scene = random_scene(n=40, n_cams=2, width=24, height=20, seed=1)
    out = {}
    for backend in ("cpp", "torch"):
        leaves = with_grads(scene)
        render, alpha, meta = rasterize(**leaves, render_mode="RGB+D", absgrad=True, backend=backend)
        meta["means2d"].retain_grad()
        gen = torch.Generator().manual_seed(0)
        cot_r = torch.randn(render.shape, generator=gen, dtype=render.dtype)
        ((render * cot_r).sum() + alpha.sum()).backward()
        out[backend] = meta
    meta_c, meta_t = out["cpp"], out["torch"]
    assert set(meta_c) == set(meta_t) and meta_c["backend"] == "cpp"
    torch.testing.assert_close(meta_c["radii"], meta_t["radii"], rtol=0, atol=0)
    for key in ("depths", "conics", "opacities"):  # the compiled projection: same formulas, other rounding
        torch.testing.assert_close(meta_c[key], meta_t[key], rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(meta_t["means2d"].absgrad) > 0
    torch.testing.assert_close(meta_c["means2d"].grad, meta_t["means2d"].grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(meta_c["means2d"].absgrad, meta_t["means2d"].absgrad, rtol=1e-9, atol=1e-12)


def test_antialiased_mode_matches_torch(kernels):
    scene = random_scene(n=40, n_cams=2, width=24, height=20, sh_degree=1, seed=4)
    _compare(scene, "RGB", rasterize_mode="antialiased")


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16])
def test_crowded_scene_early_stop_every_block_size(kernels, block):
    """Hundreds of opaque, overlapping Gaussians: most pixels stop early and alpha saturates at 0.999 near the
    centres of the fully opaque ones; every block size gives the dense reference's renders and gradients."""
    scene = random_scene(n=300, n_cams=1, width=20, height=12, seed=5)
    scene["opacities"] = torch.full_like(scene["opacities"], 0.97)
    scene["opacities"][::3] = 1.0
    scene["scales"] = scene["scales"] * 2.5
    runs = _compare(scene, "RGB+D", block=block)
    assert (runs["dense"][1] > 1 - 1e-3).sum() > 150, "expected most pixels to stop early"


def _two_walls_scene(dtype=torch.float64):
    gen = torch.Generator().manual_seed(3)
    n_small, width, height, focal = 200, 24, 20, 20.0
    depth = torch.cat([torch.tensor([1.0, 1.1], dtype=dtype), torch.rand(n_small, generator=gen, dtype=dtype) + 3.0])
    xy = (torch.rand(n_small + 2, 2, generator=gen, dtype=dtype) - 0.5) * depth[:, None] * 1.1
    xy[:2] = 0.0
    scales = torch.rand(n_small + 2, 3, generator=gen, dtype=dtype) * 0.05 + 0.05
    scales[:2] = 50.0  # walls: alpha 0.999 (clamped) over the whole image
    return {
        "means": torch.cat([xy, depth[:, None]], -1),
        "quats": torch.randn(n_small + 2, 4, generator=gen, dtype=dtype),
        "scales": scales,
        "opacities": torch.cat([torch.ones(2, dtype=dtype), torch.full((n_small,), 0.5, dtype=dtype)]),
        "colors": torch.rand(n_small + 2, 3, generator=gen, dtype=dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "Ks": torch.tensor([[[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]], dtype=dtype),
        "width": width,
        "height": height,
        "backgrounds": torch.rand(1, 3, generator=gen, dtype=dtype),
    }


def test_opaque_wall_stops_every_pixel_and_clamps_alpha(kernels):
    """The first wall composites with alpha clamped to 0.999 (no gradient through the clamp), the second would take
    T to 1e-6 <= 1e-4, so every pixel stops there and nothing behind is composited."""
    runs = _compare(_two_walls_scene(), "RGB+D")
    alpha = runs["cpp"][1]
    torch.testing.assert_close(alpha, torch.full_like(alpha, 1 - 1e-3))
    scene32 = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in _two_walls_scene().items()}
    runs32 = _compare(scene32, "RGB+D", rtol=1e-4, atol=1e-4, grad_scale=True)
    torch.testing.assert_close(runs32["cpp"][1], torch.full_like(runs32["cpp"][1], 1 - 1e-3))


def test_saturated_alpha_clamp(kernels):
    """Opaque Gaussians centred on pixel centres: alpha = min(0.999, o exp(-sigma)) is clamped there."""
    dtype = torch.float64
    gen = torch.Generator().manual_seed(4)
    n, width, height, focal = 8, 16, 12, 14.0
    pix_x = torch.randint(2, width - 2, (n,), generator=gen)
    pix = torch.stack([pix_x, torch.randint(2, height - 2, (n,), generator=gen)], -1)
    depth = torch.linspace(2.0, 3.4, n, dtype=dtype)
    xy = (pix.to(dtype) + 0.5 - torch.tensor([width / 2, height / 2], dtype=dtype)) * depth[:, None] / focal
    scene = {
        "means": torch.cat([xy, depth[:, None]], -1),
        "quats": torch.randn(n, 4, generator=gen, dtype=dtype),
        "scales": torch.rand(n, 3, generator=gen, dtype=dtype) * 0.1 + 0.15,
        "opacities": torch.tensor([1.0, 0.9995] * (n // 2), dtype=dtype),
        "colors": torch.rand(n, 3, generator=gen, dtype=dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "Ks": torch.tensor([[[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]], dtype=dtype),
        "width": width,
        "height": height,
        "backgrounds": torch.rand(1, 3, generator=gen, dtype=dtype),
    }
    runs = _compare(scene, "RGB")
    assert (runs["dense"][1] >= 0.999 - 1e-12).sum() >= n // 2, "the 0.999 clamp should be active"


@pytest.mark.parametrize("case", ["no-gaussians", "all-culled", "one-pixel"])
def test_degenerate_scenes(kernels, case):
    scene = random_scene(n=10, n_cams=2, width=24, height=20, seed=0)
    if case == "no-gaussians":
        scene = {k: (v[..., :0, :] if k == "colors" else v[:0]) if k in GRAD_KEYS[:5] else v for k, v in scene.items()}
    elif case == "all-culled":
        scene["means"] = scene["means"] + torch.tensor([100.0, 0.0, 50.0], dtype=torch.float64)
    else:
        scene.update(width=1, height=1)
        scene["Ks"] = scene["Ks"].clone()
        scene["Ks"][:, :2, :2] = torch.eye(2, dtype=torch.float64) * 3.0
        scene["Ks"][:, :2, 2] = 0.5
    leaves = with_grads(scene)
    render, alpha, meta = rasterize(**leaves, render_mode="RGB+ED", backend="cpp")
    tensors, settings = backend_args(scene, render_mode="RGB+ED")
    render_d, alpha_d = dense_rasterize(**tensors, settings=settings)
    torch.testing.assert_close(render, render_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha, alpha_d, rtol=1e-9, atol=1e-9)
    (render.sum() + alpha.sum()).backward()
    assert torch.isfinite(leaves["means"].grad).all()
    assert (case == "one-pixel") == bool(torch.all(alpha > 0.3))


@pytest.mark.parametrize("block", [4, 8])  # generic loops, 8 x 8 fast path (composite_rows.cpp)
def test_thread_count_does_not_change_results(kernels, block):
    """The compositor sums gradients per (block, Gaussian) entry, then per Gaussian in a fixed order: bitwise
    identical results whatever the number of threads (torch's own ops, e.g. the projection, may differ in the last
    bit, so the compositor is fed one fixed projection)."""
    # Big enough for several threads (the kernels give each thread at least 16k list entries / 8k Gaussians).
    scene = random_scene(n=20000, n_cams=2, width=96, height=80, seed=8, dtype=torch.float32)
    proj = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], 96, 80)
    opacities, colors = scene["opacities"][None].expand(2, -1), scene["colors"][None].expand(2, -1, -1)
    inputs = [proj.means2d, proj.conics, opacities, colors]
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
            render, alpha = composite_compiled(
                *leaves, scene["backgrounds"], proj.depths, proj.radii, 96, 80, absgrad=True, block=block
            )
            (render.sum() + alpha.sum()).backward()
            results.append((render, alpha, [t.grad for t in leaves]))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.count_nonzero(g) > 0 for g in results[0][2])
    for render, alpha, grads in results[1:]:
        assert torch.equal(render, results[0][0]) and torch.equal(alpha, results[0][1])
        for g, g0 in zip(grads, results[0][2], strict=True):
            assert torch.equal(g, g0)


def test_auto_picks_the_compiled_backend_on_cpu(kernels):
    scene = random_scene(n=20, n_cams=1, seed=2, dtype=torch.float32)
    assert rasterize(**scene, backend="auto")[2]["backend"] == "cpp"
    half = {k: (v.bfloat16() if isinstance(v, torch.Tensor) else v) for k, v in scene.items()}
    assert rasterize(**half, backend="auto")[2]["backend"] == "torch"  # dtypes the kernels lack stay on torch


@pytest.fixture
def fresh_loader(monkeypatch):
    """Forget the process's load outcome before and after (later tests reload the cached build in ~1 s)."""
    cpu_kernels.reset_cpu_kernels()
    yield monkeypatch
    monkeypatch.undo()
    cpu_kernels.reset_cpu_kernels()


def test_missing_compiler_falls_back_to_torch_with_one_warning(fresh_loader):
    fresh_loader.setenv("CXX", "/nonexistent/c++")
    fresh_loader.delenv(cpu_kernels.OPT_OUT_ENV, raising=False)
    scene = random_scene(n=20, n_cams=1, seed=2, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metas = [rasterize(**scene, backend="auto")[2] for _ in range(3)]
    assert [m["backend"] for m in metas] == ["torch"] * 3
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "no C++ compiler" in messages[0], messages
    with pytest.raises(RuntimeError, match="compiled CPU kernels"):
        rasterize(**scene, backend="cpp")


def test_opt_out_uses_torch_silently(fresh_loader):
    fresh_loader.setenv(cpu_kernels.OPT_OUT_ENV, "0")
    scene = random_scene(n=20, n_cams=1, seed=2, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rasterize(**scene, backend="auto")[2]["backend"] == "torch"
    assert not cpu_kernels._state["tried"]


def test_importing_the_package_compiles_nothing():
    code = (
        "import dynsplat_ns.render, dynsplat_ns.render.compiled_backend as c, dynsplat_ns.kernels.cpu as k; "
        "assert not k._state['tried'], 'import attempted a build'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
