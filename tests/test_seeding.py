"""Seed points from plane-sweep stereo (dynsplat_ns/seeding.py) and the datamanager that uses them (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset

from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig
from dynsplat_ns.priors.stereo_seeds import stereo_seed_points
from dynsplat_ns.scenes.ring360 import RingScene, make_ring360_scene
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

#: Seeds this close (scene units of the generator) to a surface of the ring scene count as on it.
ON_SURFACE = 0.15


@pytest.fixture(scope="module")
def ring_scene(tmp_path_factory: pytest.TempPathFactory):
    return make_ring360_scene(tmp_path_factory.mktemp("ring360"), n_views=25, width=48, height=36, supersample=2)


def _box_distance(p: np.ndarray, lo, hi) -> np.ndarray:
    """Distance from points to the surface of an axis-aligned box."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    outside = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=-1)
    inside = np.minimum(p - lo, hi - p).min(axis=-1)
    return np.where(outside > 0, outside, inside)


def _surface_distance(raw: np.ndarray, scene: RingScene) -> np.ndarray:
    """Distance of generator-world points to the nearest surface (floor, ball, box, pillar)."""
    floor = np.where(np.abs(raw[:, :2]).max(axis=1) <= scene.floor_half, np.abs(raw[:, 2]), np.inf)
    ball = np.abs(np.linalg.norm(raw - np.asarray(scene.ball_center), axis=1) - scene.ball_radius)
    boxes = [_box_distance(raw, lo, hi) for lo, hi, _ in scene.boxes()]
    return np.min(np.stack([floor, ball, *boxes]), axis=0)


def _to_generator_world(xyz: torch.Tensor, outputs) -> np.ndarray:
    """Our world → the generator's (inverse of the dataparser transform and scale)."""
    transform = outputs.dataparser_transform.double()
    p = xyz.double() / outputs.dataparser_scale - transform[:, 3]
    return (p @ transform[:, :3]).numpy()  # rotation is orthonormal: R^-1 = R^T


def test_stereo_seeds_lie_on_the_surfaces_that_random_seeds_miss(ring_scene):
    outputs = EyefulDataParserConfig(data=ring_scene).setup().get_dataparser_outputs("train")
    dataset = InputDataset(outputs)
    images = [dataset.get_image_float32(i) for i in range(len(dataset))]
    seeds = stereo_seed_points(outputs.cameras, images, outputs.scene_box.aabb, 5000)
    assert seeds is not None
    xyz, rgb = seeds
    assert xyz.dtype == torch.float32 and rgb.dtype == torch.uint8 and xyz.shape == rgb.shape
    assert 1000 <= xyz.shape[0] <= 5000

    scene = RingScene()
    raw = _to_generator_world(xyz, outputs)
    # seeds beyond the floor's edge stand for the sky (placed far away on purpose): judge the others
    near = np.linalg.norm(raw[:, :2], axis=1) < scene.floor_half
    on_surface = (_surface_distance(raw[near], scene) < ON_SURFACE).mean()
    random_raw = _to_generator_world(outputs.metadata["points3D_xyz"], outputs)
    random_near = np.linalg.norm(random_raw[:, :2], axis=1) < scene.floor_half
    random_on_surface = (_surface_distance(random_raw[random_near], scene) < ON_SURFACE).mean()
    assert on_surface > 0.6, f"{on_surface:.2f} of stereo seeds on a surface (random: {random_on_surface:.2f})"
    assert random_on_surface < 0.3
    # no seed next to a training camera (they become floaters that only that camera sees)
    centers = outputs.cameras.camera_to_worlds[:, :3, 3]
    assert torch.cdist(xyz, centers).min() > 0.1


def test_stereo_needs_two_perspective_cameras(ring_scene):
    outputs = EyefulDataParserConfig(data=ring_scene).setup().get_dataparser_outputs("train")
    image = InputDataset(outputs).get_image_float32(0)
    assert stereo_seed_points(outputs.cameras[0:1], [image], outputs.scene_box.aabb, 100) is None


@pytest.mark.parametrize("count", [3000, 0])
def test_datamanager_replaces_random_seeds_for_training(ring_scene, count):
    config = DynsplatDatamanagerConfig(dataparser=EyefulDataParserConfig(data=ring_scene), stereo_seeds=count)
    manager = config.setup(device="cpu", test_mode="val")
    metadata = manager.train_dataparser_outputs.metadata
    if count:
        assert metadata["seed_points_random"] is False
        assert 1000 <= metadata["points3D_xyz"].shape[0] <= count
    else:  # switched off: the dataparser's uniform draw
        assert metadata["seed_points_random"] is True
        assert metadata["points3D_xyz"].shape[0] == EyefulDataParserConfig().num_random_points
    # evaluation setups (ns-eval, ns-viewer) load the checkpoint's Gaussians: no stereo there
    evaluated = config.setup(device="cpu", test_mode="test").train_dataparser_outputs.metadata
    assert evaluated["seed_points_random"] is True
