"""``dynsplat-deblur`` on data without a test split: one error before training, naming the file, saying why the method
needs the split and which option gives it one; nothing written into the data folder. Other methods keep the
dataparser's own message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _set_up(method: str, dataparser, tmp_path: Path, **model_flags):
    """What ``ns-train METHOD --pipeline.model.FLAG ... PARSER`` sets up before its first step (the pipeline)."""
    from nerfstudio.plugins.registry import discover_methods

    config = discover_methods()[0][method]
    model = dataclasses.replace(config.pipeline.model, **model_flags)
    datamanager = dataclasses.replace(config.pipeline.datamanager, dataparser=dataparser)
    pipeline = dataclasses.replace(config.pipeline, model=model, datamanager=datamanager)
    return pipeline.setup(device="cpu", test_mode="val")


@pytest.mark.parametrize("flags", [{"defocus": True}, {"eval_pose_refine_steps": 5, "num_virtual_views": 3}])
def test_deblur_on_d2rf_without_test_views(d2rf_scene_copy: Path, tmp_path: Path, flags: dict):
    before = _snapshot(d2rf_scene_copy)
    parser = D2RFDataParserConfig(data=d2rf_scene_copy, llffhold=1, cache_dir=tmp_path / "cache")
    with pytest.raises(SystemExit) as info:
        _set_up("dynsplat-deblur", parser, tmp_path, **flags)
    message = str(info.value)
    assert message.startswith(f"dynsplat error: {d2rf_scene_copy / 'poses_bounds.npy'}: "), message
    assert "dynsplat-deblur scores its sharp renders against the test split, and this data has none" in message
    assert "(the val split is empty: none of the 12 frames is in it)" in message
    assert "dynsplat-d2rf --llffhold 2 (its default)" in message and "split_indices.json" in message
    assert "\n" not in message
    assert _snapshot(d2rf_scene_copy) == before


def test_deblur_on_dnerf_without_test_frames(dnerf_scene_copy: Path, tmp_path: Path):
    for name in ("transforms_val.json", "transforms_test.json"):
        (dnerf_scene_copy / name).unlink()
    before = _snapshot(dnerf_scene_copy)
    with pytest.raises(SystemExit) as info:
        _set_up("dynsplat-deblur", DNeRFDataParserConfig(data=dnerf_scene_copy), tmp_path, defocus=True)
    message = str(info.value)
    assert message.startswith(f"dynsplat error: {dnerf_scene_copy / 'transforms_val.json'}: dynsplat-deblur scores")
    assert "a transforms_test.json next to transforms_train.json" in message, message
    assert _snapshot(dnerf_scene_copy) == before


def test_other_methods_keep_the_dataparsers_message(d2rf_scene: Path, tmp_path: Path):
    parser = D2RFDataParserConfig(data=d2rf_scene, llffhold=1, cache_dir=tmp_path / "cache")
    with pytest.raises(SystemExit) as info:
        _set_up("dynsplat-som", parser, tmp_path)
    message = str(info.value)
    assert "the val split is empty" in message and "dynsplat-deblur" not in message, message
