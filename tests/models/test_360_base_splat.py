"""Integration: the static base splat with default settings generalises between the views of a tiny 360° capture.

A ring of views around a ball, a box and a pillar on a checkerboard floor under a white sky (EyefulTower layout,
no seed points: the parser seeds at random), read by ``dynsplat-eyeful`` and trained with ``dynsplat-4dgs``'s
registered config (motion off, run-length schedules resolved as ``ns-train`` does). Issue 17: with the old defaults
the splat fitted the training views with floaters and broke between them (the held-out views scored far below the
training views). Measured with the defaults of this writing (1500 steps, 1 core, ~55 s): train 16.9 dB, test 11.6 dB,
19.8 k Gaussians; no default change tried so far closes the gap, so the test is a strict xfail until one does (it
then XPASSes, which fails the run: remove the marker).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig
from dynsplat_ns.method_configs.fourdgs import fourdgs_method
from nerfstudio.data.datasets.base_dataset import InputDataset

from dynsplat_ns.models.quick_train import evaluate_psnr, quick_train
from dynsplat_ns.scenes.ring360 import make_ring360_scene
from dynsplat_ns.trainer import resolve_run_schedules

pytestmark = pytest.mark.slow

STEPS = 1500
#: Held-out views must reach this PSNR (dB) ...
MIN_TEST_PSNR = 20.0
#: ... and stay within this many dB of the training views.
MAX_GAP = 4.0


@pytest.fixture(scope="module")
def ring_scene(tmp_path_factory: pytest.TempPathFactory):
    return make_ring360_scene(tmp_path_factory.mktemp("ring360"), n_views=25, width=48, height=36, supersample=2)


def _split(parser, split: str):
    outputs = parser.get_dataparser_outputs(split)
    dataset = InputDataset(outputs)
    return outputs, [dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]


@pytest.mark.xfail(strict=True, reason="issue 17: the base splat overfits 360° rings with the current defaults")
def test_default_base_splat_generalises_around_a_360_ring(ring_scene):
    parser = EyefulDataParserConfig(data=ring_scene).setup()
    train_out, train_imgs = _split(parser, "train")
    test_out, test_imgs = _split(parser, "test")
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
