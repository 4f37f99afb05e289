"""The dynsplat-d2rf dataparser on a generated D2RF scene (poses checked against pycolmap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from dynsplat_ns.dataparsers.d2rf import D2RF, D2RFDataParserConfig, d2rf_dataparser
from dynsplat_ns.scenes.d2rf import rig_poses

N_TIMES = 6


def parse(data: Path, split: str = "train", **config):
    return D2RFDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_specification_and_entry_point():
    assert isinstance(d2rf_dataparser.config, D2RFDataParserConfig)
    assert isinstance(D2RFDataParserConfig(data=Path("nowhere")).setup(), D2RF)
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="nerfstudio.dataparser_configs")}
    if "dynsplat-dnerf" not in eps:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    assert eps["dynsplat-d2rf"].load() is d2rf_dataparser


def test_left_views_train_on_bokeh_right_views_test_on_sharp(d2rf_scene: Path):
    train, test = parse(d2rf_scene, "train"), parse(d2rf_scene, "test")
    assert [f.name for f in train.image_filenames] == [f"{k:06d}_left.jpg" for k in range(N_TIMES)]
    assert all(f.parent.name == "images_bokeh" for f in train.image_filenames)
    assert [f.name for f in test.image_filenames] == [f"{k:06d}_right.jpg" for k in range(N_TIMES)]
    assert all(f.parent.name == "images" for f in test.image_filenames)
    assert train.metadata["frame_indices"] == [0, 2, 4, 6, 8, 10] and test.metadata["view_side"] == ["right"] * 6
    assert parse(d2rf_scene, "val").metadata["frame_indices"] == test.metadata["frame_indices"]
    same = parse(d2rf_scene, "test", eval_image_source="same")
    assert all(f.parent.name == "images_bokeh" for f in same.image_filenames)


def test_times_from_frame_id_shared_by_left_and_right(d2rf_scene: Path):
    expected = np.arange(N_TIMES) / (N_TIMES - 1)
    train, test = parse(d2rf_scene, "train"), parse(d2rf_scene, "test")
    np.testing.assert_allclose(train.cameras.times[:, 0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), expected, atol=1e-6)
    assert train.metadata["num_frames"] == N_TIMES == test.metadata["num_frames"]


def test_image_sources_and_resolutions(d2rf_scene: Path, tmp_path: Path):
    half = parse(d2rf_scene, "train", image_source="half-res")
    assert all(f.parent.name == "images_2" for f in half.image_filenames)
    assert (half.cameras.width == 32).all() and (half.cameras.height == 16).all()
    full = parse(d2rf_scene, "train")
    torch.testing.assert_close(half.cameras.fx * 2, full.cameras.fx)
    test = parse(d2rf_scene, "test", image_source="half-res", cache_dir=tmp_path / "cache")
    assert all(tmp_path / "cache" in f.parents for f in test.image_filenames)  # sharp views shrunk to train size
    assert Image.open(test.image_filenames[0]).size == (32, 16) and (test.cameras.width == 32).all()
    sharp = parse(d2rf_scene, "train", image_source="sharp")
    assert all(f.parent.name == "images" for f in sharp.image_filenames)


def test_masks_and_disparity_in_metadata(d2rf_scene: Path):
    out = parse(d2rf_scene, "test")
    meta = out.metadata
    names = [f"{k:06d}_right" for k in range(N_TIMES)]
    assert [p.stem for p in meta["motion_mask_filenames"]] == names
    assert all(p.parent.name == "motion_masks" for p in meta["motion_mask_filenames"])
    assert [p.stem for p in meta["background_mask_filenames"]] == names
    assert [p.stem for p in meta["depth_filenames"]] == names and meta["depth_kind"] == "disparity"
    mask = np.asarray(Image.open(meta["motion_mask_filenames"][0]))
    assert mask.shape == (16, 32) and (mask > 0).any() and (mask == 0).any()  # half resolution, both regions
    disparity = np.load(meta["depth_filenames"][0])
    assert disparity.shape == (16, 32) and disparity.max() > 0


def test_poses_match_the_generator_and_both_pose_sources(d2rf_scene: Path):
    expected = torch.tensor(np.stack([c for pair in rig_poses(N_TIMES) for c in pair])[:, :3], dtype=torch.float32)
    for source in ("colmap", "poses_bounds"):
        for split, rows in (("train", slice(0, None, 2)), ("test", slice(1, None, 2))):
            out = parse(d2rf_scene, split, pose_source=source)
            back = out.transform_poses_to_original_space(out.cameras.camera_to_worlds, camera_convention="opengl")
            torch.testing.assert_close(back, expected[rows], atol=1e-4, rtol=1e-4)
    a, b = parse(d2rf_scene, pose_source="colmap"), parse(d2rf_scene, pose_source="poses_bounds")
    torch.testing.assert_close(a.cameras.camera_to_worlds, b.cameras.camera_to_worlds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.cameras.fx, b.cameras.fx)


def test_poses_and_intrinsics_match_pycolmap(d2rf_scene: Path):
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction(str(d2rf_scene / "sparse" / "0"))
    by_stem = {Path(im.name).stem: im for im in rec.images.values()}
    for split in ("train", "test"):
        out = parse(d2rf_scene, split)
        back = out.transform_poses_to_original_space(out.cameras.camera_to_worlds, camera_convention="opencv")
        for i, stem in enumerate(f.stem for f in out.image_filenames):
            image = by_stem[stem]
            cam_from_world = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
            c2w = np.linalg.inv(np.vstack([cam_from_world.matrix(), [0, 0, 0, 1]]))[:3]
            np.testing.assert_allclose(back[i].numpy(), c2w, atol=1e-4)
            camera = rec.cameras[image.camera_id]
            np.testing.assert_allclose(float(out.cameras.fx[i]), camera.focal_length_x, rtol=1e-6)
            np.testing.assert_allclose(float(out.cameras.cx[i]), camera.principal_point_x, rtol=1e-6)
            assert int(out.cameras.width[i]) == camera.width


def test_seed_points_are_points3d(d2rf_scene: Path):
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction(str(d2rf_scene / "sparse" / "0"))
    ref = np.stack([p.xyz for _, p in sorted(rec.points3D.items())])
    out = parse(d2rf_scene)
    xyz = out.metadata["points3D_xyz"]
    assert xyz.shape == (len(ref), 3)
    back = (xyz / out.dataparser_scale - out.dataparser_transform[:, 3]) @ out.dataparser_transform[:, :3]
    np.testing.assert_allclose(back.numpy(), ref, atol=1e-4)
    random = parse(d2rf_scene, seed_points="random", num_random_points=100)
    assert random.metadata["points3D_xyz"].shape == (100, 3)


def test_scale_is_d2rf_bd_factor(d2rf_scene: Path):
    near = np.load(d2rf_scene / "poses_bounds.npy")[:, 15]
    assert parse(d2rf_scene).dataparser_scale == pytest.approx(1.0 / (np.percentile(near, 5) * 0.9))


def test_data_folder_is_never_written(d2rf_scene_copy: Path, tmp_path: Path):
    before = _snapshot(d2rf_scene_copy)
    for split in ("train", "val", "test"):
        InputDataset(parse(d2rf_scene_copy, split)).get_data(0)
    parse(d2rf_scene_copy, "test", image_source="half-res", cache_dir=tmp_path / "cache")
    assert _snapshot(d2rf_scene_copy) == before


def test_generator_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    from dynsplat_ns.scenes import d2rf as make_d2rf_scene

    assert make_d2rf_scene.main([str(tmp_path / "s"), "--width", "16", "--height", "8", "--n-times", "2"]) == 0
    assert "2 time steps" in capsys.readouterr().out
    assert np.load(tmp_path / "s" / "poses_bounds.npy").shape == (4, 17)
    assert (tmp_path / "s" / "database.db").is_file() and len(list((tmp_path / "s" / "flow_i1").iterdir())) == 4
    assert make_d2rf_scene.main([str(tmp_path / "s")]) == 1  # not empty, no --overwrite
    assert [f.name for f in parse(tmp_path / "s", "test").image_filenames] == ["000000_right.jpg", "000001_right.jpg"]
