"""Image metrics that never download: LPIPS is built lazily, only when AlexNet weights are already cached."""

from __future__ import annotations

import os

import numpy as np
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
        self._metric: nn.Module | None = None
        self._unavailable = False
        self.hint: str | None = None

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

    def __call__(self, gt: torch.Tensor, pred: torch.Tensor) -> float | None:
        """LPIPS of two [1, 3, H, W] images in [0, 1], or None when unavailable."""
        if not self.available():
            return None
        assert self._metric is not None
        self._metric = self._metric.to(gt.device)
        return float(self._metric(gt, pred))


# ---- dynamic-region (masked) metrics ---------------------------------------------------------------------------------

#: Dataparser metadata key listing one dynamic-region mask file per image of that split (non-zero = moving); the
#: D2RF parser writes it from ``motion_masks/``.
DYNAMIC_MASK_METADATA_KEY = "motion_mask_filenames"
#: Batch key under which the pipeline hands an eval image's dynamic-region mask to the model.
DYNAMIC_MASK_BATCH_KEY = "dynamic_mask"

_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5


def _load_mask_file(path: str | os.PathLike) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("L"))) > 127


def _as_bool_mask(mask, size: tuple[int, int] | None = None) -> torch.Tensor:
    """``mask`` (file path, array or tensor ``[H, W]``/``[H, W, C]``) as bool ``[H, W]``, resized (nearest) to
    ``size`` = (H, W) when given."""
    if isinstance(mask, (str, os.PathLike)):
        out = _load_mask_file(mask)
    else:
        out = torch.as_tensor(mask)
        if out.dtype != torch.bool:
            out = out.float() / 255.0 if out.dtype == torch.uint8 else out.float()
            out = out > 0.5
        if out.dim() == 3:  # [H, W, C] (or [C, H, W]): set where any channel is
            out = out.any(dim=-1) if out.shape[-1] in (1, 3, 4) else out.any(dim=0)
    if size is not None and tuple(out.shape) != tuple(size):
        resized = torch.nn.functional.interpolate(out[None, None].float(), size=tuple(size), mode="nearest")
        out = resized[0, 0] > 0.5
    return out.cpu()


def dynamic_mask_from_metadata(metadata: dict | None, index: int, size: tuple[int, int] | None = None):
    """The dynamic-region mask of image ``index`` from dataparser ``metadata`` (see DYNAMIC_MASK_METADATA_KEY).

    Returns:
        Bool ``[H, W]`` tensor, or None when the metadata has no such masks.
    """
    masks = (metadata or {}).get(DYNAMIC_MASK_METADATA_KEY)
    if masks is None:
        return None
    if index >= len(masks):
        key = DYNAMIC_MASK_METADATA_KEY
        raise ValueError(f"metadata[{key!r}] has {len(masks)} masks but image {index} was requested")
    return _as_bool_mask(masks[index], size)


def dynamic_mask_from_batch(batch: dict) -> torch.Tensor | None:
    """The dynamic-region mask the pipeline put into an eval ``batch`` (``batch["dynamic_mask"]``), or None."""
    mask = batch.get(DYNAMIC_MASK_BATCH_KEY)
    if mask is None:
        return None
    return _as_bool_mask(mask, tuple(batch["image"].shape[:2]) if "image" in batch else None)


def masked_psnr(gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> float | None:
    """PSNR over the pixels where ``mask`` is set (images ``[H, W, 3]`` in [0, 1]); None for an empty mask."""
    mask = mask.to(gt.device).bool()
    if not bool(mask.any()):
        return None
    mse = ((gt - pred) ** 2)[mask].mean().clamp_min(1e-10)
    return float(-10.0 * torch.log10(mse))


def ssim_map(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM ``[H-10, W-10]`` (channel mean; 11×11 Gaussian window, σ 1.5, valid region as pytorch_msssim,
    so its mean equals the ``ssim`` reported next to it) of images ``[H, W, 3]`` in [0, 1]."""
    coords = torch.arange(_SSIM_WINDOW, dtype=gt.dtype, device=gt.device) - _SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    x, y = gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None]
    c = x.shape[1]
    wx, wy = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(z, wx, groups=c), wy, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mu1, mu2 = blur(x), blur(y)
    s11, s22, s12 = blur(x * x) - mu1**2, blur(y * y) - mu2**2, blur(x * y) - mu1 * mu2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return (((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1)) * cs)[0].mean(dim=0)


def masked_ssim(gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> float | None:
    """Mean SSIM over the masked pixels (of the valid SSIM region); None when no masked pixel is in it."""
    if min(gt.shape[0], gt.shape[1]) < _SSIM_WINDOW:
        return None
    smap = ssim_map(gt, pred)
    half = _SSIM_WINDOW // 2
    crop = mask.to(gt.device).bool()[half : gt.shape[0] - half, half : gt.shape[1] - half]
    if not bool(crop.any()):
        return None
    return float(smap[crop].mean())


def region_metrics(gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None) -> dict[str, float]:
    """``masked_psnr``/``masked_ssim`` (and ``masked_fraction``) of ``[H, W, 3]`` images; {} without a mask."""
    if mask is None:
        return {}
    out: dict[str, float] = {"masked_fraction": float(mask.float().mean())}
    for name, fn in (("masked_psnr", masked_psnr), ("masked_ssim", masked_ssim)):
        value = fn(gt, pred, mask)
        if value is not None:
            out[name] = value
    return out


# ---- per-time breakdown ----------------------------------------------------------------------------------------------


def time_key(t: float) -> str:
    """The key of time ``t`` in the ``per_time`` table (rounded to 4 decimals: ``0.125``, ``0.0``, ``1.0``)."""
    return str(round(float(t), 4))


def per_time_breakdown(times: list[float | None], records: list[dict]) -> dict[str, dict[str, float]]:
    """Average per-image metrics by (rounded) time.

    Args:
        times: Time of each eval image (None when the camera has no time; such images are skipped).
        records: Per-image metric dicts in the same order (float values; None values are ignored).

    Returns:
        ``{time_key: {metric: mean, ..., "num_images": n}}`` sorted by time.
    """
    groups: dict[float, list[dict]] = {}
    for t, rec in zip(times, records, strict=True):
        if t is not None:
            groups.setdefault(round(float(t), 4), []).append(rec)
    table: dict[str, dict[str, float]] = {}
    for t in sorted(groups):
        rows = groups[t]
        entry: dict[str, float] = {}
        for key in dict.fromkeys(k for row in rows for k in row):
            values = [float(row[key]) for row in rows if isinstance(row.get(key), (int, float))]
            if values:
                entry[key] = sum(values) / len(values)
        entry["num_images"] = len(rows)
        table[time_key(t)] = entry
    return table
