"""Image metrics that never download: LPIPS is built lazily, only when AlexNet weights are already cached."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

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
#: Dataparser metadata key listing one covisibility mask file per image (non-zero = the pixel is seen by some training
#: view; None for an image without one); the DyCheck parser writes it from ``covisible/<s>x/val/``.
COVISIBLE_MASK_METADATA_KEY = "covisible_mask_filenames"
#: Batch key under which the pipeline hands an eval image's covisibility mask to the model.
COVISIBLE_MASK_BATCH_KEY = "covisible_mask"

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


def dynamic_mask_from_metadata(
    metadata: dict | None, index: int, size: tuple[int, int] | None = None, key: str = DYNAMIC_MASK_METADATA_KEY
):
    """The region mask of image ``index`` from dataparser ``metadata[key]`` (default: the dynamic-region masks).

    Returns:
        Bool ``[H, W]`` tensor, or None when the metadata has no such masks (or None for this image).
    """
    masks = (metadata or {}).get(key)
    if masks is None:
        return None
    if index >= len(masks):
        raise ValueError(f"metadata[{key!r}] has {len(masks)} masks but image {index} was requested")
    return None if masks[index] is None else _as_bool_mask(masks[index], size)


def undistort_mask(mask: torch.Tensor, camera) -> torch.Tensor:
    """A mask drawn on a dataset image, mapped the way nerfstudio's full-image datamanager maps that image before
    caching it when its camera has lens distortion (OpenCV undistortion, then a crop); unchanged otherwise.

    Args:
        mask: Bool ``[H, W]`` at the camera's (dataparser) resolution.
        camera: The image's single camera as the dataparser reported it (distortion and original intrinsics).
    """
    params = getattr(camera, "distortion_params", None)
    if params is None or not bool(torch.any(params != 0)):
        return mask
    from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image

    camera = camera.reshape(())
    size = (int(camera.height), int(camera.width))
    if tuple(mask.shape) != size:
        mask = _as_bool_mask(mask, size)
    image = np.zeros(size + (1,), dtype=np.uint8)
    data = {"mask": mask[..., None].cpu()}
    _, _, out = _undistort_image(
        camera, params.reshape(-1).cpu().numpy(), data, image, camera.get_intrinsics_matrices().cpu().numpy()
    )
    return out[..., 0].bool()


def dynamic_mask_from_batch(batch: dict, key: str = DYNAMIC_MASK_BATCH_KEY) -> torch.Tensor | None:
    """The region mask the pipeline put into an eval ``batch`` under ``key`` (default ``batch["dynamic_mask"]``)."""
    mask = batch.get(key)
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


def partial_conv_ssim(gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> float | None:
    """DyCheck's masked SSIM (mSSIM; ``dycheck/core/metrics/image.py``): the 11×11 Gaussian (σ 1.5) blurs are partial
    convolutions over the masked pixels (separable, renormalised by the window's masked count) and the SSIM map is
    averaged over the whole valid region, where windows without masked pixels score 1. Images ``[H, W, 3]``."""
    if min(gt.shape[0], gt.shape[1]) < _SSIM_WINDOW:
        return None
    m = mask.to(gt.device).to(gt.dtype)[None, None]
    coords = torch.arange(_SSIM_WINDOW, dtype=gt.dtype, device=gt.device) - _SSIM_WINDOW // 2
    g = torch.exp(-0.5 * (coords / _SSIM_SIGMA) ** 2)
    g = g / g.sum()
    conv = torch.nn.functional.conv2d

    def blur(z: torch.Tensor) -> torch.Tensor:  # z [1, C, H, W]
        c, out, valid = z.shape[1], z, m
        for shape in ((1, _SSIM_WINDOW), (_SSIM_WINDOW, 1)):  # along x, then along y (as DyCheck)
            summed = conv(out * valid, g.view(1, 1, *shape).repeat(c, 1, 1, 1), groups=c)
            count = conv(valid, torch.ones((1, 1, *shape), dtype=gt.dtype, device=gt.device))
            out = torch.where(count != 0, summed * _SSIM_WINDOW / count.clamp_min(1e-12), torch.zeros_like(summed))
            valid = (count != 0).to(gt.dtype)
        return out

    x, y = gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None]
    mu0, mu1 = blur(x), blur(y)
    s00 = (blur(x * x) - mu0 * mu0).clamp_min(0.0)
    s11 = (blur(y * y) - mu1 * mu1).clamp_min(0.0)
    s01 = blur(x * y) - mu0 * mu1
    s01 = torch.sign(s01) * torch.minimum(torch.sqrt(s00 * s11), s01.abs())
    c1, c2 = 0.01**2, 0.03**2
    smap = (2 * mu0 * mu1 + c1) * (2 * s01 + c2) / ((mu0 * mu0 + mu1 * mu1 + c1) * (s00 + s11 + c2))
    return float(smap.mean())


def region_metrics(
    gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None, prefix: str = "masked", ssim=masked_ssim
) -> dict[str, float]:
    """``<prefix>_psnr``/``<prefix>_ssim`` (and ``<prefix>_fraction``) of ``[H, W, 3]`` images; {} without a mask.

    Args:
        gt: Ground truth ``[H, W, 3]`` in [0, 1].
        pred: Render ``[H, W, 3]`` in [0, 1].
        mask: Bool ``[H, W]`` region, or None.
        prefix: Metric name prefix (``masked`` for dynamic regions, ``covisible`` for DyCheck's mPSNR/mSSIM).
        ssim: Masked SSIM function (:func:`masked_ssim` or DyCheck's :func:`partial_conv_ssim`).
    """
    if mask is None:
        return {}
    out: dict[str, float] = {f"{prefix}_fraction": float(mask.float().mean())}
    for name, fn in ((f"{prefix}_psnr", masked_psnr), (f"{prefix}_ssim", ssim)):
        value = fn(gt, pred, mask)
        if value is not None:
            out[name] = value
    return out


class RegionMask(NamedTuple):
    """One kind of eval region mask: where the parser lists it, where the pipeline puts it, how it is scored."""

    metadata_key: str
    """Dataparser metadata key of the per-image mask files."""
    batch_key: str
    """Eval batch key the pipeline puts the image's mask under."""
    prefix: str
    """Metric name prefix: ``<prefix>_psnr``, ``<prefix>_ssim``, ``<prefix>_fraction``, ``<prefix>_num_images``."""
    ssim: Callable
    """Masked SSIM function."""


#: Region masks the eval reports metrics over: dynamic regions (``masked_*``, e.g. D2RF's motion masks) and
#: covisible pixels (``covisible_*``: DyCheck's mPSNR / mSSIM, from its covisibility masks).
REGION_MASKS = (
    RegionMask(DYNAMIC_MASK_METADATA_KEY, DYNAMIC_MASK_BATCH_KEY, "masked", masked_ssim),
    RegionMask(COVISIBLE_MASK_METADATA_KEY, COVISIBLE_MASK_BATCH_KEY, "covisible", partial_conv_ssim),
)
#: Every per-image region metric name.
REGION_METRICS = tuple(f"{r.prefix}_{m}" for r in REGION_MASKS for m in ("psnr", "ssim", "fraction"))


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
