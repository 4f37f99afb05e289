"""dynsplat-deblur's blur types behind one interface (issue 28): the model composes its components in a fixed order,
each declares its parameters and per-image / per-frame tables (checkpoint keys as before), the step's state is one
explicit BlurStep handed to every hook and to the loss, and the evaluation filter follows the crop box without riding
in the Gaussian dict."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import pytest
import torch
from deblur_helpers import COMMON, build, deblur_config, load_train, optimizer_configs, som, train_camera, train_step
from nerfstudio.data.scene_box import OrientedBox

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, VirtualViews
from dynsplat_ns.deblur.defocus import DefocusBlur
from dynsplat_ns.deblur.exposure import ExposureTimes
from dynsplat_ns.deblur.model import BLUR_STEP, DeblurSplatModelConfig
from dynsplat_ns.deblur.trajectory import ExposureTrajectory

IMAGE = 3
#: Every deblur table of a checkpoint (defocus with one aperture per image), named as before the components.
DEBLUR_KEYS = {
    "trajectory.knots", "exposure.logits", "exposure.base", "defocus.coc_sq", "defocus.focus_rel", "defocus.ref_depth",
    "defocus.view_viewmat", "defocus.view_camera", "defocus.view_time",
}  # fmt: skip


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_train(dnerf_scene)


@dataclass
class RecorderConfig(BlurComponentConfig):
    """A component that records the step of every hook call and grows the Gaussians by zero (the identity)."""

    _target: type = field(default_factory=lambda: Recorder)
    """Blur component class to instantiate."""


class Recorder(BlurComponent):
    grows_gaussians = True

    def __init__(self, config: RecorderConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__(config, num_images, num_frames)
        self.calls: list[tuple[str, BlurStep]] = []

    def acts_on(self, step):
        return True

    def expand(self, step, views):
        self.calls.append(("expand", step))
        return views

    def view_variance(self, step, view, depths):
        self.calls.append(("view_variance", step))
        return None

    def combine(self, step, renders, rgb):
        self.calls.append(("combine", step))
        return rgb

    def loss(self, step):
        self.calls.append(("loss", step))
        return {}


@dataclass
class RecordingDeblurConfig(DeblurSplatModelConfig):
    """dynsplat-deblur plus a :class:`Recorder` after its own components."""

    def blur_component_configs(self) -> dict[str, BlurComponentConfig | None]:
        return {**super().blur_component_configs(), "recorder": RecorderConfig()}


def test_components_compose_in_a_fixed_order_with_their_optimizer_groups(train_split):
    outputs, _ = train_split
    plain, _ = build(outputs, deblur_config())
    assert list(plain.blur_components()) == ["trajectory", "exposure"] and plain.defocus is None
    assert isinstance(plain.trajectory, ExposureTrajectory) and isinstance(plain.exposure, ExposureTimes)
    config = deblur_config(defocus=True, camera_blur=False)
    model, _ = build(outputs, config)
    components = model.blur_components()
    assert list(components) == ["trajectory", "exposure", "defocus"] and isinstance(model.defocus, DefocusBlur)
    assert not components["trajectory"].spreads_exposure and components["exposure"].spreads_exposure  # the flags
    groups, configs = model.get_param_groups(), optimizer_configs(config, 10)
    for component in components.values():
        for name, params in component.param_groups().items():
            assert groups[name] == params and name in configs  # the trainer builds every component's group
    assert configs["deblur_aperture"]["optimizer"].lr == config.defocus_aperture_lr
    assert configs["deblur_trajectory"]["optimizer"].lr == config.trajectory_lr


def test_each_component_declares_its_per_image_and_per_frame_tables(train_split):
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True, defocus_shared_aperture=False))
    state = model.state_dict()
    assert {k for k in state if k.startswith(("trajectory.", "exposure.", "defocus."))} == DEBLUR_KEYS
    per_image, per_frame = model.per_image_state_keys(), model.per_frame_state_keys()
    n, T = len(outputs.image_filenames), model.motion.num_frames
    for name, component in model.blur_components().items():
        for key, axis in component.per_image_state_keys().items():
            assert per_image[f"{name}.{key}"] == axis and state[f"{name}.{key}"].shape[axis] == n
        for key, axis in component.per_frame_state_keys().items():
            assert per_frame[f"{name}.{key}"] == axis and state[f"{name}.{key}"].shape[axis] == T
    assert {k for k in per_image if k.startswith(("trajectory.", "defocus."))} == DEBLUR_KEYS - {
        "exposure.logits", "exposure.base"}  # fmt: skip
    assert {k for k in per_frame if k.startswith("exposure.")} == {"exposure.logits"}


def test_the_step_is_one_explicit_value_handed_to_every_hook_and_to_the_loss(train_split):
    outputs, images = train_split
    K = 3
    model, _ = build(outputs, RecordingDeblurConfig(motion=som(), num_virtual_views=K, **COMMON))
    train_step(model, outputs, images, 0)  # a first step sets the inherited per-step attributes (info, ...)
    attributes = set(vars(model))
    model.recorder.calls.clear()
    out = train_step(model, outputs, images, IMAGE)
    step = out[BLUR_STEP]
    assert isinstance(step, BlurStep) and step.image == IMAGE and step.num_views == K
    assert step.time == pytest.approx(float(outputs.cameras.times[IMAGE]))
    assert isinstance(step.views, VirtualViews) and step.views.poses.shape == (K, 3, 4) and step.views.velocities
    kinds = [kind for kind, _ in model.recorder.calls]
    assert kinds == ["expand"] + ["view_variance"] * K + ["combine", "loss"]  # one growth per view (K times)
    assert all(seen is step for _, seen in model.recorder.calls)
    assert len(step.view_metas) == K and all(len(metas) == 1 for metas in step.view_metas)  # one meta per view
    # The model keeps nothing of the step: no new attribute, no BlurStep anywhere on it.
    assert set(vars(model)) == attributes
    assert not any(isinstance(v, BlurStep) for v in vars(model).values())
    # The loss reads the step it is given: another image's step regularises that image's trajectory.
    other = dataclasses.replace(step, image=5)
    loss = model.get_loss_dict({**out, BLUR_STEP: other}, {"image": images[IMAGE]})
    expected = model.config.trajectory_magnitude_weight * model.trajectory.knots[5].square().mean()
    torch.testing.assert_close(loss["trajectory_magnitude"], expected)


def _open_aperture(model, outputs) -> None:
    """Training renders of IMAGE with an open aperture: its focus set and its training camera remembered."""
    model(train_camera(outputs, IMAGE))
    with torch.no_grad():
        model.defocus.coc_sq.fill_(100.0)
        model.defocus.focus_rel[IMAGE] = 1.0 / 0.6
    model(train_camera(outputs, IMAGE))


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # nerfstudio's OrientedBox.within
def test_the_evaluation_filter_follows_the_crop_box(train_split):
    """Sharp renders with the filter and a crop box draw the kept Gaussians grown by their own filter variance: as a
    model holding only those Gaussians renders them; a box that keeps none renders empty."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1))
    _open_aperture(model, outputs)
    model.eval()
    camera = train_camera(outputs, IMAGE)
    var3d = model.eval_filter_variance()
    assert var3d is not None and bool((var3d > 0).any())
    with torch.no_grad():
        means = model.gaussians_at(camera.times.item())["means"]
        centre = means.median(dim=0).values
        model.crop_box = OrientedBox(R=torch.eye(3), T=centre, S=torch.full((3,), 0.6))
        keep = model.crop_box.within(means).squeeze()
        assert 0 < int(keep.sum()) < keep.numel()
        cropped = model.get_outputs(camera)["rgb"]
        only_kept = copy.deepcopy(model)
        only_kept.crop_box = None
        only_kept.gauss_params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v[keep]) for k, v in model.gauss_params.items()}
        )
        torch.testing.assert_close(only_kept.eval_filter_variance(), var3d[keep])
        torch.testing.assert_close(cropped, only_kept.get_outputs(camera)["rgb"], rtol=0, atol=1e-6)
        model.crop_box = OrientedBox(R=torch.eye(3), T=centre + 100.0, S=torch.full((3,), 0.01))
        empty = model.get_outputs(camera)
    assert float(empty["accumulation"].max()) == 0.0
