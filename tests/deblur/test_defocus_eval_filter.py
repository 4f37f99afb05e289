"""dynsplat-deblur's evaluation filter with defocus: each Gaussian is drawn no sharper than the sharpest training view
saw it (its smallest circle of confusion over the remembered training cameras that hold it in their frame). Training
renders are unchanged; evaluation is blurred only where no training view was in focus; the remembered cameras are
saved, follow their images on resume, and an older checkpoint without them loads with the filter off."""

from __future__ import annotations

import math

import pytest
import torch
from deblur_helpers import build, deblur_config, load_train, train_camera

from dynsplat_ns.checkpoints.state import ResumeInfo
from dynsplat_ns.deblur.defocus import DefocusBlur, DefocusBlurConfig
from dynsplat_ns.deblur.growth import grow_in_view
from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.models.dynamic_splat import DynamicSplatModel

IMAGE = 3
#: A 32×32 pinhole (fx = 50) looking down +z from the origin (OpenCV world-to-camera = identity).
K = torch.tensor([[50.0, 0.0, 16.0], [0.0, 50.0, 16.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_train(dnerf_scene)


def _blur_with_two_views() -> DefocusBlur:
    """Two images seen from the same camera at times 0 and 1: image 0 focused at depth 2, image 1 at depth 4, one
    aperture of b = 3 px (circle of confusion at half the focus distance)."""
    blur = DefocusBlurConfig(shared_aperture=False).setup(num_images=3)
    with torch.no_grad():
        blur.coc_sq.fill_(9.0)
        blur.ref_depth[:2] = 3.0
        blur.focus_rel[0], blur.focus_rel[1] = 1.5, 0.75  # focus z0 / q = 2 and 4
    blur.remember_view(0, torch.eye(4), K, 32, 32, 0.0)
    blur.remember_view(1, torch.eye(4), K, 32, 32, 1.0)
    return blur


def test_sharpest_blur_is_the_smallest_circle_of_confusion_of_the_views_that_saw_it():
    blur = _blur_with_two_views()
    # a: at image 0's focus; b: at image 1's; c: between the foci; d: out of both frames; e: behind the camera.
    # Gaussian c moves at time 1 out of the frame: only image 0 (time 0) saw it.
    at = {
        0.0: torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.0, 4.0], [0.0, 0.1, 3.0], [5.0, 0.0, 3.0], [0.0, 0.0, -1.0]]),
        1.0: torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.0, 4.0], [9.0, 0.1, 3.0], [5.0, 0.0, 3.0], [0.0, 0.0, -1.0]]),
    }
    asked: list[float] = []
    s = blur.sharpest_blur(lambda t: asked.append(t) or at[t])
    assert asked == [0.0, 1.0]  # the Gaussians once per remembered time
    c_world = 3.0 * abs(3.0 - 1.5 * 3.0) / 50.0  # b |z0 - q z| / fx: image 0's blur at depth 3
    torch.testing.assert_close(s, torch.tensor([0.0, 0.0, c_world, 0.0, 0.0]))
    # Nothing remembered yet (a fresh model): no filter.
    assert DefocusBlurConfig(shared_aperture=False).setup(num_images=2).sharpest_blur(lambda t: at[t]).numel() == 0


def test_grow_in_view_is_the_identity_at_zero_variance_and_conserves_energy():
    torch.manual_seed(0)
    N = 5
    means = torch.stack([torch.randn(N) * 0.05, torch.randn(N) * 0.05, torch.linspace(1.5, 5.0, N)], dim=-1)
    quats, log_scales = torch.randn(N, 4), torch.log(torch.rand(N, 3) * 0.03 + 0.005)
    opacities = torch.rand(N) * 0.8 + 0.1
    same = grow_in_view(means, quats, log_scales, opacities, torch.eye(4), K, 32, 32, torch.zeros(N))
    assert torch.equal(same[0], log_scales.exp()) and torch.equal(same[1], opacities)
    var3d = torch.full((N,), 0.02**2)
    scales, opac = grow_in_view(means, quats, log_scales, opacities, torch.eye(4), K, 32, 32, var3d)
    torch.testing.assert_close(scales.square(), log_scales.exp().square() + var3d[:, None])
    assert bool((opac < opacities).all())  # spread wider, each point fainter


def _open_aperture(model, outputs) -> None:
    """Two training renders of IMAGE with an open aperture: the image's focus is set and its camera remembered."""
    model(train_camera(outputs, IMAGE))  # training renders (with gradients, for the strategy's statistics)
    with torch.no_grad():
        model.defocus.coc_sq.fill_(100.0)
        model.defocus.focus_rel[IMAGE] = 1.0 / 0.6  # focus nearer than the median depth: most Gaussians blurred
    model(train_camera(outputs, IMAGE))


def test_eval_draws_each_gaussian_as_sharp_as_its_sharpest_training_view(train_split):
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1))
    plain, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1, defocus_eval_filter=0.0))
    camera = train_camera(outputs, IMAGE)
    for m in (model, plain):
        _open_aperture(m, outputs)
    assert float(model.defocus.view_time[IMAGE]) == pytest.approx(float(camera.times.reshape(-1)[0]))
    assert math.isnan(float(model.defocus.view_time[0]))  # not trained yet
    trained = model(camera)["rgb"].detach()  # training renders are unchanged by the filter
    torch.testing.assert_close(trained, plain(camera)["rgb"].detach(), rtol=0, atol=0)
    with torch.no_grad():
        model.eval()
        plain.eval()
        filtered, sharp = model.get_outputs(camera)["rgb"], plain.get_outputs(camera)["rgb"]
    # The one remembered view is the training view itself: drawn as it saw them, the Gaussians give its training
    # render (the filter is its circle of confusion), not the sharp one.
    assert float((filtered - sharp).abs().max()) > 0.08
    assert float((filtered - trained).abs().max()) < 0.1 * float((filtered - sharp).abs().max())
    # The variance is cached between renders and follows the Gaussians: a changed count drops it until recomputed.
    var3d = model.eval_filter_variance()
    assert var3d is not None and var3d.shape == (model.num_points,) and bool((var3d > 0).any())
    assert model.eval_filter_variance() is var3d
    # Export (dynsplat-export-times) gets the filter baked into the Gaussians: grown where it is not zero.
    baked, raw = model.gaussians_at(0.5), DynamicSplatModel.gaussians_at(model, 0.5)
    grown = var3d > 0
    assert bool((baked["scales"] >= raw["scales"]).all()) and bool((baked["scales"] > raw["scales"] + 0.1).any())
    assert torch.equal(baked["scales"][~grown], raw["scales"][~grown]) and bool((~grown).any())
    assert bool((baked["opacities"][grown] <= raw["opacities"][grown] + 1e-5).all())


def test_remembered_views_are_saved_remapped_on_resume_and_absent_from_older_checkpoints(train_split):
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1))
    _open_aperture(model, outputs)
    keys = model.per_image_state_keys()
    assert {"defocus.view_viewmat", "defocus.view_camera", "defocus.view_time"} <= keys.keys()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n = state["defocus.view_time"].shape[0]
    rows = tuple(reversed(range(n)))
    fresh, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1))
    fresh.load_checkpoint_state(state, ResumeInfo(row_map=rows, old_num_images=n))
    torch.testing.assert_close(fresh.defocus.view_time, state["defocus.view_time"].flip(0), equal_nan=True)
    torch.testing.assert_close(fresh.defocus.view_viewmat[n - 1 - IMAGE], model.defocus.view_viewmat[IMAGE])
    # A checkpoint from before the filter: loads, nothing remembered, evaluation as sharp as before.
    old = {k: v for k, v in state.items() if not k.startswith("defocus.view_")}
    older, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1))
    older.load_checkpoint_state(old)
    assert bool(torch.isnan(older.defocus.view_time).all()) and older.eval_filter_variance() is None


@pytest.mark.parametrize("kw,flag", [(dict(defocus_eval_filter=-0.5), "defocus-eval-filter"),
                                     (dict(num_virtual_views=0), "num-virtual-views")])  # fmt: skip
def test_out_of_range_settings_name_their_flag(train_split, kw, flag):
    with pytest.raises(DynsplatConfigError, match=f"--pipeline.model.{flag} must be >= "):
        build(train_split[0], deblur_config(defocus=True, **kw))
