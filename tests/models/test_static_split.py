"""Static background / dynamic foreground (issue 14): static Gaussians skip the motion model, the flag stays in
lock-step with densification, seeding follows the motion masks, and without masks nothing changes."""

from __future__ import annotations

import pytest
import torch
from model_helpers import load_split, make_model, model_from_manager, small_hexplane
from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
from quick_train import quick_train
from torch.nn import Parameter

from dynsplat_ns.models.dynamic_splat import BASE_GAUSSIAN_KEYS
from dynsplat_ns.motion import MarblesMotionConfig, ShapeOfMotionConfig
from dynsplat_ns.motion.base import MOVABLE_KEYS
from dynsplat_ns.motion.static_gaussians import STATIC_KEY

MOTIONS = {
    "hexplane": lambda: small_hexplane(static_warmup_steps=0),
    "som": lambda: ShapeOfMotionConfig(num_bases=4, static_warmup_steps=0),
    "marbles": lambda: MarblesMotionConfig(static_warmup_steps=0),
}


def _flagged_model(scene, motion: str):
    """A model whose every other Gaussian is static, with a motion that is far from the identity."""
    outputs, images = load_split(scene, "train")
    torch.manual_seed(0)
    model = make_model(outputs, MOTIONS[motion]())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in [*model.motion.named_parameters(), *model.gauss_params.items()]:
            if name not in BASE_GAUSSIAN_KEYS:
                param.add_(0.2 * torch.randn(param.shape, generator=gen))
    n = model.num_points
    model.gauss_params[STATIC_KEY] = Parameter((torch.arange(n) % 2 == 0).float())
    return model, outputs, images


def _motion_params(model) -> dict[str, torch.Tensor]:
    """The motion model's global parameters and its per-Gaussian parameters."""
    own = {f"motion.{k}": p for k, p in model.motion.named_parameters()}
    per_gaussian = {k: p for k, p in model.gauss_params.items() if k not in (*BASE_GAUSSIAN_KEYS, STATIC_KEY)}
    return {**own, **per_gaussian}


@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_static_gaussians_do_not_move_and_get_no_motion_gradient(dnerf_scene, motion):
    model, outputs, _ = _flagged_model(dnerf_scene, motion)
    model.train()
    static = model.gauss_params[STATIC_KEY] > 0.5
    canonical = model.motion.canonical(dict(model.gauss_params.items()))
    states = [model.gaussians_at(0.0), model.gaussians_at(0.45), *model.gaussians_at_times([0.2, 1.0])]
    moved = False
    for state in states:
        for key in MOVABLE_KEYS:
            assert torch.equal(state[key][static], canonical[key][static]), (motion, key)
        moved |= bool((state["means"][~static] - canonical["means"][~static]).abs().max() > 1e-3)
    assert moved, "the dynamic Gaussians should move (the motion is perturbed away from the identity)"

    # Anything computed from the static Gaussians' states leaves every motion parameter without gradient.
    states = model.gaussians_at_times([0.3, 0.7])
    loss = sum(s[k][static].float().square().sum() for s in states for k in MOVABLE_KEYS)
    loss.backward()
    for name, param in _motion_params(model).items():
        assert param.grad is None or not param.grad.any(), (motion, name)

    # A render: the per-Gaussian motion parameters of static Gaussians get zero gradient, dynamic ones do not.
    model.zero_grad()
    model.eval()
    rgb = model.render_views(outputs.cameras[0:2], [0.3, 0.7])["rgb"]
    rgb.square().mean().backward()
    per_gaussian = {k: p for k, p in _motion_params(model).items() if not k.startswith("motion.")}
    for name, param in per_gaussian.items():
        assert not param.grad[static].any(), (motion, name)
    grads = [p.grad[~static].abs().sum() for p in per_gaussian.values()]
    grads += [
        p.grad.abs().sum() for k, p in _motion_params(model).items() if k.startswith("motion.") and p.grad is not None
    ]
    assert sum(grads) > 0, "the dynamic Gaussians should train the motion"


def test_densification_keeps_the_static_flag_in_lock_step(dnerf_scene):
    model, outputs, _ = _flagged_model(dnerf_scene, "som")
    static = model.gauss_params[STATIC_KEY] > 0.5
    with torch.no_grad():  # a marker that densification copies like any Gaussian parameter
        model.gauss_params["features_dc"][:, 0] = torch.where(static, 3.0, -3.0)
    groups = model.get_param_groups()
    config = {name: {"optimizer": AdamOptimizerConfig(lr=1e-3), "scheduler": None} for name in groups}
    config[STATIC_KEY]["optimizer"] = AdamOptimizerConfig(lr=0.0)
    optimizers = Optimizers(config, groups)
    strategy = model.strategy
    strategy.refine_start_iter, strategy.refine_every, strategy.pause_refine_after_reset = 0, 1, 0
    strategy.grow_grad2d = 0.0  # every Gaussian that received a gradient grows
    scales = torch.exp(model.gauss_params["scales"].detach()).amax(dim=-1)
    strategy.grow_scale3d = float(scales.median())  # about half duplicate, half split
    n_before, static_before = model.num_points, int(static.sum())

    model.train()
    for step in (1, 2):  # a refine step, then a training step on the densified Gaussians
        model.step_cb(optimizers, step)
        for k in range(2):
            model.get_outputs(outputs.cameras[k : k + 1])["rgb"].mean().backward()
        if step == 1:
            model.step_post_backward(step)
    flag = model.gauss_params[STATIC_KEY]
    assert model.num_points > n_before
    assert flag.shape[0] == model.num_points == model.gauss_params["means"].shape[0]
    assert torch.equal(flag > 0.5, model.gauss_params["features_dc"][:, 0] > 0), "flag out of step with its Gaussian"
    assert int((flag > 0.5).sum()) > static_before, "new Gaussians of static parents are static"
    assert int((flag < 0.5).sum()) > n_before - static_before, "new Gaussians of dynamic parents are dynamic"
    assert flag.grad is None, "the flag takes no part in the loss"


def test_seed_points_in_the_motion_masks_are_dynamic(d2rf_scene):
    from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    manager = DynsplatDatamanagerConfig(dataparser=D2RFDataParserConfig(data=d2rf_scene)).setup(device="cpu")
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig

    cfg = DynamicSplatModelConfig(motion=ShapeOfMotionConfig(num_bases=4), rasterizer_backend="torch")
    assert STATIC_KEY not in model_from_manager(cfg, manager).gauss_params, "off by default (auto: masks of files)"
    cfg.static_background = True
    flag = model_from_manager(cfg, manager).gauss_params[STATIC_KEY]
    # The generator's seed cloud: 200 points on the static slab, then 200 on the moving spheres (at t = 0), then the
    # foreground seeds unprojected from the masks with the dpt/ prior (models/dynamic_seeding.py).
    assert flag.shape[0] > 400
    assert float(flag[:200].mean()) > 0.6, "most of the slab is static"
    assert float(flag[200:400].mean()) < 0.1, "the spheres are dynamic"
    assert float(flag[400:].max()) == 0.0, "the unprojected foreground seeds are dynamic"


def test_without_masks_the_model_is_unchanged(dnerf_scene):
    """Static background and depth loss on, on data with neither masks nor depth: bit-identical training."""
    outputs, images = load_split(dnerf_scene, "train")
    runs = []
    for priors in (False, True):
        torch.manual_seed(0)
        extra = {"static_background": True, "depth_loss_weight": 0.5} if priors else {}
        model = make_model(outputs, ShapeOfMotionConfig(num_bases=4, static_warmup_steps=0), **extra)
        groups = model.get_param_groups()
        config = {name: {"optimizer": AdamOptimizerConfig(lr=1e-3), "scheduler": None} for name in groups}
        losses = quick_train(model, outputs.cameras, images, 4, config)
        with torch.no_grad():
            rgb = model.get_outputs_for_camera(outputs.cameras[0:1])["rgb"]
        runs.append((model, losses, rgb))
    (off, off_losses, off_rgb), (on, on_losses, on_rgb) = runs
    assert STATIC_KEY not in on.gauss_params and on.depth_loss is None
    assert on_losses == off_losses
    assert torch.equal(on_rgb, off_rgb)
    for key, value in off.gauss_params.items():
        assert torch.equal(value, on.gauss_params[key]), key
