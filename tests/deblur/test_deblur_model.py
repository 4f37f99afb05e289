"""dynsplat-deblur's blur model (issue 12 §2): identity at initialisation, the K-view mean, learnable trajectories and
exposure times, sharp evaluation, resumable per-image/per-frame tables and trainer-built optimizer groups."""

from __future__ import annotations

import pytest
import torch
from deblur_helpers import COMMON, build, deblur_config, load_train, optimizer_configs, som, train_camera, train_step
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from nerfstudio.engine.optimizers import Optimizers

from dynsplat_ns.checkpoints.state import ResumeInfo
from dynsplat_ns.deblur.base import BlurStep, VirtualViews
from dynsplat_ns.deblur.exposure import EXPOSURE_GROUP
from dynsplat_ns.deblur.time_gradient import time_velocities
from dynsplat_ns.deblur.trajectory import TRAJECTORY_GROUP
from dynsplat_ns.models.dynamic_splat import DynamicSplatModel, DynamicSplatModelConfig

IMAGE = 3  # a training image away from both ends of the sequence (sub-times are not clamped)


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_train(dnerf_scene)


def _step(model, outputs, images, index=IMAGE):
    return train_step(model, outputs, images, index)


def _grads(model, prefixes=("gauss_params.", "motion.")):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None and n.startswith(prefixes)}


def _moving(model, seed=1):
    """Shape-of-Motion bases away from the identity, so different times differ."""
    with torch.no_grad():
        model.motion.transls.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed))


def test_identity_at_init_outputs_gradients_and_statistics(train_split):
    """With defaults (K = 7, camera and object blur), the first step renders, back-propagates and feeds the
    densification statistics like the same model with blur off and like plain dynsplat-som; with blur off it is
    plain dynsplat-som. The one intended difference: the sub-times spread over the exposure, so the gradient of the
    per-frame motion bases is shared with the neighbouring frames (summed over frames it is the same). The default
    start of the trajectories is a 1e-5 random offset (to leave the stationary point at zero); at 0 the identity is
    exact, and with the default it holds to rounding-level pixels."""
    outputs, images = train_split
    blur, _ = build(outputs, deblur_config(trajectory_init_std=0.0))
    noisy, _ = build(outputs, deblur_config())
    assert noisy.config.trajectory_init_std == 1e-5
    off, _ = build(outputs, deblur_config(camera_blur=False, object_blur=False))
    plain, _ = build(outputs, DynamicSplatModelConfig(motion=som(), **COMMON))
    assert blur.config.num_virtual_views == 7
    results = {}
    for name, model in {"blur": blur, "off": off, "plain": plain, "noisy": noisy}.items():
        out = _step(model, outputs, images)
        state = model.strategy_state
        results[name] = (out["rgb"].detach(), _grads(model), state["grad2d"].clone(), state["count"].clone())
    assert len(set(blur.info["radii"].shape[:1])) == 1 and blur.info["n_cameras"] == 7  # K views in one merged meta
    per_frame = blur.per_frame_state_keys()
    assert set(per_frame) == {"motion.rots", "motion.transls", "exposure.logits"}

    def close(a, b, msg):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()) + 1e-8, msg=msg)

    torch.testing.assert_close(results["noisy"][0], results["plain"][0], rtol=0, atol=2e-3)
    assert not torch.equal(results["noisy"][0], results["plain"][0])
    for first, second in (("off", "plain"), ("blur", "off"), ("blur", "plain")):
        rgb, grads, grad2d, count = results[first]
        o_rgb, o_grads, o_grad2d, o_count = results[second]
        torch.testing.assert_close(rgb, o_rgb, rtol=0, atol=1e-6)
        assert grads.keys() == o_grads.keys() and len(grads) >= 7
        for name, g in grads.items():
            if first == "blur" and name in per_frame:
                assert (g != 0).sum() > (o_grads[name] != 0).sum()  # shared with the neighbouring frames
                close(g.sum(dim=per_frame[name]), o_grads[name].sum(dim=per_frame[name]), f"{first}/{second}: {name}")
            else:
                close(g, o_grads[name], f"{first}/{second}: {name}")
        # Each virtual view counts as one view; the mean loss makes each view's statistic the plain one.
        views = 7 if first == "blur" else 1
        torch.testing.assert_close(count, views * o_count)
        seen = o_count > 0
        assert int(seen.sum()) > 0
        torch.testing.assert_close(grad2d[seen] / count[seen], o_grad2d[seen] / o_count[seen], rtol=1e-4, atol=1e-9)


def _manual_virtual_views(model, camera, K):
    """The K virtual views rendered one by one by the plain model (own pose/time arithmetic; a centered trajectory
    runs through the image's pose at mid-exposure)."""
    knots = model.trajectory.knots[IMAGE].detach()
    mid = 0.5 * (knots[0] + knots[1]) if model.config.trajectory_centered else torch.zeros(6)
    T = model.exposure.num_frames
    t = float(camera.times)
    e = 0.1 + 0.8 * torch.sigmoid(model.exposure.logits[round(t * (T - 1))].detach())
    renders = []
    for k in range(K):
        u = k / (K - 1)
        delta = exp_map_SO3xR3(((1 - u) * knots[0] + u * knots[1] - mid)[None])[0]  # [3, 4]
        c2w = camera.camera_to_worlds[0]
        pose = torch.cat([c2w[:, :3] @ delta[:, :3], c2w[:, :3] @ delta[:, 3:] + c2w[:, 3:]], dim=1)
        view = train_camera(model.kwargs["_outputs"], IMAGE)
        view.camera_to_worlds = pose[None]
        view.times = torch.tensor([[t + (u - 0.5) * float(e) / (T - 1)]])
        renders.append(DynamicSplatModel.get_outputs(model, view)["rgb"].detach())
    return torch.stack(renders).mean(dim=0)


def test_virtual_view_mean_equals_manual_mean_and_gradients_reach_blur(train_split):
    """The training prediction is the mean of the K virtual renders (poses along the trajectory, sub-times over the
    exposure); the image's trajectory row and the frame's exposure get gradients, other rows none."""
    outputs, images = train_split
    K = 5
    model, _ = build(outputs, deblur_config(num_virtual_views=K))
    model.kwargs["_outputs"] = outputs
    _moving(model)
    with torch.no_grad():
        model.trajectory.knots.normal_(0.0, 0.03, generator=torch.Generator().manual_seed(2))
        model.exposure.logits.fill_(0.7)
    camera = train_camera(outputs, IMAGE)
    out = model(camera)
    assert len(set(out["times"])) == K
    torch.testing.assert_close(out["rgb"].detach(), _manual_virtual_views(model, camera, K), rtol=0, atol=2e-5)

    cotangent = torch.rand(out["rgb"].shape, generator=torch.Generator().manual_seed(3))
    (out["rgb"] * cotangent).sum().backward()
    frame = model.exposure.frame_index(float(camera.times))
    assert model.trajectory.knots.grad[IMAGE].abs().min() > 0
    others = [i for i in range(model.trajectory.knots.shape[0]) if i != IMAGE]
    assert model.trajectory.knots.grad[others].abs().max() == 0
    assert model.exposure.logits.grad[frame] != 0 and model.exposure.logits.grad.count_nonzero() == 1


def test_sub_time_gradient_is_the_motion_models_time_derivative(train_split):
    """Motion models take float times; the deblur model adds the gradient path to a sub-time without changing any
    value: d/dtau of a function of the Gaussians at tau equals its finite difference in time (SoM is smooth between
    frames; full renders are not smooth enough at 32 px for a finite difference)."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config())
    _moving(model)
    tau = torch.tensor([0.26], requires_grad=True)  # a differentiable view time (between frames 2 and 3 of 12)
    t = float(tau.detach())  # the float time the render evaluates the motion model at
    plain = model.gaussians_at_times([t])[0]

    def motion_at(ts):
        return model.motion(dict(model.gauss_params.items()), torch.tensor(ts, dtype=torch.float64))

    velocities = {t: time_velocities([t], {t: tau[0]}, motion_at)[0]}
    views = VirtualViews(poses=torch.eye(4)[None, :3], times=tau, velocities=velocities)
    step = BlurStep(image=IMAGE, time=t, pose=torch.eye(4)[:3], positions=torch.tensor([0.5]), motion_at=motion_at)
    step.views = views
    state = model.gaussians_at_times([t], step)[0]  # the render's call during that step
    weights = {k: torch.randn(state[k].shape, generator=torch.Generator().manual_seed(5)) for k in ("means", "quats")}

    def objective(s):
        return sum((s[k] * w).sum() for k, w in weights.items())

    for key in plain:
        assert torch.equal(state[key], plain[key]), key
    objective(state).backward()
    h = 1e-3
    with torch.no_grad():
        lo, hi = (objective(model.gaussians_at_times([x])[0]) for x in (t - h, t + h))
    numeric = float(hi - lo) / (2 * h)
    assert float(tau.grad) != 0
    assert float(tau.grad) == pytest.approx(numeric, rel=1e-3)


def test_short_fit_moves_trajectory_and_exposure_towards_the_blur(train_split):
    """A tiny synthetic blurred target (mean of 3 renders shifted along the camera's x axis, over a long exposure of a
    moving scene): fitting only the trajectory and the exposure lowers the loss, opens the trajectory along x and
    lengthens the exposure."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(num_virtual_views=3, trajectory_lr=1e-2))  # the mechanics, fast
    _moving(model)
    camera = train_camera(outputs, IMAGE)
    t, T = float(camera.times), model.exposure.num_frames
    model.eval()
    with torch.no_grad():
        views = []
        for s in (-1.0, 0.0, 1.0):
            view = train_camera(outputs, IMAGE)
            view.camera_to_worlds = view.camera_to_worlds.clone()
            view.camera_to_worlds[0, :, 3] += s * 0.05 * view.camera_to_worlds[0, :, 0]  # along the camera's x axis
            view.times = torch.tensor([[t + s * 0.5 * 0.9 / (T - 1)]])
            views.append(model.get_outputs(view)["rgb"])
        target = torch.stack(views).mean(dim=0)
    model.train()
    configs = optimizer_configs(model.config, 30)
    groups = {name: model.get_param_groups()[name] for name in (TRAJECTORY_GROUP, EXPOSURE_GROUP)}
    optimizers = Optimizers({name: configs[name] for name in groups}, groups)
    frame = model.exposure.frame_index(t)
    e0 = float(model.exposure.fraction(frame).detach())
    losses = []
    for _ in range(30):
        loss = (model(camera)["rgb"] - target).abs().mean()
        optimizers.zero_grad_all()
        loss.backward()
        optimizers.optimizer_step_all()
        losses.append(loss.item())
    start, end = model.trajectory.endpoints(IMAGE)
    assert losses[-1] < 0.8 * losses[0]  # centered (default): the spread opens from the stationary point at zero
    assert float(model.exposure.fraction(frame).detach()) > e0 + 0.03
    spread = (end - start).detach()
    assert abs(float(spread[0])) > 0.05 and abs(float(spread[0])) == float(spread[:3].abs().max())  # along x, the most


def test_eval_renders_sharp_at_the_plain_pose_and_frame_time(train_split):
    """Outside training (eval, viewer, ns-render) the model renders the plain pose at the frame time, whatever the
    trajectories and exposures learned."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config())
    plain, _ = build(outputs, DynamicSplatModelConfig(motion=som(), **COMMON))
    for m in (model, plain):
        _moving(m)
    with torch.no_grad():
        model.trajectory.knots.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(4))
        model.exposure.logits.fill_(2.0)
    model.eval()
    plain.eval()
    camera = train_camera(outputs, IMAGE)
    with torch.no_grad():
        sharp = model.get_outputs(camera)["rgb"]
        torch.testing.assert_close(sharp, plain.get_outputs(camera)["rgb"], rtol=0, atol=1e-6)
    model.train()
    assert (model.get_outputs(camera)["rgb"].detach() - sharp).abs().max() > 1e-3  # training does blur


def test_tables_are_declared_saved_and_remapped_on_resume(train_split):
    """The trajectory table is per-image (rows follow image names on resume) and the exposure table per-frame
    (resampled in time when the number of frames changed); both are in the checkpoint."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config())
    assert model.per_image_state_keys()["trajectory.knots"] == 0
    assert model.per_frame_state_keys()["exposure.logits"] == 0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n, T = state["trajectory.knots"].shape[0], state["exposure.logits"].shape[0]
    assert state["trajectory.knots"].shape == (n, 2, 6) and T == model.motion.num_frames
    state["trajectory.knots"] = torch.arange(n * 12, dtype=torch.float32).reshape(n, 2, 6)
    state["exposure.logits"] = torch.linspace(-1.0, 1.0, 2 * T - 1)  # a checkpoint over twice as many frames

    fresh, _ = build(outputs, deblur_config())
    rows = tuple(reversed(range(n)))  # the dataset lists the checkpoint's images in reverse order
    row_maps = fresh.load_checkpoint_state(state, ResumeInfo(row_map=rows, old_num_images=n))
    assert row_maps["trajectory.knots"].rows == rows
    torch.testing.assert_close(fresh.trajectory.knots.detach(), state["trajectory.knots"].flip(0))
    torch.testing.assert_close(fresh.exposure.logits.detach(), torch.linspace(-1.0, 1.0, T))

    # A checkpoint from before the shared shutter (per-frame logits only) loads with the shutter at 0.
    old = {k: v for k, v in state.items() if k != "exposure.base"}
    older, _ = build(outputs, deblur_config())
    older.load_checkpoint_state(old, ResumeInfo(row_map=rows, old_num_images=n))
    assert older.exposure.base.item() == 0.0
    expected = 0.1 + 0.8 * torch.sigmoid(torch.linspace(-1.0, 1.0, T))  # the old model's exposures, unchanged
    torch.testing.assert_close(older.exposure.fraction().detach(), expected)

    plain_state = {k: v for k, v in state.items() if not k.startswith(("trajectory.", "exposure."))}
    with pytest.raises(RuntimeError, match="trajectory.knots"):
        build(outputs, deblur_config())[0].load_checkpoint_state(plain_state)


def test_trainer_builds_the_deblur_groups_from_the_final_config():
    """The trajectory/exposure optimizer groups come from the parsed flags at run start, like the motion groups."""
    import dataclasses

    from dynsplat_ns.method_configs.deblur import deblur_method
    from dynsplat_ns.training.trainer import resolve_run_schedules

    config = deblur_method.config
    assert TRAJECTORY_GROUP not in config.optimizers and EXPOSURE_GROUP not in config.optimizers
    assert config.method_name == "dynsplat-deblur"
    model = dataclasses.replace(config.pipeline.model, trajectory_lr=3e-4)
    config = dataclasses.replace(
        config, max_num_iterations=500, pipeline=dataclasses.replace(config.pipeline, model=model)
    )
    used, info = resolve_run_schedules(config)
    assert used.optimizers[TRAJECTORY_GROUP]["optimizer"].lr == 3e-4
    assert used.optimizers[TRAJECTORY_GROUP]["scheduler"].max_steps == 500
    assert used.optimizers[EXPOSURE_GROUP]["optimizer"].lr == model.exposure_lr
    assert "motion_bases" in used.optimizers and TRAJECTORY_GROUP in info.motion_groups
    again, _ = resolve_run_schedules(used)  # resolving twice changes nothing
    assert again.optimizers.keys() == used.optimizers.keys()
