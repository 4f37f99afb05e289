"""A minimal in-process training loop (the trainer's steps without its I/O) for tests and benchmarks.

Real training goes through ``ns-train``; this loop runs the same model callbacks, optimizers and schedulers on a
list of cameras and images so a test can train a tiny scene in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers
from torch import Tensor

from dynsplat_ns.models.dynamic_splat import DynamicSplatModel


def quick_train(
    model: DynamicSplatModel,
    cameras: Cameras,
    images: list[Tensor],
    steps: int,
    optimizer_configs: dict[str, Any],
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Trains ``model`` for ``steps`` iterations, cycling through the cameras.

    Args:
        model: the model (on its device).
        cameras: training cameras [N].
        images: N float images [H, W, 3] in [0, 1].
        steps: iterations.
        optimizer_configs: nerfstudio optimizer dict (``TrainerConfig.optimizers`` shape).
        on_step: optional callback(step, loss).

    Returns:
        The total loss of every step.
    """

    def next_batch(step: int) -> tuple[Cameras, dict[str, Tensor]]:
        idx = step % len(cameras)
        return cameras[idx : idx + 1].to(model.device), {"image": images[idx].to(model.device)}

    return train_steps(model, next_batch, steps, optimizer_configs, on_step)


def train_steps(
    model: DynamicSplatModel,
    next_batch: Callable[[int], tuple[Cameras, dict[str, Any]]],
    steps: int,
    optimizer_configs: dict[str, Any],
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """The trainer's step loop (callbacks, losses, optimizers, schedulers) over ``next_batch(step)`` → (camera,
    batch), e.g. a datamanager's ``next_train``; returns the total loss of every step (model left in eval mode)."""
    optimizers = Optimizers(optimizer_configs, model.get_param_groups())
    attrs = TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=None, trainer=None)
    callbacks = model.get_training_callbacks(attrs)
    model.train()
    losses = []
    for step in range(steps):
        for cb in callbacks:
            cb.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        camera, batch = next_batch(step)
        outputs = model(camera)
        loss_dict = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
        loss = torch.stack([v for v in loss_dict.values()]).sum()
        optimizers.zero_grad_all()
        loss.backward()
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        for cb in callbacks:
            cb.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def evaluate_psnr(model: DynamicSplatModel, cameras: Cameras, images: list[Tensor]) -> float:
    """Mean PSNR (dB) of the model's renders against ``images``."""
    model.eval()
    values = []
    for idx in range(len(cameras)):
        out = model.get_outputs_for_camera(cameras[idx : idx + 1])
        mse = (out["rgb"] - images[idx].to(out["rgb"].device)).square().mean().clamp_min(1e-10)
        values.append(float(-10 * torch.log10(mse)))
    return sum(values) / len(values)
