"""The shared split policy (split_indices.json, train_count) applied to dynsplat-dnerf's frame order."""

from __future__ import annotations

import json
from pathlib import Path

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig


def parse(data: Path, split: str, **config):
    return DNeRFDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def test_val_falls_back_to_test_in_frame_order(dnerf_scene_copy: Path, dnerf_scene_params: dict):
    (dnerf_scene_copy / "transforms_val.json").unlink()
    out = parse(dnerf_scene_copy, "val")
    assert all(Path(f).parent.name == "test" for f in out.image_filenames)
    n = dnerf_scene_params["n_train"]  # frames: train, then test (no val file)
    assert out.metadata["frame_indices"] == list(range(n, n + dnerf_scene_params["n_test"]))


def test_split_policy_applies_to_dnerf(dnerf_scene_copy: Path, dnerf_scene_params: dict):
    n = dnerf_scene_params["n_train"]
    kept = parse(dnerf_scene_copy, "train", train_count=3)
    assert kept.metadata["frame_indices"] == [0, round((n - 1) / 2), n - 1]
    assert kept.metadata["num_frames"] == 3
    (dnerf_scene_copy / "split_indices.json").write_text(json.dumps({"train": [0, 1], "test": [12, 16]}))
    test = parse(dnerf_scene_copy, "test")
    assert [Path(f).parent.name for f in test.image_filenames] == ["val", "test"]  # train, val, test frame order
