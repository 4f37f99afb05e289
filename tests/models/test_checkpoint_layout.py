"""Model <-> pipeline contracts through explicit values: components declare their per-image/per-frame axes (nothing is
guessed from names or shapes), checkpoints load through ``load_checkpoint_state(state, ResumeInfo)``, the render time
reaches the regularisers through ``outputs``, and masked-region metrics come back from
``get_image_metrics_and_images(..., region_metrics=True)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
import torch
from model_helpers import load_split, make_model
from nerfstudio.data.scene_box import SceneBox
from quick_train import quick_train
from torch import Tensor, nn

from dynsplat_ns.checkpoints.state import ResumeInfo
from dynsplat_ns.method_configs.common import gaussian_optimizers
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion import MarblesMotionConfig, ShapeOfMotionConfig
from dynsplat_ns.motion.base import MotionModel, MotionModelConfig


@dataclass
class KnotMotionConfig(MotionModelConfig):
    """Test motion: per-Gaussian knots at the T + 1 frame boundaries, a T x T frame-to-frame table, a [T, 2] table."""

    _target: type = field(default_factory=lambda: KnotMotion)
    """Motion model class to instantiate."""
    declare: bool = True
    """Declare the per-frame axes (False: a model that forgot to)."""


class KnotMotion(MotionModel):
    """Shapes alone do not tell the frame axes of the knots (T + 1 entries) and of the transition table (two T axes);
    the bias table [T, 2] looks per-frame by shape, but only its declaration makes it so."""

    config: KnotMotionConfig
    needs_frames = True

    def __init__(self, config: KnotMotionConfig, num_frames: int = 1, aabb: Tensor | None = None) -> None:
        super().__init__(config, num_frames, aabb)
        self.transition = nn.Parameter(torch.zeros(self.num_frames, self.num_frames))
        self.frame_bias = nn.Parameter(torch.zeros(self.num_frames, 2))

    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"knots": torch.zeros(gaussians["means"].shape[0], self.num_frames + 1, 3)}

    def per_frame_state_keys(self) -> dict[str, int | tuple[int, ...]]:
        return {"knots": 1, "transition": (0, 1), "frame_bias": 0} if self.config.declare else {}


@dataclass
class TimeProbeConfig(MotionModelConfig):
    """Test motion whose regulariser reports the time it was given."""

    _target: type = field(default_factory=lambda: TimeProbe)
    """Motion model class to instantiate."""


class TimeProbe(MotionModel):
    def regularization(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        return {"time_probe": torch.tensor(float(t))}


def _model(num_images: int, num_frames: int, motion: MotionModelConfig):
    cfg = DynamicSplatModelConfig(motion=motion, sh_degree=1, rasterizer_backend="torch")
    gen = torch.Generator().manual_seed(0)
    return cfg.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])),
        num_train_data=num_images,
        metadata={"num_frames": num_frames},
        device="cpu",
        seed_points=(torch.rand(20, 3, generator=gen) - 0.5, torch.full((20, 3), 128, dtype=torch.uint8)),
    )


def test_built_in_motion_models_declare_their_frame_axes():
    assert _model(4, 5, MarblesMotionConfig()).per_frame_state_keys() == {"gauss_params.marble_offsets": 1}
    som = _model(4, 5, ShapeOfMotionConfig(num_bases=2)).per_frame_state_keys()
    assert som == {"motion.rots": 1, "motion.transls": 1}


def test_declared_frame_axes_resample_on_a_frame_subset_resume():
    """5 -> 3 frames: the knot table [N, T + 1, 3] and the [T, T] table are resampled along their declared axes
    (linear in time), although no axis has the new frame count's size or is the only one that changed."""
    old = _model(10, 5, KnotMotionConfig())
    with torch.no_grad():
        old.gauss_params["knots"].copy_(torch.linspace(0, 1, 6)[None, :, None].expand(20, 6, 3))
        u = torch.linspace(0, 1, 5)
        old.motion.transition.copy_(u[:, None] + 2 * u[None, :])
    new = _model(6, 3, KnotMotionConfig())
    row_maps = new.load_checkpoint_state(dict(old.state_dict()), ResumeInfo(row_map=tuple(range(6)), old_num_images=10))
    assert row_maps == {}  # no per-image tensors (camera optimizer off)
    knots = new.gauss_params["knots"]
    assert knots.shape == (20, 4, 3)
    torch.testing.assert_close(knots[0, :, 0], torch.linspace(0, 1, 4))
    v = torch.linspace(0, 1, 3)
    torch.testing.assert_close(new.motion.transition.detach(), v[:, None] + 2 * v[None, :])
    assert new.motion.frame_bias.shape == (3, 2)


def test_undeclared_frame_tables_are_an_error_not_a_guess():
    """A table nobody declared per-frame is not resampled because one of its sizes equals the frame count: loading
    names it instead of silently changing it."""
    old = _model(4, 5, KnotMotionConfig(declare=False))
    new = _model(4, 3, KnotMotionConfig(declare=False))
    with pytest.raises(ValueError, match=r"motion\.frame_bias: checkpoint \[5, 2\] vs model \[3, 2\]"):
        new.load_checkpoint_state(dict(old.state_dict()))


def test_a_declared_key_the_motion_model_does_not_have_is_named():
    model = _model(4, 3, KnotMotionConfig())
    model.motion.per_frame_state_keys = lambda: {"missing_table": 0}
    with pytest.raises(ValueError, match="KnotMotion declares .*'missing_table'"):
        model.per_frame_state_keys()


def test_render_time_reaches_the_regularisers_through_outputs(dnerf_scene):
    outputs, images = load_split(dnerf_scene, "train")
    model = make_model(outputs, TimeProbeConfig())
    quick_train(model, outputs.cameras, images, steps=1, optimizer_configs=gaussian_optimizers(10))
    model.train()
    camera = outputs.cameras[3:4]
    render = model(camera)
    assert render["time"] == pytest.approx(float(camera.times.reshape(-1)[0]))
    batch = {"image": images[3]}
    assert float(model.get_loss_dict(render, batch)["time_probe"]) == pytest.approx(render["time"])
    render["time"] = 0.25  # the loss follows the value it is given, not state left by the last render
    assert float(model.get_loss_dict(render, batch)["time_probe"]) == 0.25
    model.eval()
    with torch.no_grad():
        assert "time" not in model.get_outputs_for_camera(camera)  # eval outputs stay images (viewer choices)


def test_region_metrics_are_returned_on_request(dnerf_scene):
    outputs, images = load_split(dnerf_scene, "train")
    model = make_model(outputs, TimeProbeConfig())
    model.eval()
    with torch.no_grad():
        render = model.get_outputs_for_camera(outputs.cameras[0:1])
    mask = torch.zeros(images[0].shape[:2], dtype=torch.bool)
    mask[: mask.shape[0] // 2] = True
    batch = {"image": images[0], "dynamic_mask": mask}
    plain, _ = model.get_image_metrics_and_images(render, batch)
    assert not any(k.startswith("masked_") for k in plain)
    regions, _ = model.get_image_metrics_and_images(render, batch, region_metrics=True)
    assert regions["masked_fraction"] == pytest.approx(0.5) and "masked_psnr" in regions
    assert regions["psnr"] == pytest.approx(plain["psnr"])
    unmasked, _ = model.get_image_metrics_and_images(render, {"image": images[0]}, region_metrics=True)
    assert set(unmasked) == set(plain)
