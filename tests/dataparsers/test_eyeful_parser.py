"""The dynsplat-eyeful dataparser on a generated EyefulTower capture (splits, resolutions, undistortion, no decode)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from PIL import Image, ImageFile

from dynsplat_ns.dataparsers.eyeful import Eyeful, EyefulDataParserConfig, eyeful_dataparser
from dynsplat_ns.scenes import eyeful as make_eyeful_scene
from dynsplat_ns.scenes.camera_models import model_rays
from dynsplat_ns.scenes.synthetic import default_scene, over_background, trace_rays

TEST_IDS = ["1/DSC0001", "2/DSC0001", "3/DSC0001"]  # rig spot 1 (test_every=4)


def parse(data: Path, split: str = "train", **config):
    return EyefulDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def _ids(out) -> list[str]:
    return out.metadata["camera_ids"]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_specification_and_entry_point():
    assert isinstance(eyeful_dataparser.config, EyefulDataParserConfig)
    parser = EyefulDataParserConfig(data=Path("nowhere")).setup()
    assert isinstance(parser, Eyeful) and not parser.includes_time
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="nerfstudio.dataparser_configs")}
    if "dynsplat-dnerf" not in eps:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    assert eps["dynsplat-eyeful"].load() is eyeful_dataparser


def test_splits_json_gives_a_test_split_where_nerfstudio_gives_none(eyeful_scene: Path):
    assert _ids(parse(eyeful_scene, "test")) == TEST_IDS
    assert _ids(parse(eyeful_scene, "val")) == TEST_IDS
    train = parse(eyeful_scene, "train")
    assert len(train.image_filenames) == 12 and not set(_ids(train)) & set(TEST_IDS)
    splits = json.loads((eyeful_scene / "splits.json").read_text())
    assert sorted(_ids(train)) == sorted(splits["train"])
    theirs = NerfstudioDataParserConfig(data=eyeful_scene / "images-jpeg-1k").setup()
    assert len(theirs.get_dataparser_outputs("test").image_filenames) == 0  # the problem this parser fixes


def test_transforms_lists_when_there_is_no_splits_json(eyeful_scene_copy: Path):
    (eyeful_scene_copy / "splits.json").unlink()
    assert _ids(parse(eyeful_scene_copy, "test")) == TEST_IDS  # val_filenames stand in for the empty test list
    assert _ids(parse(eyeful_scene_copy, "val")) == TEST_IDS


def test_split_source_transforms_ignores_splits_json(eyeful_scene_copy: Path):
    (eyeful_scene_copy / "splits.json").write_text(json.dumps({"train": TEST_IDS, "test": ["2/DSC0004"]}))
    assert _ids(parse(eyeful_scene_copy, "test")) == ["2/DSC0004"]
    assert _ids(parse(eyeful_scene_copy, "test", split_source="transforms")) == TEST_IDS


@pytest.mark.parametrize(
    "data_sub, config, folder, size",
    [
        ("", {}, "images-jpeg-1k", (24, 36)),  # auto: the smallest JPEG resolution present
        ("", {"resolution": "jpeg_2k"}, "images-jpeg-2k", (48, 72)),
        ("", {"resolution": "images-jpeg-2k"}, "images-jpeg-2k", (48, 72)),
        ("images-jpeg-2k", {}, "images-jpeg-2k", (48, 72)),  # --data pointing at a resolution folder
    ],
)
def test_resolution_choice(eyeful_scene: Path, data_sub: str, config: dict, folder: str, size: tuple):
    out = parse(eyeful_scene / data_sub if data_sub else eyeful_scene, "test", **config)
    assert all(f.parents[1].name == folder for f in out.image_filenames)
    assert (out.cameras.width == size[0]).all() and (out.cameras.height == size[1]).all()
    assert _ids(out) == TEST_IDS  # splits.json is found in the capture folder either way


@pytest.mark.parametrize(
    "name, count", [("transforms.json", 15), ("transforms_300.json", 15), ("transforms_half.json", 7)]
)
def test_transforms_file_choice(eyeful_scene: Path, name: str, count: int):
    parser = EyefulDataParserConfig(data=eyeful_scene, transforms_file=name).setup()
    assert len(parser.read_scene("train")) == count
    assert len(parser.get_dataparser_outputs("train").image_filenames) <= count


def test_cameras_match_transforms_json_and_the_generator(eyeful_scene: Path):
    meta = json.loads((eyeful_scene / "images-jpeg-2k" / "transforms.json").read_text())
    frames = {f["file_path"]: f for f in meta["frames"]}
    out = parse(eyeful_scene, "train", resolution="jpeg_2k")
    cams = out.cameras
    back = out.transform_poses_to_original_space(cams.camera_to_worlds, camera_convention="opengl")
    generated = dict(make_eyeful_scene.rig_cameras(5, 3))
    for i, cid in enumerate(_ids(out)):
        frame = frames[f"{cid}.jpg"]
        torch.testing.assert_close(back[i], torch.tensor(frame["transform_matrix"][:3], dtype=torch.float32),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        np.testing.assert_allclose(back[i].numpy(), generated[cid][:3], atol=1e-4)
        assert float(cams.fx[i]) == pytest.approx(frame["fl_x"]) and float(cams.cy[i]) == pytest.approx(frame["cy"])
        expected = [frame["k1"], frame["k2"], frame["k3"], 0.0, frame["p1"], frame["p2"]]
        np.testing.assert_allclose(cams.distortion_params[i].numpy(), expected, atol=1e-7)
    assert (cams.camera_type == CameraType.FISHEYE.value).all()
    assert cams.metadata["fisheye_crop_radius"] == 0.45 and cams.times is None
    assert float(cams.camera_to_worlds[:, :3, 3].abs().max()) == pytest.approx(1.0)  # auto scale
    assert out.metadata["num_frames"] == 1


def test_parser_reads_headers_only(eyeful_scene: Path, monkeypatch: pytest.MonkeyPatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the dataparser decoded an image")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for split in ("train", "test"):
        assert parse(eyeful_scene, split, resolution="jpeg_2k").image_filenames


@pytest.mark.parametrize("fisheye", [True, False], ids=["opencv_fisheye", "opencv"])
def test_datamanager_undistorts_training_images_to_a_pinhole_view(tmp_path: Path, fisheye: bool):
    """nerfstudio's FullImageDatamanager undistorts what the parser hands it: the cached training image must match a
    pinhole render of the same scene with the new intrinsics, much better than the distorted original does."""
    data = make_eyeful_scene.make_eyeful_scene(tmp_path / "rig", n_positions=2, n_cameras=3, fisheye=fisheye,
                                               resolutions={"images-jpeg-2k": (48, 72)}, test_every=2,
                                               aim_spread=1.6)  # fmt: skip
    config = FullImageDatamanagerConfig(dataparser=EyefulDataParserConfig(data=data), cache_images="gpu",
                                        cache_images_type="float32")  # fmt: skip
    manager = config.setup(device="cpu")
    outs, cams = manager.train_dataparser_outputs, manager.train_dataset.cameras
    background = np.asarray(make_eyeful_scene.BACKGROUND, dtype=np.float32)
    for i, cached in enumerate(manager.cached_train):
        image = cached["image"].numpy()
        h, w = image.shape[:2]
        assert (int(cams.width[i]), int(cams.height[i])) == (w, h)
        c2w = outs.transform_poses_to_original_space(outs.cameras.camera_to_worlds[i : i + 1], "opengl")[0].numpy()
        origin, dirs, _ = model_rays(c2w, w, h, float(cams.fx[i]), float(cams.fy[i]), float(cams.cx[i]),
                                     float(cams.cy[i]), "PINHOLE", (), 2)  # fmt: skip
        pinhole = over_background(trace_rays(default_scene(False), origin, dirs, 0.0)["rgba"], background)
        raw = np.asarray(Image.open(outs.image_filenames[i]).convert("RGB").resize((w, h)), np.float32) / 255
        seen = (np.abs(pinhole - background).max(-1) > 0.1) | (np.abs(image - background).max(-1) > 0.1)
        err_undistorted = float(np.abs(image - pinhole)[seen].mean())
        err_raw = float(np.abs(raw - pinhole)[seen].mean())
        assert err_undistorted < 0.06 and err_undistorted < 0.7 * err_raw, (i, err_undistorted, err_raw)


def test_data_folder_is_never_written(eyeful_scene_copy: Path):
    before = _snapshot(eyeful_scene_copy)
    for split in ("train", "val", "test"):
        parse(eyeful_scene_copy, split)
    assert _snapshot(eyeful_scene_copy) == before


def test_generator_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    argv = [str(tmp_path / "s"), "--n-positions", "2", "--n-cameras", "2", "--size-1k", "8", "12", "--pinhole"]
    assert make_eyeful_scene.main([*argv, "--test-every", "2"]) == 0
    assert "4 images per resolution" in capsys.readouterr().out
    krt = json.loads((tmp_path / "s" / "cameras.json").read_text())["KRT"]
    assert len(krt) == 4 and krt[0]["distortionModel"] == "RadialAndTangential"
    assert make_eyeful_scene.main(argv) == 1  # not empty, no --overwrite
    out = parse(tmp_path / "s", "test")
    assert _ids(out) == ["1/DSC0001", "2/DSC0001"] and (out.cameras.camera_type == CameraType.PERSPECTIVE.value).all()
