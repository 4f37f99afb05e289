"""Integration: the static base splat with default settings generalises between the views of a tiny 360° capture.

A ring of views around a ball, a box and a pillar on a checkerboard floor under a white sky (EyefulTower layout,
no seed points: the parser seeds at random), read by ``dynsplat-eyeful`` and trained with ``dynsplat-4dgs``'s
registered config (motion off, run-length schedules resolved as ``ns-train`` does; seed points from the datamanager
ns-train builds, which estimates them by stereo). Issue 17: the old defaults (random seeds, random background, no
opacity penalty, no pruning next to the cameras) fitted the training views with floaters and broke between them:
64x48, 1500 steps: train 18.5 dB, test 11.6 dB. Today's defaults: train 27.4, test 21.6 (stereo seeds alone: 16.0, a
white blob right in front of the held-out views between training cameras).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset
from quick_train import evaluate_psnr, quick_train

from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig
from dynsplat_ns.method_configs.fourdgs import fourdgs_method
from dynsplat_ns.scenes.ring360 import make_ring360_scene
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig
from dynsplat_ns.training.trainer import resolve_run_schedules

pytestmark = pytest.mark.slow

STEPS = 1500
#: Held-out views must reach this PSNR (dB) ...
MIN_TEST_PSNR = 19.0
#: ... and stay within this many dB of the training views.
MAX_GAP = 8.0


@pytest.fixture(scope="module")
def ring_scene(tmp_path_factory: pytest.TempPathFactory):
    return make_ring360_scene(tmp_path_factory.mktemp("ring360"), n_views=25, width=64, height=48, supersample=2)


def _images(dataset) -> list:
    return [dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]


def test_default_base_splat_generalises_around_a_360_ring(ring_scene):
    # the datamanager ns-train builds: it replaces the parser's random seed points by stereo estimates
    manager = DynsplatDatamanagerConfig(dataparser=EyefulDataParserConfig(data=ring_scene)).setup(device="cpu")
    train_out = manager.train_dataparser_outputs
    test_out = manager.dataparser.get_dataparser_outputs("test")
    train_imgs, test_imgs = _images(manager.train_dataset), _images(InputDataset(test_out))
    assert len(train_imgs) == 20 and len(test_imgs) == 5

    trainer_config = dataclasses.replace(fourdgs_method.config, max_num_iterations=STEPS)
    trainer_config, _ = resolve_run_schedules(trainer_config)
    model_config = dataclasses.replace(trainer_config.pipeline.model, disable_motion=True)
    meta = train_out.metadata
    torch.manual_seed(0)
    model = model_config.setup(
        scene_box=train_out.scene_box, num_train_data=len(train_imgs), metadata=meta, device="cpu",
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )  # fmt: skip
    quick_train(model, train_out.cameras, train_imgs, STEPS, trainer_config.optimizers)

    train_psnr = evaluate_psnr(model, train_out.cameras, train_imgs)
    test_psnr = evaluate_psnr(model, test_out.cameras, test_imgs)
    summary = f"train {train_psnr:.2f} dB, test {test_psnr:.2f} dB, {model.num_points} Gaussians"
    assert test_psnr >= MIN_TEST_PSNR, summary
    assert train_psnr - test_psnr <= MAX_GAP, summary
