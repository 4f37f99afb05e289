"""Bad DyCheck input: one DataParserError naming the offending file, and nothing written into the data folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.scenes.dycheck import make_dycheck_scene


@pytest.fixture(scope="module")
def dycheck_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dycheck_scene(tmp_path_factory.mktemp("dycheck") / "seq", 32, 24, n_times=4, val_every=2)


@pytest.fixture
def scene_copy(dycheck_scene: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dycheck_scene, tmp_path / "seq"))


def _edit_json(relative: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / relative
        value = json.loads(path.read_text())
        edit(value)
        path.write_text(json.dumps(value))

    return apply


def _resize(relative: str, size: tuple[int, int]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / relative
        Image.open(path).resize(size).save(path)

    return apply


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# (id, corrupt the copy, config, split, file the message must name, words it must contain)
CASES = [
    ("data-folder-missing", lambda d: shutil.rmtree(d), {}, "train", "seq", "not found"),
    ("dataset-json-missing", lambda d: (d / "dataset.json").unlink(), {}, "train", "dataset.json", "file not found"),
    ("dataset-json-malformed", lambda d: (d / "dataset.json").write_text("{"), {}, "train", "dataset.json",
     "malformed JSON"),
    ("dataset-json-no-ids", _edit_json("dataset.json", lambda v: v.pop("ids")), {}, "train", "dataset.json",
     "'ids' list"),
    ("metadata-entry-missing", _edit_json("metadata.json", lambda v: v.pop("0_00001")), {}, "train",
     "metadata.json", "frame '0_00001' (listed in dataset.json) has no entry"),
    ("metadata-bad-time", _edit_json("metadata.json", lambda v: v["1_00002"].update(warp_id="x")), {}, "train",
     "metadata.json", "'warp_id' must be a number"),
    ("camera-json-missing", lambda d: (d / "camera" / "2_00000.json").unlink(), {}, "train", "2_00000.json",
     "file not found"),
    ("camera-missing-focal", _edit_json("camera/0_00002.json", lambda v: v.pop("focal_length")), {}, "train",
     "0_00002.json", "camera is missing 'focal_length'"),
    ("camera-skew", _edit_json("camera/1_00000.json", lambda v: v.update(skew=0.5)), {}, "test", "1_00000.json",
     "skew 0.5 is not supported"),
    ("camera-not-rotation", _edit_json("camera/0_00000.json", lambda v: v.update(orientation=np.eye(3).__mul__(2)
     .tolist())), {}, "train", "0_00000.json", "not a rotation matrix"),
    ("camera-bad-distortion", _edit_json("camera/0_00003.json", lambda v: v.update(radial_distortion=[0.1, 0.2])),
     {}, "train", "0_00003.json", "'radial_distortion' must have shape [3]"),
    ("image-size-mismatch", _resize("rgb/2x/0_00001.png", (15, 12)), {}, "train", "0_00001.png",
     "image size 15x12 differs from the 16x12"),
    ("image-folder-missing", lambda d: shutil.rmtree(d / "rgb" / "1x"), {"downscale": 1}, "train", "1x",
     "image folder (downscale=1) not found"),
    ("split-frame-without-image", lambda d: (d / "rgb" / "2x" / "2_00002.png").unlink(), {}, "train",
     "2_00002.png", "image not found (frame 2_00002 is in the val split)"),
    ("split-unknown-frame", _edit_json("splits/train.json", lambda v: v["frame_names"].append("0_00099")), {},
     "train", "train.json", "frame '0_00099' is not in dataset.json's 'ids'"),
    ("depth-missing", lambda d: (d / "depth" / "2x" / "0_00002.npy").unlink(), {}, "train", "0_00002.npy",
     "depth map not found"),
    ("covisible-missing", lambda d: (d / "covisible" / "2x" / "val" / "1_00002.png").unlink(), {}, "test",
     "1_00002.png", "covisibility mask not found"),
    ("covisible-wrong-size", _resize("covisible/2x/val/1_00002.png", (20, 7)), {}, "test", "1_00002.png",
     "covisible mask size 20x7 does not fit"),
    ("scene-near-after-far", _edit_json("scene.json", lambda v: v.update(near=2.0, far=1.0)), {}, "train",
     "scene.json", "'near' (2) must be less than 'far' (1)"),
    ("scene-bad-scale", _edit_json("scene.json", lambda v: v.update(scale=-1)), {}, "train", "scene.json",
     "'scale' must be a positive number"),
    ("points-bad-shape", lambda d: np.save(d / "points.npy", np.zeros((5, 2))), {}, "train", "points.npy",
     "expected finite points [M, 3]"),
    ("empty-val-split", _edit_json("splits/val.json", lambda v: v.update(frame_names=[])), {}, "test", "val.json",
     "test split is empty"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt, config, split, file_name, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_one_error_naming_the_file(
    scene_copy: Path, tmp_path: Path, corrupt, config: dict, split: str, file_name: str, words: str
):
    corrupt(scene_copy)
    before = _snapshot(scene_copy)
    parser = DycheckDataParserConfig(data=scene_copy, cache_dir=tmp_path / "cache", **config).setup()
    with pytest.raises(DataParserError) as info:
        parser.get_dataparser_outputs(split=split)
    message = str(info.value)
    assert Path(info.value.path).name == file_name and file_name in message
    assert words in message
    assert _snapshot(scene_copy) == before


def test_nothing_is_written_into_the_data_folder(scene_copy: Path, tmp_path: Path):
    """All splits, downscaled on top of the 2x folder (cached elsewhere), without splits/ and scene.json."""
    shutil.rmtree(scene_copy / "splits")
    (scene_copy / "scene.json").unlink()
    before = _snapshot(scene_copy)
    parser = DycheckDataParserConfig(data=scene_copy, cache_dir=tmp_path / "cache", downscale_factor=2).setup()
    outputs = {split: parser.get_dataparser_outputs(split) for split in ("train", "val", "test")}
    assert _snapshot(scene_copy) == before
    assert all(tmp_path / "cache" in p.parents for p in outputs["train"].image_filenames)
    # without splits/: DyCheck's default split (camera 0 trains, the others are val); without scene.json: units kept
    assert set(outputs["train"].metadata["camera_ids"]) == {0} and set(outputs["test"].metadata["camera_ids"]) == {1, 2}
    assert outputs["train"].dataparser_scale == 1.0


@pytest.mark.parametrize("option, value", [("downscale", 4), ("downscale", 0)])
def test_bad_config_values_name_the_option(dycheck_scene: Path, option: str, value):
    with pytest.raises(ValueError, match=option):
        DycheckDataParserConfig(data=dycheck_scene, **{option: value}).setup()
