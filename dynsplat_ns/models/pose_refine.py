"""Test-time pose refinement for novel views (``ns-eval`` with ``--pipeline.model.eval-pose-refine-steps N``).

A held-out view's pose comes from the same calibration as the training poses; a small error in it (COLMAP noise, a
deblurred model whose training poses drifted along their exposure trajectories) costs dB that say nothing about the
scene. As BAD-Gaussians' gsplat branch does for its novel-view numbers, each test view gets one SE(3) correction,
optimised for N Adam steps against the test image with the scene frozen, and is scored again at the corrected pose.

The correction is a 6-vector (translation, axis-angle rotation) in the camera's own frame, applied as
``c2w @ exp(delta)`` to nerfstudio's OpenGL camera-to-world (:func:`dynsplat_ns.rotations.compose`, the same
map as the deblur exposure trajectories); it starts at zero, so step 0 renders the unrefined pose. The render is the
model's own differentiable ``get_outputs`` in eval mode (the deterministic eval background, the camera's time and
metadata kept); every model parameter has ``requires_grad`` off meanwhile, so nothing flows into the scene, no
optimizer state or densification statistic is touched, and the flags are restored afterwards.

The loss is the model's training photometric loss, ``(1 - ssim_lambda) · L1 + ssim_lambda · (1 - SSIM)`` with the
model's ``ssim_lambda`` (splatfacto's 0.2): the pose is fitted with the objective the scene was fitted with. Plain L1
(BAD-Gaussians' choice) recovered perturbed views as well on the tiny test scenes (within ~0.05 dB) and is cheaper per
step; ``refine_offset(ssim_lambda=0)`` gives it. Of the poses rendered, the one with the lowest loss is kept (step 0
is the plain pose), so a refined view never has a higher loss than the plain one.

Refined metrics are reported *next to* the plain ones (``refined_psnr`` beside ``psnr``): they are fitted to the test
image and are not comparable with unrefined numbers of other runs or methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from nerfstudio.cameras.cameras import Cameras
from torch import Tensor

from dynsplat_ns.models.metrics import REGION_METRICS
from dynsplat_ns.rotations import compose

#: Prefix of the metrics of refined views in ``ns-eval`` results (``refined_psnr``, ``refined_masked_psnr``, ...).
REFINED_PREFIX = "refined_"
#: Refined region metrics (averaged over the images that have the region's mask, as the plain ones; the region's
#: fraction is the plain ``*_fraction``, unchanged by a pose).
REFINED_REGION_METRICS = tuple(REFINED_PREFIX + k for k in REGION_METRICS if not k.endswith("_fraction"))


@contextmanager
def frozen_scene(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode with ``requires_grad`` off on every parameter; both restored on exit."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    model.eval()
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


def with_pose(camera: Cameras, c2w: Tensor) -> Cameras:
    """``camera`` (one view) with camera-to-world ``c2w`` [1, 3, 4]; intrinsics, time and metadata kept."""
    return dataclasses.replace(camera, camera_to_worlds=c2w)


def photometric_loss(pred: Tensor, gt: Tensor, ssim_lambda: float, ssim: Any = None) -> Tensor:
    """``(1 - ssim_lambda) · L1 + ssim_lambda · (1 - SSIM)`` of two [H, W, 3] images (splatfacto's training loss);
    ``ssim`` a callable on [1, 3, H, W] pairs (the model's), needed when ``ssim_lambda`` > 0."""
    loss = (pred - gt).abs().mean()
    if ssim_lambda > 0:
        nchw_gt, nchw_pred = gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None]
        loss = (1 - ssim_lambda) * loss + ssim_lambda * (1 - ssim(nchw_gt, nchw_pred))
    return loss


def refine_offset(
    model: Any, camera: Cameras, gt_image: Tensor, steps: int, lr: float, ssim_lambda: float | None = None
) -> Tensor:
    """The SE(3) correction [6] (translation, axis-angle; camera frame) of one view that best fits ``gt_image``.

    Args:
        model: A :class:`~dynsplat_ns.models.dynamic_splat.DynamicSplatModel` (any dynsplat method).
        camera: One view (shape [1] or []), e.g. an eval loader's camera.
        gt_image: The view's image [H, W, 3|4], uint8 or float (an alpha channel is composited with the eval
            background, as the metrics do).
        steps: Adam steps (0: the zero correction).
        lr: Adam's learning rate on the 6-vector.
        ssim_lambda: Weight of the SSIM term; None: the model's ``config.ssim_lambda`` (its training loss).

    Returns:
        The correction with the lowest loss among the ``steps`` poses rendered (zero when none beat the plain pose).
    """
    camera = camera.to(model.device).flatten()
    if camera.shape[0] != 1:
        raise ValueError(f"refine_offset refines one camera, got {camera.shape[0]}")
    base = camera.camera_to_worlds.reshape(3, 4).detach()
    weight = float(model.config.ssim_lambda if ssim_lambda is None else ssim_lambda)
    delta = torch.zeros(1, 6, device=base.device, dtype=base.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr, eps=1e-15)
    best, best_loss = torch.zeros(6, device=base.device, dtype=base.dtype), float("inf")
    with frozen_scene(model), torch.enable_grad():
        gt = model.get_gt_img(gt_image)
        for _ in range(max(int(steps), 0)):
            outputs = model.get_outputs(with_pose(camera, compose(base, delta)))
            target = model.composite_with_background(gt, outputs["background"].detach())
            loss = photometric_loss(outputs["rgb"], target, weight, model.ssim)
            value = float(loss.detach())
            if value < best_loss:
                best_loss, best = value, delta.detach().reshape(6).clone()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return best


def refine_camera(model: Any, camera: Cameras, gt_image: Tensor, steps: int, lr: float) -> Cameras:
    """``camera`` moved by its refined correction (:func:`refine_offset`); time, intrinsics and metadata kept.

    Args:
        model: A dynsplat model; its parameters, optimizers and densification state are left untouched.
        camera: One view.
        gt_image: The view's image [H, W, 3|4].
        steps: Adam steps of the per-view correction (0 returns the camera unchanged).
        lr: Adam's learning rate on the (translation, axis-angle) 6-vector.
    """
    camera = camera.to(model.device).flatten()
    offset = refine_offset(model, camera, gt_image, steps, lr)
    c2w = compose(camera.camera_to_worlds.reshape(3, 4).detach(), offset[None])
    return with_pose(camera, c2w)


def refined_metrics(model: Any, camera: Cameras, batch: dict[str, Any]) -> dict[str, float]:
    """``ns-eval``'s metrics of the view at its refined pose, each named ``refined_<metric>`` (``refined_psnr``,
    ``refined_ssim``, ``refined_lpips``, ``refined_masked_psnr``, ...); empty when the model's
    ``eval_pose_refine_steps`` is 0 (the default)."""
    steps = int(getattr(model.config, "eval_pose_refine_steps", 0) or 0)
    if steps <= 0:
        return {}
    refined = refine_camera(model, camera, batch["image"], steps, float(model.config.eval_pose_refine_lr))
    with torch.no_grad():
        outputs = model.get_outputs_for_camera(refined)
    metrics, _ = model.get_image_metrics_and_images(outputs, batch, region_metrics=True)
    return {REFINED_PREFIX + k: v for k, v in metrics.items() if not k.endswith("_fraction")}
