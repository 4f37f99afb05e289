"""RasterSettings: the one frozen value that carries every non-tensor option from ``rasterize`` to the backends."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
import torch
from rasterize_testkit import TENSOR_KEYS, backend_args, random_scene

from dynsplat_ns.render import BlockOptions, RasterSettings, rasterize
from dynsplat_ns.render import api as render_api
from dynsplat_ns.render import settings as settings_module
from dynsplat_ns.render.compiled_backend import rasterize_compiled
from dynsplat_ns.render.dense_reference import dense_rasterize
from dynsplat_ns.render.gsplat_backend import rasterize_gsplat
from dynsplat_ns.render.options import DEFAULT_BLOCK_OPTIONS, DEFAULT_COMPILED_BLOCK
from dynsplat_ns.render.torch_backend import rasterize_torch

BACKEND_FUNCTIONS = (rasterize_torch, rasterize_compiled, rasterize_gsplat, dense_rasterize)
#: Settings fields that are not keywords of ``rasterize`` (gsplat's signature stays exact).
BACKEND_ONLY_FIELDS = {"compiled_block"}
FIELDS = {item.name for item in dataclasses.fields(RasterSettings)}

#: One invalid value per field, with the start of its error (every field must appear: see the test below).
BAD_VALUES = {
    "width": (0, ValueError, "`width` must be a positive int, got 0"),
    "height": (7.5, ValueError, "`height` must be a positive int, got 7.5"),
    "sh_degree": (4, ValueError, r"`sh_degree` must be None or an int in \[0, 3\], got 4"),
    "render_mode": ("RGBD", ValueError, "unknown render_mode 'RGBD'"),
    "near_plane": ("near", ValueError, "`near_plane` must be a real number, got 'near'"),
    "far_plane": (float("nan"), ValueError, "`far_plane` must be a real number, got nan"),
    "eps2d": (True, ValueError, "`eps2d` must be a real number, got True"),
    "absgrad": (1, ValueError, "`absgrad` must be a bool, got 1"),
    "backend": ("tiles", ValueError, "unknown backend 'tiles'"),
    "rasterize_mode": ("fancy", ValueError, "unknown rasterize_mode 'fancy'"),
    "torch_options": ({"block_size": 4}, TypeError, "torch_options.*BlockOptions, got dict"),
    "compiled_block": (3, ValueError, "`compiled_block` must divide gsplat's 16-pixel tile, got 3"),
}


def test_defaults_frozen_hashable():
    settings = RasterSettings(width=24, height=20)
    assert (settings.sh_degree, settings.render_mode, settings.backend, settings.rasterize_mode) == (
        None, "RGB", "auto", "classic"
    )
    assert (settings.near_plane, settings.far_plane, settings.eps2d, settings.absgrad) == (0.01, 1e10, 0.3, False)
    assert settings.torch_options is DEFAULT_BLOCK_OPTIONS and settings.compiled_block == DEFAULT_COMPILED_BLOCK
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.render_mode = "D"  # type: ignore[misc]
    assert RasterSettings(width=24, height=20, torch_options=None) == settings  # None: the default options
    assert len({settings, RasterSettings(width=24, height=20)}) == 1


def test_every_field_is_validated_when_built():
    """Each option has a check (a new field must add one here and in ``check_settings``)."""
    assert set(BAD_VALUES) == FIELDS
    good = RasterSettings(width=24, height=20)
    for name, (bad, error, message) in BAD_VALUES.items():
        with pytest.raises(error, match=message):
            RasterSettings(**{"width": 24, "height": 20, name: bad})
        with pytest.raises(error, match=message):  # replace() builds a new value, checked again
            dataclasses.replace(good, **{name: bad})


def test_every_backend_takes_the_tensors_and_one_settings_value():
    """The one place that lists the options is RasterSettings: every backend takes the same tensors, in gsplat's
    order, plus ``settings``, and no option as a keyword of its own."""
    for function in BACKEND_FUNCTIONS:
        params = inspect.signature(function).parameters
        assert tuple(params)[: len(TENSOR_KEYS)] == TENSOR_KEYS, function.__name__
        assert params["settings"].kind is inspect.Parameter.KEYWORD_ONLY, function.__name__
        assert typing.get_type_hints(function)["settings"] is RasterSettings, function.__name__
        assert not FIELDS & set(params), f"{function.__name__} repeats options: {FIELDS & set(params)}"


def test_rasterize_keywords_are_the_settings_fields():
    """``rasterize`` keeps gsplat's keywords; besides the tensors they are exactly the settings fields."""
    params = set(inspect.signature(rasterize).parameters)
    assert params == set(TENSOR_KEYS) | FIELDS - BACKEND_ONLY_FIELDS


def test_rasterize_builds_and_validates_the_settings_once(monkeypatch):
    scene = random_scene(n=12, n_cams=2, width=10, height=8, sh_degree=1, seed=0)
    options = BlockOptions(block_size=4)
    kwargs = dict(render_mode="RGB+D", near_plane=0.1, far_plane=50.0, eps2d=0.2, absgrad=True, backend="torch")
    kwargs.update(rasterize_mode="antialiased", torch_options=options)
    expected = RasterSettings(width=10, height=8, sh_degree=1, **kwargs)
    checks, received = [], []
    check = settings_module.check_settings
    monkeypatch.setattr(settings_module, "check_settings", lambda s: (checks.append(s), check(s)))
    backend = render_api.rasterize_torch
    monkeypatch.setattr(render_api, "rasterize_torch", lambda *a, **k: (received.append(k), backend(*a, **k))[1])
    render, _, meta = rasterize(**scene, **kwargs)
    assert len(checks) == 1 and checks[0] == expected
    assert len(received) == 1 and received[0]["settings"] is checks[0]
    assert render.shape == (2, 8, 10, 4) and (meta["width"], meta["height"], meta["absgrad"]) == (10, 8, True)


def test_backend_call_matches_rasterize():
    """Calling a backend with a settings value is what ``rasterize`` does: bitwise the same render."""
    scene = random_scene(n=20, n_cams=2, width=12, height=10, sh_degree=2, seed=3)
    render, alpha, _ = rasterize(**scene, render_mode="RGB+ED", backend="torch")
    tensors, settings = backend_args(scene, render_mode="RGB+ED", backend="torch")
    render_b, alpha_b, meta = rasterize_torch(**tensors, settings=settings)
    assert torch.equal(render, render_b) and torch.equal(alpha, alpha_b) and meta["backend"] == "torch"


def test_dense_reference_refuses_antialiasing():
    tensors, settings = backend_args(random_scene(n=5, n_cams=1), rasterize_mode="antialiased")
    with pytest.raises(ValueError, match="only rasterize_mode='classic'"):
        dense_rasterize(**tensors, settings=settings)


def test_gsplat_adapter_forwards_every_option(monkeypatch):
    """Without CUDA, gsplat's ``rasterization`` is replaced by a recorder: the adapter hands it each option of the
    settings (and non-packed mode) unchanged and builds the meta from its info (on a GPU:
    test_rasterize_gpu_parity.py)."""
    import gsplat.rendering

    calls = []

    def fake_rasterization(**kwargs):
        calls.append(kwargs)
        n_cams, n = kwargs["viewmats"].shape[0], kwargs["means"].shape[0]
        info = {"radii": torch.zeros(n_cams, n, dtype=torch.int32), "means2d": torch.zeros(n_cams, n, 2)}
        info.update(depths=torch.zeros(n_cams, n), conics=torch.zeros(n_cams, n, 3), opacities=torch.zeros(n_cams, n))
        return torch.zeros(n_cams, 8, 10, 3), torch.zeros(n_cams, 8, 10, 1), info

    monkeypatch.setattr(gsplat.rendering, "rasterization", fake_rasterization)
    tensors, settings = backend_args(
        random_scene(n=6, n_cams=2, width=10, height=8, sh_degree=1), render_mode="RGB+ED", near_plane=0.2,
        far_plane=9.0, eps2d=0.1, absgrad=True, rasterize_mode="antialiased", backend="gsplat",
    )
    _, _, meta = rasterize_gsplat(**tensors, settings=settings)
    (kwargs,) = calls
    for key in TENSOR_KEYS:
        assert kwargs[key] is tensors[key], key
    forwarded = FIELDS - BACKEND_ONLY_FIELDS - {"backend", "torch_options"}
    assert {key: kwargs[key] for key in forwarded} == {key: getattr(settings, key) for key in forwarded}
    assert kwargs["packed"] is False
    assert (meta["backend"], meta["width"], meta["height"], meta["absgrad"], meta["n_cameras"]) == (
        "gsplat", 10, 8, True, 2
    )
