"""Image metrics that never download: LPIPS is built lazily, only when AlexNet weights are already cached."""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

LPIPS_HINT = (
    "lpips: null — AlexNet weights are not in the torch hub cache ({path}); on a machine with internet run "
    "`python -c \"import torchvision; torchvision.models.alexnet(weights='DEFAULT')\"` and copy the file there "
    "(or set TORCH_HOME) to get LPIPS."
)


def alexnet_weights_path() -> str:
    """Where torchvision keeps AlexNet's weights (what torchmetrics' LPIPS loads)."""
    from torchvision.models import AlexNet_Weights

    filename = os.path.basename(AlexNet_Weights.DEFAULT.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


class LazyLPIPS:
    """LPIPS (AlexNet) created on first use if its weights are on disk; otherwise ``None`` results and one hint."""

    def __init__(self) -> None:
        self._metric: Optional[nn.Module] = None
        self._unavailable = False
        self.hint: Optional[str] = None

    def available(self) -> bool:
        """Whether LPIPS can be computed without a download."""
        if self._metric is not None:
            return True
        if self._unavailable:
            return False
        path = alexnet_weights_path()
        if not os.path.isfile(path):
            self._unavailable = True
            self.hint = LPIPS_HINT.format(path=path)
            from nerfstudio.utils.rich_utils import CONSOLE

            CONSOLE.print(f"[yellow]{self.hint}")
            return False
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self._metric = LearnedPerceptualImagePatchSimilarity(normalize=True)
        return True

    def __call__(self, gt: torch.Tensor, pred: torch.Tensor) -> Optional[float]:
        """LPIPS of two [1, 3, H, W] images in [0, 1], or None when unavailable."""
        if not self.available():
            return None
        assert self._metric is not None
        self._metric = self._metric.to(gt.device)
        return float(self._metric(gt, pred))
