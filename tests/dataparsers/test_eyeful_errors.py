"""Bad EyefulTower input: one DataParserError naming the offending file, and nothing written into the data folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig

RES = "images-jpeg-1k"


def _edit(name: str, edit: Callable[[dict], None], folder: str = RES) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / folder / name if folder else data / name
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta))  # json.dumps writes NaN / Infinity, which json.loads accepts

    return apply


def _frame(index: int, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit("transforms.json", lambda m: edit(sorted(m["frames"], key=lambda f: f["file_path"])[index]))


def _set(key: str, value) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _resize(data: Path) -> None:
    path = data / RES / "2" / "DSC0003.jpg"
    Image.open(path).resize((30, 36)).save(path)


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# (id, corrupt the copy, config, split, file the message must name, words it must contain)
CASES = [
    ("capture-missing", lambda d: shutil.rmtree(d), {}, "train", "eyeful", "not found"),
    ("no-resolution-folder", lambda d: [shutil.rmtree(p) for p in d.glob("images-*")], {}, "train",
     "transforms.json", "file not found, nor in any images-jpeg-* resolution folder"),
    ("resolution-missing", lambda d: None, {"resolution": "jpeg_4k"}, "train", "images-jpeg-4k",
     "resolution folder not found"),
    ("transforms-missing", lambda d: (d / RES / "transforms.json").unlink(), {"resolution": "jpeg_1k"}, "train",
     "transforms.json", "file not found"),
    ("subset-missing", lambda d: None, {"transforms_file": "transforms_100.json"}, "train", "transforms_100.json",
     "file not found"),
    ("transforms-malformed", lambda d: (d / RES / "transforms.json").write_text('{"frames": [}'), {}, "train",
     "transforms.json", "malformed JSON"),
    ("transforms-not-object", lambda d: (d / RES / "transforms.json").write_text("[]"), {}, "train",
     "transforms.json", "JSON object"),
    ("frames-empty", _edit("transforms.json", _set("frames", [])), {}, "train", "transforms.json",
     "'frames' must be a non-empty list"),
    ("unknown-camera-model", _edit("transforms.json", _set("camera_model", "EQUIRECTANGULAR")), {}, "train",
     "transforms.json", "unknown camera_model 'EQUIRECTANGULAR'"),
    ("frame-without-file-path", _frame(0, lambda f: f.pop("file_path")), {}, "train", "transforms.json",
     "'file_path' string"),
    ("duplicate-file-path", _frame(1, _set("file_path", "1/DSC0000.jpg")), {}, "train", "transforms.json",
     "appears more than once"),
    ("pose-missing", _frame(2, lambda f: f.pop("transform_matrix")), {}, "train", "transforms.json",
     "frame 2 (1/DSC0002.jpg) has no 'transform_matrix'"),
    ("pose-nan", _frame(3, lambda f: f["transform_matrix"][0].__setitem__(3, float("nan"))), {}, "test",
     "transforms.json", "contains NaN or inf"),
    ("pose-shape", _frame(3, lambda f: [row.pop() for row in f["transform_matrix"]]), {}, "train",
     "transforms.json", "must be 4x4, got shape [4, 3]"),
    ("focal-missing", _frame(4, lambda f: f.pop("fl_x")), {}, "train", "transforms.json", "has no 'fl_x'"),
    ("focal-inf", _frame(4, _set("fl_y", float("inf"))), {}, "train", "transforms.json", "'fl_y' must be a finite"),
    ("image-missing", lambda d: (d / RES / "3" / "DSC0002.jpg").unlink(), {}, "train", "DSC0002.jpg",
     "image file not found"),
    ("mixed-image-sizes", _resize, {}, "train", "DSC0003.jpg", "image size 30x36 differs from the 24x36"),
    ("image-corrupt", lambda d: (d / RES / "1" / "DSC0001.jpg").write_bytes(b"\xff\xd8 broken"), {}, "test",
     "DSC0001.jpg", "cannot read image"),
    ("splits-malformed", lambda d: (d / "splits.json").write_text("{"), {}, "train", "splits.json",
     "malformed JSON"),
    ("splits-missing-test", _edit("splits.json", lambda m: m.pop("test"), folder=""), {}, "train", "splits.json",
     "'train' and 'test' lists"),
    ("splits-ids-not-strings", _edit("splits.json", _set("test", [1, 2]), folder=""), {}, "train", "splits.json",
     "list of camera id strings"),
    ("empty-test-split", _edit("splits.json", _set("test", []), folder=""), {}, "test", "splits.json",
     "test split is empty"),
    ("splits-json-required", lambda d: (d / "splits.json").unlink(), {"split_source": "splits.json"}, "train",
     "splits.json", "file not found"),
    ("exr-images", _frame(0, _set("file_path", "1/DSC0000.exr")), {}, "train", RES, "EXR images are not supported"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt, config, split, file_name, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_one_error_naming_the_file(
    eyeful_scene_copy: Path, corrupt, config: dict, split: str, file_name: str, words: str
):
    corrupt(eyeful_scene_copy)
    before = _snapshot(eyeful_scene_copy)
    parser = EyefulDataParserConfig(data=eyeful_scene_copy, **config).setup()
    with pytest.raises(DataParserError) as info:
        parser.get_dataparser_outputs(split=split)
    message = str(info.value)
    assert Path(info.value.path).name == file_name and file_name in message
    assert words in message
    assert _snapshot(eyeful_scene_copy) == before


@pytest.mark.parametrize("option, value", [("split_source", "both"), ("scene_bound", 0.0), ("train_count", 0)])
def test_bad_config_values_name_the_option(eyeful_scene: Path, option: str, value):
    with pytest.raises(ValueError, match=option):
        EyefulDataParserConfig(data=eyeful_scene, **{option: value}).setup()
