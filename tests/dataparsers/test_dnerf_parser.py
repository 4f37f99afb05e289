"""The dynsplat-dnerf dataparser on a generated scene."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from dynsplat_ns.dataparsers.base import DynsplatDataParserConfig
from dynsplat_ns.dataparsers.dnerf import DNeRF, DNeRFDataParserConfig, dnerf_dataparser
from dynsplat_ns.scenes import dnerf as make_dnerf_scene


def parse(data: Path, split: str = "train", **config):
    return DNeRFDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split=split)


def _json(data: Path, split: str) -> dict:
    return json.loads((data / f"transforms_{split}.json").read_text())


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_specification_and_config():
    assert isinstance(dnerf_dataparser.config, DNeRFDataParserConfig)
    assert isinstance(dnerf_dataparser.config, DynsplatDataParserConfig)
    assert dnerf_dataparser.description
    parser = DNeRFDataParserConfig(data=Path("nowhere")).setup()  # setup itself reads nothing
    assert isinstance(parser, DNeRF) and parser.includes_time


def test_entry_point_registered():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="nerfstudio.dataparser_configs") if ep.name == "dynsplat-dnerf"]
    if not eps:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    assert eps[0].load() is dnerf_dataparser


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_counts_shapes_and_times(dnerf_scene: Path, dnerf_scene_params: dict, split: str):
    out = parse(dnerf_scene, split)
    n, size = dnerf_scene_params[f"n_{split}"], dnerf_scene_params["size"]
    assert len(out.image_filenames) == n
    assert all(Path(f).is_file() and Path(f).parent.name == split for f in out.image_filenames)
    cams = out.cameras
    assert cams.shape == (n,) and cams.camera_to_worlds.shape == (n, 3, 4)
    assert cams.times is not None and cams.times.shape == (n, 1) and cams.times.dtype == torch.float32
    times = cams.times[:, 0]
    assert ((times >= 0) & (times <= 1)).all() and (times.diff() > 0).all()
    expected = [f["time"] for f in _json(dnerf_scene, split)["frames"]]  # already in [0, 1]: kept as is
    np.testing.assert_allclose(times.numpy(), expected, atol=1e-6)
    if split == "train":
        assert times[0] == 0.0 and times[-1] == 1.0
    assert (cams.width == size).all() and (cams.height == size).all()
    assert (cams.camera_type == CameraType.PERSPECTIVE.value).all()
    assert out.metadata["times_normalized"] is True


def test_focal_from_camera_angle_x(dnerf_scene: Path, dnerf_scene_params: dict):
    out = parse(dnerf_scene)
    size = dnerf_scene_params["size"]
    focal = 0.5 * size / math.tan(0.5 * _json(dnerf_scene, "train")["camera_angle_x"])
    np.testing.assert_allclose(out.cameras.fx.numpy(), focal, rtol=1e-6)
    np.testing.assert_allclose(out.cameras.fy.numpy(), focal, rtol=1e-6)
    assert (out.cameras.cx == size / 2).all() and (out.cameras.cy == size / 2).all()


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_c2w_round_trip(dnerf_scene: Path, scale: float):
    out = parse(dnerf_scene, "test", scale_factor=scale)
    poses = torch.tensor([f["transform_matrix"] for f in _json(dnerf_scene, "test")["frames"]], dtype=torch.float32)
    c2w = out.cameras.camera_to_worlds
    torch.testing.assert_close(c2w[:, :3, :3], poses[:, :3, :3])
    torch.testing.assert_close(c2w[:, :3, 3], poses[:, :3, 3] * scale)
    assert out.dataparser_scale == scale
    torch.testing.assert_close(out.dataparser_transform, torch.eye(4)[:3])
    back = out.transform_poses_to_original_space(c2w, camera_convention="opengl")
    torch.testing.assert_close(back, poses[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.scene_box.aabb, torch.tensor([[-1.5] * 3, [1.5] * 3]) * scale)


@pytest.mark.parametrize("alpha_color, expected", [("white", (1, 1, 1)), ("black", (0, 0, 0)), ("0.2,0.4,0.6", None)])
def test_alpha_compositing(dnerf_scene: Path, alpha_color: str, expected):
    expected = torch.tensor(expected if expected is not None else (0.2, 0.4, 0.6), dtype=torch.float32)
    out = parse(dnerf_scene, alpha_color=alpha_color)
    torch.testing.assert_close(out.alpha_color, expected)
    torch.testing.assert_close(out.metadata["background_color"], expected)
    image = InputDataset(out).get_image_float32(0)
    alpha = np.asarray(Image.open(out.image_filenames[0]))[..., 3]
    assert image.shape == (*alpha.shape, 3)
    background = torch.from_numpy(alpha == 0)
    assert background.any() and (~background).any()
    torch.testing.assert_close(image[background], expected.expand(int(background.sum()), 3))


def test_alpha_none_keeps_rgba(dnerf_scene: Path):
    out = parse(dnerf_scene, alpha_color="none")
    assert out.alpha_color is None and "background_color" not in out.metadata
    assert InputDataset(out).get_image_float32(0).shape[-1] == 4


def test_random_seed_points(dnerf_scene: Path):
    out = parse(dnerf_scene, num_random_points=500, random_seed=7, scale_factor=0.5)
    xyz, rgb = out.metadata["points3D_xyz"], out.metadata["points3D_rgb"]
    assert xyz.shape == (500, 3) and xyz.dtype == torch.float32
    assert rgb.shape == (500, 3) and rgb.dtype == torch.uint8
    lo, hi = out.scene_box.aabb
    assert ((xyz >= lo) & (xyz <= hi)).all()
    assert (xyz.min(0).values < lo + 0.1).all() and (xyz.max(0).values > hi - 0.1).all()  # fills the box
    again = parse(dnerf_scene, num_random_points=500, random_seed=7, scale_factor=0.5)
    torch.testing.assert_close(again.metadata["points3D_xyz"], xyz)
    other = parse(dnerf_scene, num_random_points=500, random_seed=8, scale_factor=0.5)
    assert not torch.equal(other.metadata["points3D_xyz"], xyz)
    assert DNeRFDataParserConfig().num_random_points == 2_000  # 4DGaussians' D-NeRF random init size
    assert parse(dnerf_scene).metadata["points3D_xyz"].shape == (2_000, 3)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_num_frames_counts_distinct_train_times(dnerf_scene: Path, dnerf_scene_params: dict, split: str):
    assert dnerf_scene_params["n_train"] == 12
    assert len({f["time"] for f in _json(dnerf_scene, "train")["frames"]}) == 12  # distinct in the fixture
    assert parse(dnerf_scene, split).metadata["num_frames"] == 12


def test_num_frames_merges_repeated_train_times(dnerf_scene_copy: Path):
    _rewrite_times(dnerf_scene_copy, lambda t: round(t * 3) / 3)  # 4 distinct times: 0, 1/3, 2/3, 1
    assert parse(dnerf_scene_copy, "train").metadata["num_frames"] == 4
    assert parse(dnerf_scene_copy, "test").metadata["num_frames"] == 4
    _rewrite_times(dnerf_scene_copy, lambda t: 3.0)
    assert parse(dnerf_scene_copy, "test").metadata["num_frames"] == 1


def _write_ascii_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    props = [f"property float {a}" for a in "xyz"] + [f"property uchar {c}" for c in ("red", "green", "blue")]
    header = ["ply", "format ascii 1.0", f"element vertex {len(xyz)}", *props, "end_header"]
    rows = [" ".join([*map(str, p), *map(str, c)]) for p, c in zip(xyz.tolist(), rgb.tolist(), strict=True)]
    path.write_text("\n".join(header + rows) + "\n")


def test_ply_seed_points_relative_to_data_folder(dnerf_scene_copy: Path):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (20, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (20, 3)).astype(np.uint8)
    _write_ascii_ply(dnerf_scene_copy / "points.ply", xyz, rgb)
    out = parse(dnerf_scene_copy, seed_points="points.ply", scale_factor=2.0)
    torch.testing.assert_close(out.metadata["points3D_xyz"], torch.from_numpy(xyz) * 2.0)
    assert torch.equal(out.metadata["points3D_rgb"], torch.from_numpy(rgb))


def test_val_falls_back_to_test(dnerf_scene_copy: Path, dnerf_scene_params: dict):
    (dnerf_scene_copy / "transforms_val.json").unlink()
    out = parse(dnerf_scene_copy, "val")
    assert len(out.image_filenames) == dnerf_scene_params["n_test"]
    assert all(Path(f).parent.name == "test" for f in out.image_filenames)


def test_eval_split_val_scores_the_val_files(dnerf_scene: Path, dnerf_scene_params: dict):
    """--eval-split val: the test split (what ns-eval scores) is transforms_val.json; training is unchanged."""
    test = parse(dnerf_scene, "test", eval_split="val")
    val = parse(dnerf_scene, "val")
    assert [str(f) for f in test.image_filenames] == [str(f) for f in val.image_filenames]
    assert all(Path(f).parent.name == "val" for f in test.image_filenames)
    assert torch.equal(test.cameras.times, val.cameras.times)
    assert len(parse(dnerf_scene, "train", eval_split="val").image_filenames) == dnerf_scene_params["n_train"]
    assert all(Path(f).parent.name == "test" for f in parse(dnerf_scene, "test").image_filenames)
    with pytest.raises(ValueError, match="eval_split"):
        parse(dnerf_scene, "test", eval_split="train")


def test_file_path_with_png_extension(tmp_path: Path):
    scene = make_dnerf_scene.make_dnerf_scene(tmp_path / "s", size=8, n_train=3, n_val=1, n_test=1, png_ext=True)
    out = parse(scene)
    assert [Path(f).name for f in out.image_filenames] == ["r_000.png", "r_001.png", "r_002.png"]


def _rewrite_times(data: Path, fn) -> None:
    for split in ("train", "val", "test"):
        meta = _json(data, split)
        for frame in meta["frames"]:
            frame["time"] = fn(frame["time"])
        (data / f"transforms_{split}.json").write_text(json.dumps(meta))


def test_times_normalised_jointly_across_splits(dnerf_scene_copy: Path):
    raw = {s: [10.0 * f["time"] + 5.0 for f in _json(dnerf_scene_copy, s)["frames"]] for s in ("train", "test")}
    _rewrite_times(dnerf_scene_copy, lambda t: 10.0 * t + 5.0)  # seconds, not [0, 1]
    with pytest.warns(UserWarning, match="outside"):
        train = parse(dnerf_scene_copy, "train").cameras.times[:, 0]
    with pytest.warns(UserWarning, match="outside"):
        test = parse(dnerf_scene_copy, "test").cameras.times[:, 0]
    lo, hi = 5.0, 15.0  # the train split spans the global range here
    np.testing.assert_allclose(train.numpy(), (np.array(raw["train"]) - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_allclose(test.numpy(), (np.array(raw["test"]) - lo) / (hi - lo), atol=1e-6)


def test_constant_times_become_zero(dnerf_scene_copy: Path):
    _rewrite_times(dnerf_scene_copy, lambda t: 3.0)
    assert (parse(dnerf_scene_copy, "train").cameras.times == 0).all()


def test_data_folder_is_never_written(dnerf_scene_copy: Path, tmp_path: Path):
    before = _snapshot(dnerf_scene_copy)
    for split in ("train", "val", "test"):
        out = parse(dnerf_scene_copy, split)
        InputDataset(out).get_data(0)
    parse(dnerf_scene_copy, "train", downscale_factor=2, cache_dir=tmp_path / "cache")
    assert _snapshot(dnerf_scene_copy) == before


def test_only_the_requested_splits_images_are_needed(dnerf_scene_copy: Path, dnerf_scene_params: dict):
    (dnerf_scene_copy / "test" / "r_000.png").unlink()  # the test JSON is still read (for the shared time range)
    assert len(parse(dnerf_scene_copy, "train").image_filenames) == dnerf_scene_params["n_train"]
