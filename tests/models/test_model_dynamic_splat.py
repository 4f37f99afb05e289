"""DynamicSplatModel on CPU: renders, identity at init, training raises PSNR, densification lock-step, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
import torch
from model_helpers import load_split, make_model, small_hexplane
from quick_train import evaluate_psnr, quick_train
from torch import Tensor, nn

from dynsplat_ns.method_configs.common import gaussian_optimizers
from dynsplat_ns.motion import MotionModel, MotionModelConfig


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_split(dnerf_scene, "train")


def test_render_shapes_and_identity_at_init(train_split):
    outputs, images = train_split
    model = make_model(outputs, small_hexplane(static_warmup_steps=0))
    static = make_model(outputs, small_hexplane(static_warmup_steps=0), disable_motion=True)
    static.load_state_dict(model.state_dict())
    model.eval()
    static.eval()
    h, w = images[0].shape[:2]
    for idx in (0, len(images) - 1):
        cam = outputs.cameras[idx : idx + 1]
        out = model.get_outputs_for_camera(cam)
        ref = static.get_outputs_for_camera(cam)
        assert out["rgb"].shape == (h, w, 3) and out["depth"].shape == (h, w, 1)
        assert out["accumulation"].shape == (h, w, 1)
        assert torch.equal(out["rgb"], ref["rgb"])
        assert float(cam.times) != float(outputs.cameras[0].times) or idx == 0


def test_training_raises_psnr_and_motion_is_used(train_split):
    outputs, images = train_split
    torch.manual_seed(0)
    model = make_model(outputs, small_hexplane(static_warmup_steps=20))
    before = evaluate_psnr(model, outputs.cameras, images)
    opt = {**gaussian_optimizers(200), **model.config.motion.optimizer_configs(200)}
    losses = quick_train(model, outputs.cameras, images, steps=60, optimizer_configs=opt)
    after = evaluate_psnr(model, outputs.cameras, images)
    assert after > before + 2.0, (before, after)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert model.motion.active
    head = model.motion.pos_head[-1].weight
    assert head.abs().sum() > 0, "deformation head never trained"


@dataclass
class OffsetMotionConfig(MotionModelConfig):
    """Test motion: a per-Gaussian offset scaled by t."""

    _target: type = field(default_factory=lambda: OffsetMotion)


class OffsetMotion(MotionModel):
    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        n = gaussians["means"].shape[0]
        return {"offsets": torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3) * 1e-6}

    def deform(self, gaussians, t):
        out = super().deform(gaussians, t)
        out["means"] = gaussians["means"] + t * gaussians["offsets"]
        return out


def test_densification_keeps_per_gaussian_motion_params_in_lock_step(train_split):
    outputs, images = train_split
    model = make_model(
        outputs, OffsetMotionConfig(), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8,
        cull_alpha_thresh=0.005, stop_split_at=100,
    )
    n0 = model.num_points
    opt = {**gaussian_optimizers(100), "offsets": {"optimizer": gaussian_optimizers()["means"]["optimizer"],
                                                  "scheduler": None}}
    quick_train(model, outputs.cameras, images, steps=21, optimizer_configs=opt)  # refines at 16, 20
    n1 = model.num_points
    assert n1 != n0
    for name, p in model.gauss_params.items():
        assert p.shape[0] == n1, name
    # gsplat's strategy updated every optimizer's state along with the params
    for name, optimizer in model.optimizers.items():
        if name in model.gauss_params:
            state = optimizer.state[optimizer.param_groups[0]["params"][0]]
            assert state["exp_avg"].shape[0] == n1, name


def test_max_gaussians_caps_growth(train_split):
    outputs, images = train_split
    model = make_model(outputs, small_hexplane(), warmup_length=2, refine_every=4, densify_grad_thresh=1e-8)
    cap = model.num_points + 5
    model.config.max_gaussians = cap
    quick_train(model, outputs.cameras, images, steps=21, optimizer_configs={
        **gaussian_optimizers(100), **model.config.motion.optimizer_configs(100)})
    assert model.num_points <= cap
    assert all(p.shape[0] == model.num_points for p in model.gauss_params.values())


def test_eval_metrics_report_no_lpips_without_weights(train_split, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    outputs, images = train_split
    model = make_model(outputs, small_hexplane())
    model.eval()
    out = model.get_outputs_for_camera(outputs.cameras[0:1])
    metrics, imgs = model.get_image_metrics_and_images(out, {"image": images[0]})
    assert set(metrics) == {"psnr", "ssim"}
    assert model.lpips.hint and str(tmp_path) in model.lpips.hint
    assert imgs["img"].shape == (images[0].shape[0], 2 * images[0].shape[1], 3)


def test_unknown_backend_for_cpu_tensors_is_a_clear_error(train_split):
    outputs, _ = train_split
    model = make_model(outputs, small_hexplane(), rasterizer_backend="gsplat")
    model.eval()
    with pytest.raises(ValueError, match="CUDA"):
        model.get_outputs_for_camera(outputs.cameras[0:1])


def test_motion_parameters_are_registered_modules(train_split):
    outputs, _ = train_split
    model = make_model(outputs, small_hexplane())
    groups = model.get_param_groups()
    assert {"hexplane_grid", "hexplane_mlp", "means"} <= set(groups)
    assert isinstance(model.motion, nn.Module)
    assert any(k.startswith("motion.") for k in model.state_dict())
