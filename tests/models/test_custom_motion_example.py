"""The ~50-line custom motion model in examples/ plugs into DynamicSplatModel and trains."""

from __future__ import annotations

import torch
from model_helpers import load_split, make_model
from quick_train import quick_train
from script_loader import load_script

from dynsplat_ns.method_configs.common import gaussian_optimizers


def _load_example():
    """examples/custom_motion.py loaded by path, as a user would copy it (examples/ is not on sys.path)."""
    return load_script("examples/custom_motion.py")


VelocityMotionConfig = _load_example().VelocityMotionConfig


def test_custom_motion_example_trains(dnerf_scene):
    outputs, images = load_split(dnerf_scene, "train")
    # no opacity L1: in 21 steps it would lower every opacity below the cull threshold (= the initial opacity)
    model = make_model(
        outputs, VelocityMotionConfig(), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8, opacity_reg=0.0
    )
    assert not model.gauss_params["velocities"].any()
    opt = {**gaussian_optimizers(100), **model.config.motion.optimizer_configs(100)}
    losses = quick_train(model, outputs.cameras, images, steps=21, optimizer_configs=opt)
    assert sum(losses[-5:]) < sum(losses[:5])
    assert model.gauss_params["velocities"].shape == (model.num_points, 3)
    assert model.gauss_params["velocities"].abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(model.gaussians_at(0.0)["means"], model.gaussians_at(1.0)["means"])
