"""The ~50-line custom motion model in examples/ plugs into DynamicSplatModel and trains."""

from __future__ import annotations

import torch
from custom_motion import VelocityMotionConfig
from dynsplat_ns.method_configs.common import gaussian_optimizers
from model_helpers import load_split, make_model

from dynsplat_ns.models.quick_train import quick_train


def test_custom_motion_example_trains(dnerf_scene):
    outputs, images = load_split(dnerf_scene, "train")
    model = make_model(outputs, VelocityMotionConfig(), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8)
    assert not model.gauss_params["velocities"].any()
    opt = {**gaussian_optimizers(100), **model.config.motion.optimizer_configs(100)}
    losses = quick_train(model, outputs.cameras, images, steps=21, optimizer_configs=opt)
    assert sum(losses[-5:]) < sum(losses[:5])
    assert model.gauss_params["velocities"].shape == (model.num_points, 3)
    assert model.gauss_params["velocities"].abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(model.gaussians_at(0.0)["means"], model.gaussians_at(1.0)["means"])
