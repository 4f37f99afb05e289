"""The generated 360° ring (EyefulTower layout) and its forward-facing twin (LLFF layout) parse as their formats."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig
from dynsplat_ns.dataparsers.llff import LLFFDataParserConfig
from dynsplat_ns.scenes.ring360 import make_forward_scene, make_ring360_scene


def test_ring360_scene_is_an_eyeful_capture_all_around_a_textured_floor(tmp_path):
    out = make_ring360_scene(tmp_path / "ring", n_views=10, width=32, height=24, supersample=1)
    parser = EyefulDataParserConfig(data=out).setup()
    train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
    assert (len(train.image_filenames), len(test.image_filenames)) == (8, 2)
    centres = train.cameras.camera_to_worlds[:, :3, 3].numpy()
    angles = np.sort(np.arctan2(centres[:, 1], centres[:, 0]))
    assert np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi])).max() < np.pi / 2  # all around, no big gap
    assert float(np.ptp(centres[:, 2])) > 0.1  # varying height
    image = np.asarray(Image.open(train.image_filenames[0]), dtype=np.float64)
    assert (image.reshape(-1, 3) > 250).all(axis=1).mean() > 0.05  # white sky
    assert image[-6:].std() > 30  # checkerboard floor at the bottom of the view
    assert train.cameras.distortion_params is None or not train.cameras.distortion_params.any()


def test_forward_scene_is_an_llff_capture_without_seed_points(tmp_path):
    out = make_forward_scene(tmp_path / "ff", n_views=9, width=32, height=18, supersample=1)
    assert not (out / "sparse").exists()
    parser = LLFFDataParserConfig(data=out).setup()
    train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
    assert (len(train.image_filenames), len(test.image_filenames)) == (7, 2)
