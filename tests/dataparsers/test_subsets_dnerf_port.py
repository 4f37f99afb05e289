"""D-NeRF on the shared pipeline (read_dnerf_scene): same outputs as dynsplat-dnerf today, plus the split policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dynsplat_ns.dataparsers.base import DynsplatDataParser
from dynsplat_ns.dataparsers.dnerf import DNeRF, DNeRFDataParserConfig
from dynsplat_ns.dataparsers.dnerf_scene import read_dnerf_scene


class PortedDNeRF(DNeRF):
    """DNeRF switched onto the base pipeline, as dnerf_scene's docstring describes."""

    read_scene = read_dnerf_scene
    _generate_dataparser_outputs = DynsplatDataParser._generate_dataparser_outputs


def parse(data: Path, split: str, ported: bool, **config):
    target = {"_target": PortedDNeRF} if ported else {}
    return DNeRFDataParserConfig(data=data, **target, **config).setup().get_dataparser_outputs(split=split)


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("config", [{}, {"scale_factor": 0.5, "downscale_factor": 2}, {"alpha_color": "black"}])
def test_same_outputs_as_the_current_parser(dnerf_scene: Path, tmp_path: Path, split: str, config: dict):
    config = {**config, "cache_dir": tmp_path / "cache"}
    old, new = parse(dnerf_scene, split, False, **config), parse(dnerf_scene, split, True, **config)
    assert new.image_filenames == old.image_filenames
    for key in ("camera_to_worlds", "fx", "fy", "cx", "cy", "width", "height", "times", "camera_type"):
        torch.testing.assert_close(getattr(new.cameras, key), getattr(old.cameras, key))
    torch.testing.assert_close(new.scene_box.aabb, old.scene_box.aabb)
    torch.testing.assert_close(new.dataparser_transform, old.dataparser_transform)
    assert new.dataparser_scale == old.dataparser_scale
    torch.testing.assert_close(new.alpha_color, old.alpha_color)
    for key in ("points3D_xyz", "points3D_rgb", "background_color"):
        torch.testing.assert_close(new.metadata[key], old.metadata[key])
    assert new.metadata["num_frames"] == old.metadata["num_frames"]


def test_val_falls_back_to_test(dnerf_scene_copy: Path):
    (dnerf_scene_copy / "transforms_val.json").unlink()
    out = parse(dnerf_scene_copy, "val", True)
    assert all(Path(f).parent.name == "test" for f in out.image_filenames)


def test_split_policy_applies_to_dnerf(dnerf_scene_copy: Path, dnerf_scene_params: dict):
    n = dnerf_scene_params["n_train"]
    kept = parse(dnerf_scene_copy, "train", True, train_count=3)
    assert kept.metadata["frame_indices"] == [0, round((n - 1) / 2), n - 1]
    assert kept.metadata["num_frames"] == 3
    (dnerf_scene_copy / "split_indices.json").write_text(json.dumps({"train": [0, 1], "test": [12, 16]}))
    test = parse(dnerf_scene_copy, "test", True)
    assert [Path(f).parent.name for f in test.image_filenames] == ["val", "test"]  # train, val, test frame order
