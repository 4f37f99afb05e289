"""A custom blur type in 60 lines: a learnable lens blur per training image (README.md, "How to add a blur type")."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from torch import Tensor, nn

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep
from dynsplat_ns.deblur.model import DeblurSplatModelConfig


@dataclass
class LensBlurConfig(BlurComponentConfig):
    """Per training image a learnable lens blur: a separable 3-tap kernel [w, 1 - 2w, w] on the blurry prediction."""

    _target: type = field(default_factory=lambda: LensBlur)
    """Blur component class to instantiate."""
    lr: float = 0.02
    """Learning rate of the kernel weights."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict]:
        return {"lens_blur": {"optimizer": AdamOptimizerConfig(lr=self.lr, eps=1e-15), "scheduler": None}}


class LensBlur(BlurComponent):
    """Weights w [num_images], 0 at first (the identity), used clamped to [0, 1/4]; sharp renders skip it."""

    def __init__(self, config: LensBlurConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__(config, num_images, num_frames)
        self.weights = nn.Parameter(torch.zeros(self.num_images))  # [num_images]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"lens_blur": [self.weights]}

    def per_image_state_keys(self) -> dict[str, int]:
        return {"weights": 0}  # rows follow their images on resume

    def acts_on(self, step: BlurStep) -> bool:
        return step.image is not None

    def combine(self, step: BlurStep, renders: Tensor, rgb: Tensor) -> Tensor:  # for the steps it acts_on
        p = self.weights[step.image]
        w = p + (p.clamp(0.0, 0.25) - p).detach()  # the clamped value, its gradient passed straight through
        k = torch.stack([w, 1 - 2 * w, w])
        x = nn.functional.pad(rgb.permute(2, 0, 1)[:, None], (1, 1, 1, 1), mode="replicate")  # [3, 1, H + 2, W + 2]
        return nn.functional.conv2d(x, torch.outer(k, k)[None, None])[:, 0].permute(1, 2, 0)  # [H, W, 3]


@dataclass
class LensDeblurModelConfig(DeblurSplatModelConfig):
    """dynsplat-deblur with a lens blur per training image after its own blur types."""

    lens_lr: float = 0.02
    """Learning rate of the lens blur weights (``--pipeline.model.lens-lr``)."""

    def blur_component_configs(self) -> dict[str, BlurComponentConfig | None]:
        return {**super().blur_component_configs(), "lens": LensBlurConfig(lr=self.lens_lr)}
