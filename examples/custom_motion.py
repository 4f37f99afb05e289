"""A custom motion model in ~50 lines: every Gaussian drifts with its own constant velocity.

Plug it into any dynsplat method from Python (or a method config of your own)::

    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
    config = DynamicSplatModelConfig(motion=VelocityMotionConfig())

The dynsplat trainer adds the optimizer entry returned by ``optimizer_configs`` to the run's optimizers (from the
final config, so ``--pipeline.model.motion.velocity-lr`` works); a loop of your own passes it in itself, as
``tests/models/test_custom_motion_example.py`` does. README.md, "How to add a motion model", walks through each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from torch import Tensor

from dynsplat_ns.motion.base import MotionModel, MotionModelConfig


@dataclass
class VelocityMotionConfig(MotionModelConfig):
    """Constant per-Gaussian velocity: mean(t) = mean + (t − ½)·v."""

    _target: type = field(default_factory=lambda: VelocityMotion)
    """Motion model class to instantiate."""
    velocity_lr: float = 1e-3
    """Learning rate of the velocities."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """One Adam group for the per-Gaussian velocities."""
        return {"velocities": {"optimizer": AdamOptimizerConfig(lr=self.velocity_lr, eps=1e-15), "scheduler": None}}


class VelocityMotion(MotionModel):
    """Per-Gaussian velocities, zero at init (so the model starts static)."""

    config: VelocityMotionConfig

    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # Lives in the Gaussian dict: densification splits/prunes it with the Gaussians.
        return {"velocities": torch.zeros_like(gaussians["means"])}

    def deform(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        out = self.canonical(gaussians)
        out["means"] = gaussians["means"] + (t - 0.5) * gaussians["velocities"]
        return out
