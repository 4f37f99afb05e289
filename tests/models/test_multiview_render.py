"""Several views in one step (issue 12 §1): ``DynamicSplatModel.render_views`` and the merged strategy ``meta``.

"Same densification statistics" means: gsplat's ``DefaultStrategy`` scales each view's ``means2d`` gradient by
``n_cameras``, undoing the 1/K of a loss that is the mean over the K views. So a step over K views with the mean loss
adds to ``grad2d`` and ``count`` exactly what K single-view steps (each with its own view's loss) add together, and
``radii`` holds the same maximum; the parameters' gradient is the mean of the single-view gradients.
"""

from __future__ import annotations

import pytest
import torch
from model_helpers import load_split, make_model, small_hexplane
from nerfstudio.engine.optimizers import Optimizers

from dynsplat_ns.method_configs.common import gaussian_optimizers
from dynsplat_ns.models import dynamic_splat
from dynsplat_ns.render import rasterize

STEP = 1  # a step without refinement or opacity reset: step_post_backward only accumulates statistics


@pytest.fixture(scope="module")
def train_split(dnerf_scene):
    return load_split(dnerf_scene, "train")


def _model(outputs, absgrad: bool = True):
    torch.manual_seed(0)
    model = make_model(outputs, small_hexplane(static_warmup_steps=0), use_absgrad=absgrad)
    with torch.no_grad():  # a deformation that is not the identity, so different times differ
        for head in (model.motion.pos_head, model.motion.scale_head):
            head[-1].weight.normal_(0.0, 0.3)
        for plane in model.motion.field.time_planes():
            plane.normal_(1.0, 0.5)
    model.train()
    opt = {**gaussian_optimizers(10), **model.config.motion.optimizer_configs(10)}
    model.step_cb(Optimizers(opt, model.get_param_groups()), STEP)
    return model


def _reset(model) -> None:
    model.zero_grad(set_to_none=True)
    model.strategy_state = model.strategy.initialize_state(scene_scale=1.0)


def _cotangents(n: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(n, h, w, 3, generator=torch.Generator().manual_seed(1))


def _tol(reference: torch.Tensor) -> dict[str, float]:
    """Float32 rounding of sums taken in another order: relative to the largest entry."""
    return {"rtol": 1e-3, "atol": 1e-5 * float(reference.abs().max()) + 1e-12}


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _stats(model) -> dict[str, torch.Tensor]:
    return {k: model.strategy_state[k].clone() for k in ("grad2d", "count", "radii")}


def _single_steps(model, cameras, cotangents):
    """Each view in its own step (its own loss), statistics accumulating: images, summed parameter gradients."""
    _reset(model)
    images, summed = [], {}
    for k in range(cameras.shape[0]):
        out = model.get_outputs(cameras[k : k + 1])
        (out["rgb"] * cotangents[k]).sum().backward()
        model.step_post_backward(STEP)
        images.append(out["rgb"].detach())
        for name, g in _grads(model).items():
            summed[name] = summed.get(name, 0) + g
        model.zero_grad(set_to_none=True)
    return torch.stack(images), summed, _stats(model)


def _multi_step(model, cameras, cotangents, times=None):
    """All views in one step, the loss the mean over the views."""
    _reset(model)
    out = model.render_views(cameras, times)
    (out["rgb"] * cotangents).sum(dim=(1, 2, 3)).mean().backward()
    model.step_post_backward(STEP)
    return out, _grads(model), _stats(model)


@pytest.mark.parametrize("absgrad", [True, False])
def test_k_copies_of_one_camera_equal_one_camera(train_split, absgrad):
    """K = 3 copies at one time: one 3-camera rasterize call; each copy is the single render, the parameter gradient
    of the mean loss is the single view's, and the strategy counts each visible Gaussian 3 times with 3 times the
    gradient norm (the same mean ``grad2d / count``)."""
    outputs, images = train_split
    model = _model(outputs, absgrad)
    cam = outputs.cameras[2:3]
    h, w = images[0].shape[:2]
    cot = _cotangents(1, h, w)
    single_img, single_grads, single = _single_steps(model, cam, cot)
    copies = outputs.cameras[torch.tensor([2, 2, 2])]
    out, multi_grads, multi = _multi_step(model, copies, cot.expand(3, h, w, 3))

    assert out["rgb"].shape == (3, h, w, 3) and out["time"] == pytest.approx(float(cam.times))
    assert model.info["n_cameras"] == 3 and model.info["means2d"].shape[0] == 3
    for k in range(3):
        torch.testing.assert_close(out["rgb"][k].detach(), single_img[0], rtol=0, atol=1e-6)
    assert single_grads.keys() == multi_grads.keys() and "motion.pos_head.3.weight" in multi_grads
    for name, g in single_grads.items():
        torch.testing.assert_close(multi_grads[name], g, **_tol(g), msg=lambda m, name=name: f"{name}: {m}")
    visible = single["count"] > 0
    assert visible.sum() > 10
    torch.testing.assert_close(multi["count"], 3 * single["count"], rtol=0, atol=0)
    torch.testing.assert_close(multi["grad2d"], 3 * single["grad2d"], **_tol(single["grad2d"]))
    torch.testing.assert_close(multi["radii"], single["radii"], rtol=0, atol=0)


@pytest.mark.parametrize("absgrad", [True, False])
def test_views_at_different_times_equal_separate_renders(train_split, absgrad):
    """Views at two times in one step (order t_a, t_b, t_a: two rasterize calls, merged back into camera order)
    equal separate single-view renders: images, the mean of their parameter gradients, and the strategy statistics
    of the separate steps together."""
    outputs, images = train_split
    model = _model(outputs, absgrad)
    cams = outputs.cameras[torch.tensor([1, 7, 4])]
    times = [0.2, 0.8, 0.2]
    cams.times = torch.tensor(times)[:, None]
    h, w = images[0].shape[:2]
    cot = _cotangents(3, h, w)
    single_img, single_grads, single = _single_steps(model, cams, cot)
    out, multi_grads, multi = _multi_step(model, cams, cot)

    assert out["times"] == pytest.approx(times) and "time" not in out
    assert model.info["n_cameras"] == 3 and model.info["radii"].shape[0] == 3
    assert not torch.allclose(single_img[0], model.render_views(cams[0:1], [0.8])["rgb"][0].detach())
    torch.testing.assert_close(out["rgb"].detach(), single_img, rtol=0, atol=1e-6)
    for name, g in single_grads.items():
        torch.testing.assert_close(multi_grads[name], g / 3, **_tol(g), msg=lambda m, name=name: f"{name}: {m}")
    assert single["count"].sum() > 10
    torch.testing.assert_close(multi["count"], single["count"], rtol=0, atol=0)
    torch.testing.assert_close(multi["grad2d"], single["grad2d"], **_tol(single["grad2d"]))
    # gsplat keeps a per-Gaussian screen radius with an indexed assignment, so within one C-camera step a Gaussian
    # seen by several views keeps one of their radii (not their maximum, which separate steps keep): same support,
    # never larger.
    assert torch.equal(multi["radii"] > 0, single["radii"] > 0)
    assert torch.all(multi["radii"] <= single["radii"])


def test_one_view_is_the_plain_single_camera_step(train_split, monkeypatch):
    """K = 1 is bit for bit one ``rasterize()`` of the Gaussians at the camera's time, and the strategy's meta is
    that call's (same tensors and keys, gradients where the strategy reads them)."""
    outputs, _ = train_split
    model = _model(outputs)
    cam = outputs.cameras[3:4]
    calls = []

    def recording_rasterize(*args, **kwargs):
        calls.append(rasterize(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(dynamic_splat, "rasterize", recording_rasterize)
    out = model.get_outputs(cam)
    meta = model.info
    assert len(calls) == 1 and meta is calls[0][2]  # the call's own meta, not a merged copy
    g = model.gaussians_at(float(cam.times))
    colors = torch.cat((g["features_dc"][:, None, :], g["features_rest"]), dim=1)
    from dynsplat_ns.models.camera_utils import viewmats_from_c2w

    render, alpha, ref_meta = rasterize(
        g["means"], g["quats"], torch.exp(g["scales"]), torch.sigmoid(g["opacities"]).squeeze(-1), colors,
        viewmats_from_c2w(cam.camera_to_worlds), cam.get_intrinsics_matrices(), int(cam.width), int(cam.height),
        sh_degree=min(STEP // model.config.sh_degree_interval, model.config.sh_degree), absgrad=True,
        backend="torch",
    )  # fmt: skip
    rgb = torch.clamp(render[..., :3] + (1 - alpha) * model.background_color, 0.0, 1.0)[0]
    assert torch.equal(out["rgb"], rgb) and out["rgb"].shape == rgb.shape
    assert out["time"] == float(cam.times) and "times" not in out
    assert meta["n_cameras"] == 1 and torch.equal(meta["radii"], ref_meta["radii"])
    out["rgb"].sum().backward()
    assert meta.keys() == ref_meta.keys() and torch.equal(meta["means2d"].detach(), ref_meta["means2d"].detach())
    assert meta["means2d"].grad is not None and meta["means2d"].absgrad is not None


def test_render_views_rejects_mixed_sizes_and_wrong_time_count(train_split):
    outputs, _ = train_split
    model = _model(outputs)
    cams = outputs.cameras[torch.tensor([0, 1])]
    with pytest.raises(ValueError, match="2 cameras but 3 times"):
        model.render_views(cams, [0.1, 0.2, 0.3])
    cams.width[1] = cams.width[1] // 2
    with pytest.raises(ValueError, match="share one image size"):
        model.render_views(cams, [0.1, 0.2])
