"""Input validation, backend dispatch, and proof that the CPU path never reaches gsplat's CUDA extension."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from rasterize_testkit import random_scene

from dynsplat_ns.render import RENDER_MODES, rasterize
from dynsplat_ns.render.api import resolve_backend


@pytest.fixture
def scene():
    return random_scene(n=12, n_cams=2, width=10, height=8, seed=0)


def test_gsplat_backend_on_cpu_is_a_clear_error(scene):
    with pytest.raises(ValueError, match="CUDA") as info:
        rasterize(**scene, backend="gsplat")
    assert "torch" in str(info.value) and "auto" in str(info.value)


def test_backend_resolution():
    # On CPU, "auto" is the compiled kernels when they are available (tests/render/test_rasterize_compiled.py).
    assert resolve_backend("auto", "cpu") in ("cpp", "torch")
    assert resolve_backend("auto", "cuda") == "gsplat"
    assert resolve_backend("torch", "cuda") == "torch"
    assert resolve_backend("gsplat", "cuda") == "gsplat"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(backend="tiles"), "unknown backend"),
        (dict(render_mode="RGBD"), "unknown render_mode"),
        (dict(rasterize_mode="fancy"), "unknown rasterize_mode"),
        (dict(width=0), "width"),
        (dict(height=7.5), "height"),
        (dict(sh_degree=4), "sh_degree"),
    ],
)
def test_bad_options(scene, change, message):
    if "sh_degree" in change:
        scene["colors"] = torch.zeros(12, 25, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        rasterize(**{**scene, **change})


@pytest.mark.parametrize(
    "key, bad, message",
    [
        ("means", torch.zeros(12, 2), "means"),
        ("quats", torch.zeros(12, 3), "quats"),
        ("quats", torch.zeros(11, 4), "quats"),
        ("scales", torch.zeros(12), "scales"),
        ("opacities", torch.zeros(12, 1), "opacities"),
        ("colors", torch.zeros(11, 3), "colors"),
        ("colors", torch.zeros(3, 12, 3), "colors"),  # per-camera colours for 3 cameras, but C = 2
        ("viewmats", torch.zeros(2, 3, 4), "viewmats"),
        ("Ks", torch.zeros(3, 3, 3), "Ks"),
        ("backgrounds", torch.zeros(2, 4), "backgrounds"),
        ("backgrounds", torch.zeros(1, 3), "backgrounds"),
        ("means", [[0.0, 0.0, 0.0]] * 12, "means"),
        ("opacities", torch.zeros(12, dtype=torch.int64), "floating point"),
    ],
)
def test_bad_shapes(scene, key, bad, message):
    if isinstance(bad, torch.Tensor) and bad.is_floating_point():
        bad = bad.to(torch.float64)
    with pytest.raises(ValueError, match=message):
        rasterize(**{**scene, key: bad})


def test_bad_sh_shapes(scene):
    with pytest.raises(ValueError, match="K>=16"):
        rasterize(**{**scene, "colors": torch.zeros(12, 9, 3, dtype=torch.float64), "sh_degree": 3})
    with pytest.raises(ValueError, match="colors"):
        rasterize(**{**scene, "colors": torch.zeros(12, 16, 4, dtype=torch.float64), "sh_degree": 3})
    with pytest.raises(ValueError, match="colors"):  # SH-shaped colours without sh_degree
        rasterize(**{**scene, "colors": torch.zeros(12, 16, 3, dtype=torch.float64)})


def test_device_mismatch(scene):
    with pytest.raises(ValueError, match="meta"):
        rasterize(**{**scene, "Ks": scene["Ks"].to("meta")})


def test_torch_path_never_reaches_gsplat_cuda(scene, monkeypatch):
    """Any use of gsplat's CUDA extension goes through ``gsplat.cuda._backend``; make importing it explode."""

    class _Tripwire(types.ModuleType):
        def __getattr__(self, name):
            raise AssertionError(f"gsplat CUDA backend reached (attribute {name!r})")

    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", _Tripwire("gsplat.cuda._backend"))
    import gsplat

    with pytest.raises(AssertionError, match="CUDA backend reached"):  # the tripwire works
        gsplat.spherical_harmonics(0, torch.ones(2, 3), torch.ones(2, 1, 3))
    for mode in RENDER_MODES:
        for sh in (None, 3):
            kwargs = dict(scene, sh_degree=sh, means=scene["means"].clone().requires_grad_(True))
            if sh is not None:
                kwargs["colors"] = torch.randn(12, 16, 3, dtype=torch.float64)
            means = kwargs["means"]
            render, alpha, meta = rasterize(**kwargs, render_mode=mode, absgrad=True, backend="auto")
            assert meta["backend"] in ("torch", "cpp")
            (render.sum() + alpha.sum()).backward()
            assert torch.isfinite(means.grad).all()
