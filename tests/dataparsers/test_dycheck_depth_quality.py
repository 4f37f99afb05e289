"""Depth as a capture ships it (dynsplat_ns.scenes.depth_quality) and the DyCheck generator's --depth lidar /
--point-noise: the errors are there, of the size asked, only where there is a surface, and the parser still reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
from dynsplat_ns.scenes import dycheck as gen
from dynsplat_ns.scenes.depth_quality import LIDAR, DepthDegradation, degrade_depth


def two_planes(height: int = 32, width: int = 48) -> np.ndarray:
    """A near plane (depth 1) on the left, a far one (2) on the right, no surface in the top rows."""
    z = np.where(np.arange(width)[None, :] < width // 2, 1.0, 2.0) * np.ones((height, 1))
    z[:4] = 0.0
    return z.astype(np.float32)


def test_each_error_alone_has_the_size_asked():
    z = two_planes()
    off = DepthDegradation(downsample=1, scale_error=0, lowfreq_error=0, noise=0, edge_holes=0)
    assert np.array_equal(degrade_depth(z, np.random.default_rng(0), off), z)  # nothing asked, nothing changed
    scales = [float(np.median(degrade_depth(z, np.random.default_rng(s), DepthDegradation(
        downsample=1, scale_error=0.03, lowfreq_error=0, noise=0, edge_holes=0))[z > 0] / z[z > 0]))
        for s in range(200)]  # fmt: skip
    assert 0.02 < np.std(scales) < 0.04 and abs(np.mean(scales) - 1.0) < 0.01
    noisy = degrade_depth(z, np.random.default_rng(1), DepthDegradation(
        downsample=1, scale_error=0, lowfreq_error=0, noise=0.01, edge_holes=0))  # fmt: skip
    assert 0.007 < np.std(noisy[z > 0] / z[z > 0]) < 0.013


def test_lidar_depth_is_low_resolution_with_holes_at_edges_and_none_off_the_surface():
    z = two_planes()
    out = degrade_depth(z[..., None], np.random.default_rng(3), LIDAR)
    assert out.shape == (32, 48, 1) and out.dtype == np.float32
    out = out[..., 0]
    assert (out[z == 0] == 0).all()  # no depth where there is no surface
    blocks = out[4:].reshape(7, 4, 12, 4)  # 4×4 blocks below the empty rows hold one value each
    assert (blocks == blocks[:, :1, :, :1]).all()
    edge = slice(20, 28)  # the blocks on either side of the depth edge at x = 24
    assert (out[4:, edge] == 0).mean() > 0.4  # mostly holes there ...
    interior = out[4:, :16]
    assert (interior > 0).all() and abs(np.median(interior) - 1.0) < 0.2  # ... and a few % off elsewhere
    assert np.abs(interior - 1.0).max() > 1e-3


def test_generator_writes_lidar_depth_beside_the_exact_one_and_noisy_seed_points(tmp_path: Path):
    exact = gen.make_dycheck_scene(tmp_path / "exact", 32, 24, 4, 2, supersample=1)
    lidar = gen.make_dycheck_scene(tmp_path / "lidar", 32, 24, 4, 2, supersample=1, depth_quality=LIDAR,
                                   point_noise=0.05)  # fmt: skip
    assert not (exact / "depth_gt").exists()
    for factor in (1, 2):
        truth = np.load(exact / "depth" / f"{factor}x" / "0_00001.npy")
        assert np.array_equal(np.load(lidar / "depth_gt" / f"{factor}x" / "0_00001.npy"), truth)
        degraded = np.load(lidar / "depth" / f"{factor}x" / "0_00001.npy")
        assert degraded.shape == truth.shape and not np.array_equal(degraded, truth)
        both = (degraded > 0) & (truth > 0)
        assert np.median(np.abs(degraded[both] / truth[both] - 1.0)) < 0.15
    moved = np.linalg.norm(np.load(lidar / "points.npy") - np.load(exact / "points.npy"), axis=-1)
    assert 0.03 < np.median(moved) < 0.15  # |N(0, 0.05² I₃)| has median ≈ 0.077
    outputs = DycheckDataParserConfig(data=lidar, cache_dir=tmp_path / "cache").setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 4


def test_generator_writes_ground_truth_motion_masks_of_the_train_frames(tmp_path: Path):
    """motion_gt/ (for scoring derived masks; DyCheck has none): 255 where a train pixel shows a sphere."""
    from PIL import Image

    scene = gen.make_dycheck_scene(tmp_path / "s", 32, 24, 4, 2, supersample=1)
    assert sorted(p.stem for p in (scene / "motion_gt" / "1x").iterdir()) == [f"0_0000{k}" for k in range(4)]
    for factor, shape in ((1, (24, 32)), (2, (12, 16))):
        mask = np.asarray(Image.open(scene / "motion_gt" / f"{factor}x" / "0_00001.png")) > 127
        assert mask.shape == shape and 0.01 < mask.mean() < 0.5
    mask = np.asarray(Image.open(scene / "motion_gt" / "1x" / "0_00001.png")) > 127
    depth = np.load(scene / "depth" / "1x" / "0_00001.npy")[..., 0]
    assert not mask[depth == 0].any(), "no moving object where nothing is hit"
    assert 0.05 < mask[depth > 0].mean() < 0.8, "the static slab is not in the mask, the spheres are"


def test_cli_flags(tmp_path: Path):
    assert gen.main([str(tmp_path / "s"), "--width", "16", "--height", "12", "--n-times", "2", "--supersample", "1",
                     "--depth", "lidar", "--point-noise", "0.01", "--scene-seed", "3"]) == 0  # fmt: skip
    assert (tmp_path / "s" / "depth_gt" / "1x" / "0_00000.npy").is_file()
    assert gen.main([str(tmp_path / "u"), "--width", "16", "--height", "12", "--n-times", "2", "--supersample", "1",
                     "--scene-seed", "4"]) == 0  # fmt: skip
    rgb = [np.asarray(Image.open(tmp_path / d / "rgb" / "1x" / "0_00001.png")) for d in ("s", "u")]
    assert not np.array_equal(rgb[0], rgb[1])  # another scene seed, other spheres
    with pytest.raises(SystemExit):
        gen.main([str(tmp_path / "t"), "--point-noise", "-1"])


def test_scene_seeds_draw_different_spheres_inside_the_scene():
    from dynsplat_ns.scenes.synthetic import default_scene
    from dynsplat_ns.scenes.variation import vary_scene

    times = np.linspace(0.0, 1.0, 25)
    one, again, other = vary_scene(default_scene(), 1), vary_scene(default_scene(), 1), vary_scene(default_scene(), 2)
    assert np.array_equal(one.sphere_centers(times), again.sphere_centers(times))
    assert np.abs(one.sphere_centers(times) - other.sphere_centers(times)).max() > 0.05
    assert np.abs(one.sphere_centers(times) - default_scene().sphere_centers(times)).max() > 0.05
    for seed in range(20):
        assert np.abs(vary_scene(default_scene(), seed).sphere_centers(times)).max() < 1.5
    assert one.box == default_scene().box
