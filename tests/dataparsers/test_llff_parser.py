"""The dynsplat-llff dataparser on a generated LLFF capture (and the real ones in /work/shared/data when present)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from dynsplat_ns.dataparsers.base import DynsplatDataParserConfig
from dynsplat_ns.dataparsers.llff import LLFF, LLFFDataParserConfig, llff_dataparser
from dynsplat_ns.scenes.llff import poses_bounds_rows
from dynsplat_ns.scenes.synthetic import forward_facing_poses

SHARED = Path("/work/shared/data")


def parse(data: Path, split: str = "train", **config):
    return LLFFDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _project(xyz: torch.Tensor, cameras, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates and depth of world points in OpenGL camera ``i``."""
    c2w = cameras.camera_to_worlds[i]
    p = (xyz - c2w[:3, 3]) @ c2w[:3, :3]
    depth = -p[:, 2]
    u = cameras.fx[i] * p[:, 0] / depth + cameras.cx[i]
    v = -cameras.fy[i] * p[:, 1] / depth + cameras.cy[i]
    return torch.stack([u, v], dim=1), depth


def test_specification_and_entry_point():
    assert isinstance(llff_dataparser.config, LLFFDataParserConfig)
    assert isinstance(llff_dataparser.config, DynsplatDataParserConfig)
    parser = LLFFDataParserConfig(data=Path("nowhere")).setup()
    assert isinstance(parser, LLFF) and not parser.includes_time
    assert LLFFDataParserConfig(time_from_order=True).setup().includes_time
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="nerfstudio.dataparser_configs")}
    if "dynsplat-dnerf" not in eps:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    assert eps["dynsplat-llff"].load() is llff_dataparser


@pytest.mark.parametrize("split, expected", [("train", [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]), ("test", [0, 8])])
def test_llffhold_every_8th_image_is_test(llff_scene: Path, split: str, expected: list):
    out = parse(llff_scene, split)
    assert out.metadata["frame_indices"] == expected
    assert [f.name for f in out.image_filenames] == [f"IMG_{i:04d}.png" for i in expected]
    assert parse(llff_scene, "val").metadata["frame_indices"] == [0, 8]  # val = test
    assert parse(llff_scene, "test", llffhold=3).metadata["frame_indices"] == [0, 3, 6, 9]


def test_poses_round_trip_and_intrinsics(llff_scene: Path):
    out = parse(llff_scene, "test")
    expected = torch.tensor(np.stack(forward_facing_poses(12, seed=0))[[0, 8], :3], dtype=torch.float32)
    back = out.transform_poses_to_original_space(out.cameras.camera_to_worlds, camera_convention="opengl")
    torch.testing.assert_close(back, expected, atol=1e-4, rtol=1e-4)
    cams = out.cameras
    assert (cams.width == 48).all() and (cams.height == 32).all()
    torch.testing.assert_close(cams.fx, torch.full_like(cams.fx, 1.1 * 48))
    assert (cams.cx == 24).all() and (cams.cy == 16).all() and cams.times is None
    up = cams.camera_to_worlds[:, :3, 1].mean(0)
    assert up[2] > 0.99  # nerfstudio's 'up' orientation: the mean camera up is +z


def test_bd_factor_scales_the_nearest_bound(llff_scene: Path):
    near_far = torch.cat([parse(llff_scene, s).metadata["near_far"] for s in ("train", "test")])
    assert float(near_far[:, 0].min()) * 0.75 == pytest.approx(1.0, rel=1e-5)
    unscaled = parse(llff_scene, bd_factor=None)
    assert unscaled.dataparser_scale == 1.0
    near = np.load(llff_scene / "poses_bounds.npy")[:, 15]
    assert parse(llff_scene).dataparser_scale == pytest.approx(1.0 / (near.min() * 0.75))


def test_sfm_points_project_into_the_images(llff_scene: Path):
    out = parse(llff_scene)
    xyz = out.metadata["points3D_xyz"]
    assert xyz.shape == (400, 3) and out.metadata["points3D_rgb"].dtype == torch.uint8
    uv, depth = _project(xyz, out.cameras, 0)
    inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 48) & (uv[:, 1] >= 0) & (uv[:, 1] < 32)
    assert inside.float().mean() > 0.9


def test_random_seed_points_fill_the_frustums_between_the_bounds(llff_scene: Path):
    out = parse(llff_scene, seed_points="random", num_random_points=300, random_seed=3)
    xyz = out.metadata["points3D_xyz"]
    assert xyz.shape == (300, 3)
    near_far = out.metadata["near_far"]
    lo, hi = float(near_far[:, 0].min()), float(near_far[:, 1].max())
    uv, depth = _project(xyz, out.cameras, 0)
    assert (depth > lo * 0.5).all() and (depth < hi * 1.5).all()
    assert ((uv[:, 0] > -48) & (uv[:, 0] < 96)).float().mean() > 0.9  # all cameras see about the same region
    again = parse(llff_scene, seed_points="random", num_random_points=300, random_seed=3).metadata["points3D_xyz"]
    torch.testing.assert_close(again, xyz)
    box = out.scene_box.aabb
    assert ((xyz >= box[0]) & (xyz <= box[1])).all()


def test_images_k_folder_is_used_and_intrinsics_follow(llff_scene: Path):
    out = parse(llff_scene, downscale_factor=2)
    assert all(f.parent.name == "images_2" for f in out.image_filenames)
    assert (out.cameras.width == 24).all() and (out.cameras.height == 16).all()
    torch.testing.assert_close(out.cameras.fx, torch.full_like(out.cameras.fx, 1.1 * 24))


def test_missing_images_k_is_resized_on_the_fly_outside_the_data(llff_scene_copy: Path, tmp_path: Path):
    before = _snapshot(llff_scene_copy)
    out = parse(llff_scene_copy, downscale_factor=4, cache_dir=tmp_path / "cache")
    assert all(tmp_path / "cache" in f.parents for f in out.image_filenames)
    assert Image.open(out.image_filenames[0]).size == (12, 8)
    assert (out.cameras.width == 12).all()
    torch.testing.assert_close(out.cameras.fx, torch.full_like(out.cameras.fx, 1.1 * 12))
    assert _snapshot(llff_scene_copy) == before


def test_without_images_folder_the_smallest_complete_images_k_is_used(llff_scene_copy: Path):
    shutil.rmtree(llff_scene_copy / "images")
    out = parse(llff_scene_copy)
    assert all(f.parent.name == "images_2" for f in out.image_filenames)
    assert (out.cameras.width == 24).all()


def test_time_from_order(llff_scene: Path):
    train = parse(llff_scene, "train", time_from_order=True)
    test = parse(llff_scene, "test", time_from_order=True)
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), [0.0, 8 / 11], atol=1e-6)
    assert train.cameras.times[-1, 0] == 1.0 and train.metadata["num_frames"] == 10
    assert parse(llff_scene).metadata["num_frames"] == 1


def test_data_folder_is_never_written(llff_scene_copy: Path):
    before = _snapshot(llff_scene_copy)
    for split in ("train", "val", "test"):
        InputDataset(parse(llff_scene_copy, split)).get_data(0)
    assert _snapshot(llff_scene_copy) == before


def test_generator_rows_match_poses_bounds(llff_scene: Path):
    rows = np.load(llff_scene / "poses_bounds.npy")
    assert rows.shape == (12, 17)
    again = poses_bounds_rows(forward_facing_poses(12, seed=0), (32, 48, 1.1 * 48), rows[:, 15:])
    np.testing.assert_allclose(again, rows)


@pytest.mark.skipif(not (SHARED / "llff_indoor").is_dir(), reason="real LLFF capture not present")
def test_real_llff_indoor_images_4_only():
    out = parse(SHARED / "llff_indoor", "test")
    assert len(out.image_filenames) == 8 and all(f.parent.name == "images_4" for f in out.image_filenames)
    assert (out.cameras.width == 480).all() and (out.cameras.height == 270).all()
    rows = np.load(SHARED / "llff_indoor" / "poses_bounds.npy")
    torch.testing.assert_close(out.cameras.fx[:, 0], torch.full((8,), rows[0, 14] / 4, dtype=torch.float32))


@pytest.mark.skipif(not (SHARED / "colmap_beer").is_dir(), reason="real COLMAP capture not present")
def test_real_colmap_beer_points_match_poses():
    out = parse(SHARED / "colmap_beer", "train")
    assert len(out.image_filenames) == 62 and out.metadata["points3D_xyz"].shape == (4414, 3)
    uv, depth = _project(out.metadata["points3D_xyz"], out.cameras, 0)
    inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 720) & (uv[:, 1] >= 0) & (uv[:, 1] < 1280)
    assert inside.float().mean() > 0.8


@pytest.mark.skipif(not (SHARED / "colmap_beer" / "images_8").is_dir(), reason="real COLMAP capture not present")
def test_real_partial_images_8_is_reported():
    from dynsplat_ns.dataparsers.errors import DataParserError

    with pytest.raises(DataParserError, match=r"images_8: holds 29 images but poses_bounds.npy has 71 poses"):
        parse(SHARED / "colmap_beer", downscale_factor=8)


def test_generator_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    from dynsplat_ns.scenes import llff as make_llff_scene

    assert make_llff_scene.main([str(tmp_path / "s"), "--width", "16", "--height", "12", "--n-frames", "3"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert np.load(tmp_path / "s" / "poses_bounds.npy").shape == (3, 17)
    assert make_llff_scene.main([str(tmp_path / "s"), "--n-frames", "3"]) == 1  # not empty, no --overwrite
    assert parse(tmp_path / "s", "test").metadata["frame_indices"] == [0]
