"""dynsplat-deblur's defocus (issue 12 §2): the identity at zero aperture (outputs, gradients, densification statistics,
with views at one time and at several), the circle of confusion added to each footprint with its energy conserved,
aperture and focus learned in a short fit, resumable per-image tables and the command-line flags."""

from __future__ import annotations

import math

import pytest
import torch
from deblur_helpers import build, deblur_config, load_train, optimizer_configs, train_camera, train_step
from nerfstudio.engine.optimizers import Optimizers

from dynsplat_ns.checkpoints.state import ResumeInfo
from dynsplat_ns.deblur.defocus import APERTURE_GROUP, FOCUS_GROUP, DefocusBlurConfig
from dynsplat_ns.render.projection import project_gaussians

IMAGE = 3


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_train(dnerf_scene)




def _moving(model):
    with torch.no_grad():
        model.motion.transls.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "index,kw",
    [
        (IMAGE, dict(num_virtual_views=1)),  # defocus alone: one view
        (IMAGE, dict(camera_blur=True, object_blur=False, num_virtual_views=3)),  # K views at one time (one call)
        (0, dict(num_virtual_views=5)),  # first frame: sub-times clamp at 0 -> time groups of 3, 1 and 1 views
    ],
)
def test_zero_aperture_is_the_identity(train_split, index, kw):
    """At initialisation (zero aperture) the defocus model renders, back-propagates to the Gaussians and the motion
    model, and feeds the densification statistics exactly like the same model without defocus; the aperture gets a
    gradient (it can open) and the image's focus is initialised in front of the camera."""
    outputs, images = train_split
    results = {}
    for defocus in (True, False):
        model, _ = build(outputs, deblur_config(defocus=defocus, trajectory_init_std=0.0, **kw))
        _moving(model)
        out = train_step(model, outputs, images, index)
        prefixes = ("gauss_params.", "motion.", "trajectory.", "exposure.")
        named = model.named_parameters()
        grads = {n: p.grad.clone() for n, p in named if p.grad is not None and n.startswith(prefixes)}
        st = model.strategy_state
        results[defocus] = (out["rgb"].detach(), grads, st["grad2d"].clone(), st["count"].clone(), model)
    rgb, grads, grad2d, count, model = results[True]
    o_rgb, o_grads, o_grad2d, o_count, _ = results[False]
    torch.testing.assert_close(rgb, o_rgb, rtol=0, atol=1e-6)
    assert grads.keys() == o_grads.keys() and len(grads) >= 7
    for name, g in grads.items():
        torch.testing.assert_close(g, o_grads[name], rtol=1e-4, atol=1e-5 * float(o_grads[name].abs().max()) + 1e-8)
    torch.testing.assert_close(count, o_count)
    assert int((count > 0).sum()) > 0 and model.info["n_cameras"] == model.config.num_virtual_views
    torch.testing.assert_close(grad2d, o_grad2d, rtol=1e-4, atol=1e-9)
    assert model.defocus.shared_aperture and model.defocus.coc_sq.shape == (1,)  # the default: one lens
    assert model.defocus.coc_sq.grad[0] != 0
    assert 0 < float(model.defocus.ref_depth[index]) == float(model.defocus.focus(index)) < math.inf


def test_blur_inputs_add_the_circle_of_confusion_and_conserve_energy():
    """Near the image centre the projected footprint grows by c² = (aperture · fx · |1/z - 1/focus|)² px² on the
    diagonal, and opacity × sqrt(det of the blurred footprint) is unchanged (energy conserved)."""
    torch.manual_seed(0)
    N = 6
    means = torch.stack([torch.randn(N) * 0.05, torch.randn(N) * 0.05, torch.linspace(1.5, 6.0, N)], dim=-1)
    quats = torch.randn(N, 4)
    log_scales = torch.log(torch.rand(N, 3) * 0.03 + 0.005)
    opacities = torch.rand(N) * 0.8 + 0.1
    viewmat, K = torch.eye(4), torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
    blur = DefocusBlurConfig(shared_aperture=False).setup(num_images=2)
    with torch.no_grad():
        blur.ref_depth[:] = 3.0  # focus z0 / q = 3
        blur.coc_sq[1] = (5.0 / 3.0) ** 2  # b = aperture / z0 with aperture = 5 pixel·depth
    scales, opac = blur.blur_inputs(1, means, quats, log_scales, opacities, viewmat, K, 64, 64)

    def footprint(s):
        return project_gaussians(means, quats, s, viewmat[None], K[None], 64, 64, eps2d=0.3).covars2d[0]

    before, after = footprint(log_scales.exp()), footprint(scales)
    assert float(blur.aperture(1)) == pytest.approx(5.0) and float(blur.focus(1)) == pytest.approx(3.0)
    coc = 5.0 * (1 / means[:, 2] - 1 / 3.0).abs()  # pixels
    added = after - before
    torch.testing.assert_close(added[:, 0], coc**2, rtol=0.03, atol=1e-4)
    torch.testing.assert_close(added[:, 2], coc**2, rtol=0.03, atol=1e-4)
    assert added[:, 1].abs().max() < 0.03 * float((coc**2).max())
    assert float(coc.max()) > 1.5 and float(coc.min()) < 0.2  # some far from the focus plane, one near it

    def det(c):
        return c[:, 0] * c[:, 2] - c[:, 1] ** 2

    torch.testing.assert_close(opac * det(after).sqrt(), opacities * det(before).sqrt(), rtol=2e-3, atol=1e-6)
    # Closed aperture: exactly the inputs.
    same_s, same_o = blur.blur_inputs(0, means, quats, log_scales, opacities, viewmat, K, 64, 64)
    assert torch.equal(same_s, log_scales.exp()) and torch.equal(same_o, opacities)


def test_short_fit_opens_the_aperture_towards_a_defocused_target(train_split):
    """A target rendered with a known aperture and focus: fitting the aperture from zero (focus at the target's)
    lowers the loss and opens the aperture towards the target's (a sharp model cannot explain it); once open, the
    focus gets a gradient."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True, num_virtual_views=1, defocus_shared_aperture=False))
    camera = train_camera(outputs, IMAGE)
    model(camera)  # initialises the reference depth (a training render: with gradients, for the statistics)
    with torch.no_grad():
        model.defocus.coc_sq[IMAGE] = 25.0  # 5 px at half the focus distance
        model.defocus.focus_rel[IMAGE] = 1.0 / 0.6  # focus nearer than the median depth
    target = model(camera)["rgb"].detach()
    with torch.no_grad():
        model.defocus.coc_sq.zero_()
    assert (target - model(camera)["rgb"].detach()).abs().max() > 0.03
    configs = optimizer_configs(model.config, 40)
    configs[APERTURE_GROUP]["optimizer"].lr = 2.0  # a short fit
    optimizers = Optimizers({APERTURE_GROUP: configs[APERTURE_GROUP]}, {APERTURE_GROUP: [model.defocus.coc_sq]})
    losses = []
    for _ in range(40):
        loss = (model(camera)["rgb"] - target).abs().mean()
        optimizers.zero_grad_all()
        model.defocus.focus_rel.grad = None
        loss.backward()
        optimizers.optimizer_step_all()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert 15.0 < float(model.defocus.coc_sq[IMAGE].detach()) < 35.0
    assert float(model.defocus.focus_rel.grad[IMAGE]) != 0


def test_defocus_tables_are_per_image_and_remapped_on_resume(train_split):
    outputs, _ = train_split
    shared, _ = build(outputs, deblur_config(defocus=True))  # default: one aperture, kept as it is on resume
    shared_keys = shared.per_image_state_keys()
    assert "defocus.coc_sq" not in shared_keys and "defocus.focus_rel" in shared_keys
    model, _ = build(outputs, deblur_config(defocus=True, defocus_shared_aperture=False))
    keys = model.per_image_state_keys()
    assert {"defocus.coc_sq", "defocus.focus_rel", "defocus.ref_depth"} <= keys.keys()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n = state["defocus.coc_sq"].shape[0]
    state["defocus.coc_sq"] = torch.arange(n, dtype=torch.float32)
    state["defocus.ref_depth"] = torch.arange(n, dtype=torch.float32) + 2.0
    fresh, _ = build(outputs, deblur_config(defocus=True, defocus_shared_aperture=False))
    rows = tuple(reversed(range(n)))
    row_maps = fresh.load_checkpoint_state(state, ResumeInfo(row_map=rows, old_num_images=n))
    assert row_maps["defocus.coc_sq"].rows == rows
    torch.testing.assert_close(fresh.defocus.coc_sq.detach(), state["defocus.coc_sq"].flip(0))
    torch.testing.assert_close(fresh.defocus.ref_depth, state["defocus.ref_depth"].flip(0))
    # Without defocus the model has no such tables and no such optimizer groups.
    plain, _ = build(outputs, deblur_config())
    assert not any(k.startswith("defocus.") for k in plain.state_dict())
    assert APERTURE_GROUP not in plain.get_param_groups()


def test_eval_is_sharp_with_an_open_aperture(train_split):
    """An open aperture does not blur evaluation renders (no training view remembered yet, so the evaluation filter
    of test_defocus_eval_filter.py is off)."""
    outputs, _ = train_split
    model, _ = build(outputs, deblur_config(defocus=True))
    plain, _ = build(outputs, deblur_config())
    with torch.no_grad():
        model.defocus.coc_sq.fill_(4.0)
        model.defocus.ref_depth.fill_(3.0)
    model.eval()
    plain.eval()
    camera = train_camera(outputs, IMAGE)
    with torch.no_grad():
        torch.testing.assert_close(model.get_outputs(camera)["rgb"], plain.get_outputs(camera)["rgb"], rtol=0, atol=0)


def test_defocus_flags_reach_the_model_and_optimizers(dnerf_scene):
    """``--pipeline.model.defocus`` and its learning-rate flags, parsed as ns-train parses them, are documented in
    the help and reach the model's tables and the optimizer groups the trainer builds."""
    from cli_helpers import cli_flags, parse
    from nerfstudio.data.scene_box import SceneBox

    from dynsplat_ns.training.trainer import resolve_run_schedules

    flags = cli_flags("dynsplat-deblur")
    assert {"--pipeline.model.defocus", "--pipeline.model.defocus-aperture-lr",
            "--pipeline.model.defocus-focus-lr", "--pipeline.model.defocus-eval-filter"} <= flags  # fmt: skip
    config = parse("dynsplat-deblur", "--max-num-iterations", "300", "--pipeline.model.defocus", "True",
                   "--pipeline.model.defocus-aperture-lr", "3e-4", "--pipeline.model.defocus-focus-lr", "2e-3",
                   "dynsplat-dnerf", "--data", str(dnerf_scene))  # fmt: skip
    used, _ = resolve_run_schedules(config)
    assert used.optimizers[APERTURE_GROUP]["optimizer"].lr == 3e-4
    assert used.optimizers[FOCUS_GROUP]["optimizer"].lr == 2e-3
    assert used.optimizers[FOCUS_GROUP]["scheduler"].max_steps == 300
    model = used.pipeline.model.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])),
                                      num_train_data=5, metadata={"num_frames": 2})  # fmt: skip
    assert model.defocus is not None and model.defocus.coc_sq.shape == (1,)  # shared aperture (default)
    per_image = parse("dynsplat-deblur", "--pipeline.model.defocus", "True", "--pipeline.model.defocus-shared-aperture",
                      "False", "--pipeline.model.defocus-eval-filter", "0.5", "--pipeline.model.exposure-shared",
                      "True", "--pipeline.model.trajectory-centered",
                      "False", "dynsplat-dnerf", "--data", str(dnerf_scene)).pipeline.model  # fmt: skip
    model = per_image.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=5,
                            metadata={"num_frames": 2})  # fmt: skip
    assert model.defocus.coc_sq.shape == (5,) and model.exposure.logits.shape == (1,)
    assert per_image.defocus_eval_filter == 0.5
    assert not model.trajectory.centered
    # default: decided from the data (issue 29); a D-NeRF scene reports no defocused images, so defocus stays off
    default, _ = resolve_run_schedules(parse("dynsplat-deblur", "dynsplat-dnerf", "--data", str(dnerf_scene)))
    assert default.pipeline.model.defocus is None
    model = default.pipeline.model.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])),
                                         num_train_data=5, metadata={"num_frames": 2})  # fmt: skip
    assert model.defocus is None and APERTURE_GROUP not in model.get_param_groups()
    off, _ = resolve_run_schedules(parse("dynsplat-deblur", "--pipeline.model.defocus", "False", "dynsplat-dnerf",
                                         "--data", str(dnerf_scene)))  # fmt: skip
    assert APERTURE_GROUP not in off.optimizers and off.pipeline.model.defocus is False
