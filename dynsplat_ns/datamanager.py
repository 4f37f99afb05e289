"""Full-image datamanager that also works on CPU-only machines with many images.

nerfstudio 1.1.5 switches ``cache_images`` to "cpu" above 500 training images and then calls ``pin_memory()``, which
fails without a CUDA device. When no CUDA device exists, we cache on the datamanager's device (the CPU) instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset


@dataclass
class DynsplatDatamanagerConfig(FullImageDatamanagerConfig):
    """nerfstudio's full-image datamanager, safe on CPU-only torch."""

    _target: type = field(default_factory=lambda: DynsplatDatamanager)
    """Datamanager class to instantiate."""


class DynsplatDatamanager(FullImageDatamanager[InputDataset]):
    """FullImageDatamanager that never pins memory when there is no CUDA device."""

    def _load_images(self, split: Literal["train", "eval"], cache_images_device: Literal["cpu", "gpu"]):
        if cache_images_device == "cpu" and not torch.cuda.is_available():
            cache_images_device = "gpu"  # nerfstudio's "gpu" means "self.device", which is the CPU here: no pinning
        return super()._load_images(split, cache_images_device)
