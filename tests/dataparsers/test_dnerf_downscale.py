"""downscale_factor: cached copies outside the data folder, intrinsics to match."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.images import default_cache_dir, downscale_cache_dir


def parse(data: Path, split: str = "train", **config):
    return DNeRFDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def _listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_downscale_2_halves_images_and_intrinsics(dnerf_scene_copy: Path, dnerf_scene_params: dict, tmp_path: Path):
    data, cache = dnerf_scene_copy, tmp_path / "cache"
    before = _listing(data)
    full = parse(data, "test")
    half = parse(data, "test", downscale_factor=2, cache_dir=cache)
    size = dnerf_scene_params["size"] // 2
    assert _listing(data) == before
    for f in half.image_filenames:
        f = Path(f)
        assert f.is_file() and cache in f.parents and data.resolve() not in f.resolve().parents
        with Image.open(f) as image:
            assert image.size == (size, size) and image.mode == "RGBA"
    assert (half.cameras.width == size).all() and (half.cameras.height == size).all()
    torch.testing.assert_close(half.cameras.fx, full.cameras.fx / 2)
    torch.testing.assert_close(half.cameras.cx, full.cameras.cx / 2)
    torch.testing.assert_close(half.cameras.camera_to_worlds, full.cameras.camera_to_worlds)
    assert Path(half.image_filenames[0]).parent.parent == downscale_cache_dir(data, 2, cache)


def test_downscaled_rgba_keeps_clean_background(dnerf_scene: Path, tmp_path: Path):
    out = parse(dnerf_scene, downscale_factor=2, cache_dir=tmp_path / "cache")
    rgba = np.asarray(Image.open(out.image_filenames[0]))
    alpha = rgba[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any() and ((alpha > 0) & (alpha < 255)).any()
    full = np.asarray(Image.open(dnerf_scene / "train" / "r_000.png")).astype(np.float64) / 255
    box_alpha = full[..., 3].reshape(alpha.shape[0], 2, alpha.shape[1], 2).mean(axis=(1, 3))
    np.testing.assert_allclose(alpha / 255, box_alpha, atol=1 / 255 + 1e-9)  # area average of coverage
    image = InputDataset(out).get_image_float32(0)  # composited on white
    assert image.shape == (*alpha.shape, 3)
    torch.testing.assert_close(image[torch.from_numpy(alpha == 0)], torch.ones(int((alpha == 0).sum()), 3))
    # Shrinking then compositing must match compositing then area-averaging (premultiplied resize: no dark fringes
    # from the transparent black pixels; a straight-alpha resize is off by ~0.2 at edges here).
    composited = full[..., :3] * full[..., 3:] + (1.0 - full[..., 3:])
    reference = composited.reshape(alpha.shape[0], 2, alpha.shape[1], 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(image.numpy(), reference, atol=0.02)


def test_cache_is_reused_and_refreshed(dnerf_scene_copy: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = parse(dnerf_scene_copy, downscale_factor=2, cache_dir=cache).image_filenames
    stamps = [os.stat(f).st_mtime_ns for f in first]
    second = parse(dnerf_scene_copy, downscale_factor=2, cache_dir=cache).image_filenames
    assert second == first and [os.stat(f).st_mtime_ns for f in second] == stamps
    src = dnerf_scene_copy / "train" / "r_000.png"
    future = os.stat(first[0]).st_mtime + 10
    os.utime(src, (future, future))  # the source changed after the copy was made
    parse(dnerf_scene_copy, downscale_factor=2, cache_dir=cache)
    assert os.stat(first[0]).st_mtime_ns != stamps[0] and os.stat(first[1]).st_mtime_ns == stamps[1]


def test_default_cache_dir_uses_xdg(dnerf_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dynsplat_ns"
    out = parse(dnerf_scene, "val", downscale_factor=4)
    expected = downscale_cache_dir(dnerf_scene, 4)
    assert expected.parent == tmp_path / "xdg" / "dynsplat_ns"
    assert all(expected in Path(f).parents for f in out.image_filenames)
    assert downscale_cache_dir(dnerf_scene, 2) != expected  # one folder per factor
    assert math.isclose(float(out.cameras.width[0]), 8)


def test_cache_inside_data_folder_is_refused(dnerf_scene_copy: Path):
    before = _listing(dnerf_scene_copy)
    with pytest.raises(DataParserError, match="inside the data folder"):
        parse(dnerf_scene_copy, downscale_factor=2, cache_dir=dnerf_scene_copy / "cache")
    assert _listing(dnerf_scene_copy) == before


@pytest.mark.parametrize("factor", [0, -1])
def test_bad_downscale_factor(dnerf_scene: Path, factor: int):
    with pytest.raises(ValueError, match="downscale_factor"):
        DNeRFDataParserConfig(data=dnerf_scene, downscale_factor=factor).setup()
