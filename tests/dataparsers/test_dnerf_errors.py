"""Bad D-NeRF input: one DataParserError whose message names the offending file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.errors import DynsplatConfigError


def _edit_json(split: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / f"transforms_{split}.json"
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta))  # json.dumps writes NaN / Infinity literals, which json.loads accepts

    return apply


def _edit_frame(split: str, index: int, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit_json(split, lambda meta: edit(meta["frames"][index]))


def _set(key: str, value) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _resize(data: Path) -> None:
    path = data / "train" / "r_005.png"
    Image.open(path).resize((20, 32)).save(path)


# (id, corrupt the scene copy, split to parse, file that the message must name, words the message must contain)
CASES = [
    ("data-folder-missing", lambda d: shutil.rmtree(d), "train", "scene", "not found"),
    ("train-json-missing", lambda d: (d / "transforms_train.json").unlink(), "train", "transforms_train.json",
     "not found"),
    ("train-json-missing-parsing-test", lambda d: (d / "transforms_train.json").unlink(), "test",
     "transforms_train.json", "not found (its times give num_frames"),
    ("test-json-missing", lambda d: (d / "transforms_test.json").unlink(), "test", "transforms_test.json",
     "not found"),
    ("val-and-test-missing", lambda d: [(d / f"transforms_{s}.json").unlink() for s in ("val", "test")], "val",
     "transforms_val.json", "not found"),
    ("malformed-json", lambda d: (d / "transforms_train.json").write_text('{"frames": [}'), "train",
     "transforms_train.json", "malformed JSON"),
    ("malformed-other-split-json", lambda d: (d / "transforms_val.json").write_text("{"), "train",
     "transforms_val.json", "malformed JSON"),
    ("json-not-object", lambda d: (d / "transforms_train.json").write_text("[1, 2]"), "train",
     "transforms_train.json", "JSON object"),
    ("camera-angle-missing", _edit_json("train", lambda m: m.pop("camera_angle_x")), "train",
     "transforms_train.json", "camera_angle_x"),
    ("camera-angle-text", _edit_json("train", _set("camera_angle_x", "wide")), "train", "transforms_train.json",
     "camera_angle_x"),
    ("frames-empty", _edit_json("train", _set("frames", [])), "train", "transforms_train.json", "empty"),
    ("frames-missing", _edit_json("test", lambda m: m.pop("frames")), "test", "transforms_test.json", "frames"),
    ("frame-without-time", _edit_frame("train", 3, lambda f: f.pop("time")), "train", "transforms_train.json",
     "frame 3 (./train/r_003) has no 'time'"),
    ("time-not-number", _edit_frame("train", 2, _set("time", "noon")), "train", "transforms_train.json",
     "'time' must be a finite number"),
    ("time-bool", _edit_frame("train", 2, _set("time", True)), "train", "transforms_train.json", "'time'"),
    ("time-nan", _edit_frame("val", 1, _set("time", float("nan"))), "val", "transforms_val.json", "'time'"),
    ("time-in-other-split-missing", _edit_frame("test", 0, lambda f: f.pop("time")), "train",
     "transforms_test.json", "has no 'time'"),
    ("file-path-missing", _edit_frame("train", 1, lambda f: f.pop("file_path")), "train", "transforms_train.json",
     "file_path"),
    ("matrix-missing", _edit_frame("train", 0, lambda f: f.pop("transform_matrix")), "train",
     "transforms_train.json", "transform_matrix"),
    ("matrix-3x4", _edit_frame("train", 4, lambda f: f["transform_matrix"].pop()), "train", "transforms_train.json",
     "must be 4x4, got shape [3, 4]"),
    ("matrix-ragged", _edit_frame("train", 4, lambda f: f["transform_matrix"][1].pop()), "train",
     "transforms_train.json", "transform_matrix"),
    ("matrix-nan", _edit_frame("train", 0, lambda f: f["transform_matrix"][0].__setitem__(3, float("nan"))), "train",
     "transforms_train.json", "NaN or inf"),
    ("matrix-inf", _edit_frame("test", 2, lambda f: f["transform_matrix"][2].__setitem__(1, float("inf"))), "test",
     "transforms_test.json", "NaN or inf"),
    ("image-missing", lambda d: (d / "train" / "r_003.png").unlink(), "train", "r_003.png", "image file not found"),
    ("image-mixed-sizes", _resize, "train", "r_005.png", "image size 20x32 differs"),
    ("image-corrupt", lambda d: (d / "test" / "r_001.png").write_bytes(b"\x89PNG broken"), "test", "r_001.png",
     "cannot read image"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt, split, file_name, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_one_error_naming_the_file(
    dnerf_scene_copy: Path, corrupt: Callable[[Path], None], split: str, file_name: str, words: str
):
    corrupt(dnerf_scene_copy)
    parser = DNeRFDataParserConfig(data=dnerf_scene_copy).setup()
    with pytest.raises(DataParserError) as info:
        parser.get_dataparser_outputs(split=split)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert file_name in message and Path(info.value.path).name == file_name
    assert words in message


@pytest.mark.parametrize(
    "option, value",
    [("alpha_color", "mauve"), ("scale_factor", 0.0), ("num_random_points", -1), ("scene_bound", -1.0)],
)
def test_bad_config_values_name_the_option(dnerf_scene: Path, option: str, value):
    # A DynsplatConfigError (still a ValueError): the ns-* tools report it in one line, without a traceback.
    with pytest.raises(DynsplatConfigError, match=option):
        DNeRFDataParserConfig(data=dnerf_scene, **{option: value}).setup()


def test_missing_seed_ply_names_the_file(dnerf_scene: Path):
    parser = DNeRFDataParserConfig(data=dnerf_scene, seed_points="no_such_points.ply").setup()
    with pytest.raises(DataParserError, match=r"no_such_points\.ply: seed_points PLY file not found"):
        parser.get_dataparser_outputs(split="train")


def test_unknown_split(dnerf_scene: Path):
    with pytest.raises(ValueError, match="unknown split"):
        DNeRFDataParserConfig(data=dnerf_scene).setup().get_dataparser_outputs(split="everything")
