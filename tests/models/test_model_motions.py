"""Every motion model inside DynamicSplatModel: identity at init, PSNR rises on a moving scene, clear config errors."""

from __future__ import annotations

import pytest
import torch
from model_helpers import load_split, make_model, small_hexplane
from quick_train import evaluate_psnr, quick_train

from dynsplat_ns.method_configs.common import gaussian_optimizers
from dynsplat_ns.motion import MarblesMotionConfig, ShapeOfMotionConfig

MOTIONS = {
    "4dgs": lambda: small_hexplane(static_warmup_steps=20),
    "som": lambda: ShapeOfMotionConfig(num_bases=4),
    "marbles": lambda: MarblesMotionConfig(),
}


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_split(dnerf_scene, "train")


@pytest.mark.parametrize("name", ["som", "marbles"])
def test_identity_at_init_equals_motion_disabled(train_split, name):
    outputs, _ = train_split
    model = make_model(outputs, MOTIONS[name]())
    static = make_model(outputs, MOTIONS[name](), disable_motion=True)
    static.load_state_dict(model.state_dict())
    model.eval()
    static.eval()
    for idx in (0, len(outputs.cameras) // 2, len(outputs.cameras) - 1):
        cam = outputs.cameras[idx : idx + 1]
        a, b = model.get_outputs_for_camera(cam)["rgb"], static.get_outputs_for_camera(cam)["rgb"]
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", ["som", "marbles"])
def test_short_training_raises_psnr_and_moves_gaussians(train_split, name):
    outputs, images = train_split
    torch.manual_seed(0)
    model = make_model(outputs, MOTIONS[name]())
    before = evaluate_psnr(model, outputs.cameras, images)
    opt = {**gaussian_optimizers(200), **model.config.motion.optimizer_configs(200)}
    quick_train(model, outputs.cameras, images, steps=60, optimizer_configs=opt)
    after = evaluate_psnr(model, outputs.cameras, images)
    assert after > before + 2.0, (before, after)
    with torch.no_grad():
        g0, g1 = model.gaussians_at(0.0)["means"], model.gaussians_at(1.0)["means"]
    assert (g0 - g1).norm(dim=-1).max() > 1e-3, "motion parameters never moved"


def test_som_densification_keeps_coefficients_in_lock_step(train_split):
    outputs, images = train_split
    model = make_model(outputs, MOTIONS["som"](), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8)
    opt = {**gaussian_optimizers(100), **model.config.motion.optimizer_configs(100)}
    n0 = model.num_points
    quick_train(model, outputs.cameras, images, steps=21, optimizer_configs=opt)
    assert model.num_points != n0
    assert model.gauss_params["motion_coefs"].shape == (model.num_points, 4)


def test_marbles_memory_cap_prunes_during_training(train_split):
    outputs, images = train_split
    frames = outputs.metadata["num_frames"]
    model = make_model(outputs, MarblesMotionConfig(), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8)
    cap = model.num_points + 10
    model.motion.config.max_motion_floats = cap * 3 * frames
    opt = {**gaussian_optimizers(100), **model.config.motion.optimizer_configs(100)}
    quick_train(model, outputs.cameras, images, steps=21, optimizer_configs=opt)
    assert model.num_points <= cap
    assert model.gauss_params["marble_offsets"].shape == (model.num_points, frames, 3)


@pytest.mark.parametrize("name", ["som", "marbles"])
def test_dataset_without_times_is_a_clear_error(train_split, name):
    outputs, _ = train_split
    outputs.metadata["num_frames"], saved = 1, outputs.metadata["num_frames"]
    try:
        with pytest.raises(ValueError, match="needs a dataset with times"):
            make_model(outputs, MOTIONS[name]())
    finally:
        outputs.metadata["num_frames"] = saved


def test_marbles_too_many_frames_for_the_cap_is_a_clear_error(train_split):
    outputs, _ = train_split
    with pytest.raises(ValueError, match="max_motion_floats"):
        make_model(outputs, MarblesMotionConfig(max_motion_floats=1000))
