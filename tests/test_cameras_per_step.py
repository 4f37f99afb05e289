"""--pipeline.datamanager.cameras-per-step K: one step over K cameras equals the mean of K one-camera steps."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager
from nerfstudio.engine.optimizers import Optimizers

from dynsplat_ns.method_configs.som import som_method
from dynsplat_ns.training.trainer import resolve_run_schedules

STEP = 12  # a step without refine (the strategy only accumulates its statistics)


def make_pipeline(scene, cameras_per_step: int, **model_overrides):
    """A CPU dynsplat-som pipeline on the tiny D-NeRF scene, camera optimizer on (per-image parameters)."""
    config = dataclasses.replace(som_method.config, max_num_iterations=100)
    config.machine.device_type = "cpu"
    dm = dataclasses.replace(
        config.pipeline.datamanager, data=scene, stereo_seeds=0, cameras_per_step=cameras_per_step
    )
    model = dataclasses.replace(
        config.pipeline.model,
        sh_degree=1,
        rasterizer_backend="torch",
        camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"),
        **model_overrides,
    )
    config = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, datamanager=dm, model=model))
    resolved, _ = resolve_run_schedules(config)
    torch.manual_seed(0)
    pipeline = resolved.pipeline.setup(device="cpu", test_mode="val")
    optimizers = Optimizers(dict(resolved.optimizers), pipeline.get_param_groups())
    pipeline.train()
    pipeline.model.step_cb(optimizers, STEP)
    return pipeline


def train_step(pipeline) -> tuple[dict[str, torch.Tensor], dict]:
    """One step's gradients (by parameter name) and the strategy state after its post-backward statistics."""
    model = pipeline.model
    model.zero_grad(set_to_none=True)
    _, loss_dict, _ = pipeline.get_train_loss_dict(STEP)
    sum(loss_dict.values()).backward()
    model.step_post_backward(STEP)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return grads, model.strategy_state


def test_two_cameras_give_mean_of_single_camera_gradients(dnerf_scene):
    pair = make_pipeline(dnerf_scene, 2)
    single = make_pipeline(dnerf_scene, 1)
    for a, b in zip(pair.model.parameters(), single.model.parameters(), strict=True):
        assert torch.equal(a, b)  # identical start

    order = list(single.datamanager.train_unseen_cameras[:2])
    assert pair.datamanager.train_unseen_cameras[:2] == order
    pair_grads, pair_state = train_step(pair)
    first, _ = train_step(single)
    second, single_state = train_step(single)  # the strategy accumulates the statistics of both steps

    names = set(pair_grads)
    assert names == set(first) == set(second)
    assert {"gauss_params.means", "gauss_params.motion_coefs", "camera_optimizer.pose_adjustment"} <= names
    for name in names:
        mean = (first[name] + second[name]) / 2
        scale = mean.abs().max().clamp_min(1e-12)
        assert (pair_grads[name] - mean).abs().max() <= 1e-4 * scale, name
    adjust = pair_grads["camera_optimizer.pose_adjustment"]
    assert set(adjust.abs().sum(dim=1).nonzero().reshape(-1).tolist()) == set(order)  # each view its own row

    assert pair.model.info["n_cameras"] == 2
    assert torch.equal(pair_state["count"], single_state["count"])
    assert pair_state["count"].max() == 2
    torch.testing.assert_close(pair_state["grad2d"], single_state["grad2d"], rtol=1e-4, atol=1e-9)
    if pair_state.get("radii") is not None:
        torch.testing.assert_close(pair_state["radii"], single_state["radii"])


def test_one_camera_per_step_is_nerfstudios_order(dnerf_scene):
    """K = 1 takes nerfstudio's own next_train path (same images, same order); K = 3 takes the same stream, 3 at a
    time, and reports 3 images' pixels per step."""
    one = make_pipeline(dnerf_scene, 1).datamanager
    three = make_pipeline(dnerf_scene, 3).datamanager
    n = len(one.train_dataset)
    stream = []
    for step in range(n + 3):  # across a re-shuffle
        camera, batch = one.next_train(step)
        stream.append(camera.metadata["cam_idx"])
        assert batch["image_idx"] == stream[-1]
    reference = make_pipeline(dnerf_scene, 1).datamanager
    assert stream == [FullImageDatamanager.next_train(reference, s)[0].metadata["cam_idx"] for s in range(n + 3)]
    taken = []
    for step in range((n + 3) // 3):
        cameras, batches = three.next_train_views(step)
        assert cameras.shape == (3,)
        taken += cameras.metadata["cam_idx"].reshape(-1).tolist()
        assert [b["image_idx"] for b in batches] == taken[-3:]
    assert taken == stream
    assert three.get_train_rays_per_batch() == 3 * one.get_train_rays_per_batch()
    with pytest.raises(RuntimeError, match="next_train_views"):
        three.next_train(0)
