"""Depth-prior losses for monocular video: the render's expected depth against the depth the dataset ships.

* metric depth (``depth_kind="metric"``, e.g. DyCheck's LiDAR depth, in world units): L1 on the expected depth;
* relative disparity (``depth_kind="disparity"``, e.g. D2RF's ``dpt/``): scale-and-shift invariant. The prior is
  normalised per image (median 0, mean absolute deviation 1), the rendered disparity 1/depth is aligned to it by least
  squares (scale > 0, shift; closed form, differentiable) on the valid pixels, then L1.

Valid pixels: finite prior > 0 where the render is opaque (accumulation > 0.5). The datamanager puts the
prior into the batch (``batch["depth_prior"]``, :mod:`dynsplat_ns.priors.depth`); the model asks for expected depth
("RGB+ED") only while this loss is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dynsplat_ns.priors.depth import DEPTH_BATCH_KEY, depth_kind

#: Depth-loss weight with ``depth_loss_weight`` None (auto) where the data ships metric depth (DyCheck LiDAR): chosen
#: on the monocular benchmark's tune scenes (0.1 against 0.3; benchmarks/monocular_dycheck.py).
AUTO_METRIC_WEIGHT = 0.1
#: Fewest valid pixels for a depth loss (fewer: the term is 0 for that image).
MIN_VALID_PIXELS = 16
#: Rendered accumulation above which a pixel's expected depth is trusted.
MIN_ACCUMULATION = 0.5


def scale_shift_invariant_loss(pred_disparity: Tensor, prior: Tensor, valid: Tensor) -> Tensor:
    """Mean |s·d + b − p̂| over ``valid`` pixels, with (s, b) the least-squares fit of d to p̂ when s > 0.

    A negative fit (an inverted depth order) would zero the loss of an inverted depth, or with s clamped to 0 its
    gradient; then s matches the spreads (mean absolute deviations) of d and p̂ instead.

    Args:
        pred_disparity: Rendered disparity d [...].
        prior: Prior disparity [...] (any scale and shift); normalised here to p̂ (median 0, mean |p̂| 1).
        valid: Bool [...] of the pixels to use.

    Returns:
        Scalar loss, 0 for a prediction that is a positive affine map of the prior (or with too few valid pixels).
    """
    d, p = pred_disparity[valid], prior[valid].to(pred_disparity)
    if d.numel() < MIN_VALID_PIXELS:
        return pred_disparity.sum() * 0.0
    p = p - p.median()
    p = p / p.abs().mean().clamp_min(1e-8)
    d_mean, p_mean = d.mean(), p.mean()
    dc = d - d_mean
    scale = (dc * (p - p_mean)).sum() / dc.square().sum().clamp_min(1e-12)
    # Anti-correlated (e.g. at the start): match the spreads instead, so the term still pulls towards the prior.
    scale = torch.where(scale > 0, scale, (p - p_mean).abs().mean() / dc.abs().mean().clamp_min(1e-12))
    shift = p_mean - scale * d_mean
    return (scale * d + shift - p).abs().mean()


def valid_pixels(prior: Tensor, alpha: Tensor) -> Tensor:
    """Bool [H, W]: a finite prior > 0 where the render is opaque (accumulation > :data:`MIN_ACCUMULATION`).

    A prior <= 0 is "no depth" for both kinds: metric depth marks missing LiDAR returns with 0, and a disparity of 0
    is an infinitely far pixel (D2RF-layout ``dpt/`` of the empty background) that no finite Gaussian can match; kept,
    such pixels (80 % of the generated D2RF scene) dominated the per-image fit and the loss.
    """
    return torch.isfinite(prior) & (prior > 0) & (alpha.detach() > MIN_ACCUMULATION)


def metric_depth_loss(pred_depth: Tensor, prior: Tensor, valid: Tensor) -> Tensor:
    """Mean |depth − prior| over ``valid`` pixels (0 with too few)."""
    if int(valid.sum()) < MIN_VALID_PIXELS:
        return pred_depth.sum() * 0.0
    return (pred_depth[valid] - prior[valid].to(pred_depth)).abs().mean()


@dataclass
class DepthPriorLoss:
    """The depth term of one model: its kind, weight and schedule."""

    kind: str
    """"metric" or "disparity" (from the dataparser's ``depth_kind``)."""
    weight: float
    """Weight at step 0."""
    decay_steps: int = 0
    """Linear decay of the weight over this many steps (0: constant)."""
    final_fraction: float = 0.1
    """Weight after the decay, as a fraction of ``weight``."""

    @classmethod
    def from_config(cls, config: Any, metadata: dict | None) -> DepthPriorLoss | None:
        """The loss a model config asks for, or None when its weight is 0 or the data has no depth (auto-off).

        ``depth_loss_weight`` None (auto) is :data:`AUTO_METRIC_WEIGHT` for metric depth and off for disparity; the
        log says when the data's depth is used by default."""
        kind = depth_kind(metadata)
        weight = config.depth_loss_weight
        if kind is None:
            return None
        if weight is None:
            weight = AUTO_METRIC_WEIGHT if kind == "metric" else 0.0
            if weight > 0:
                from nerfstudio.utils.rich_utils import CONSOLE

                CONSOLE.print(
                    f"Depth prior: the data ships metric depth; using it with weight {weight} "
                    "(--pipeline.model.depth-loss-weight 0 turns it off)"
                )
        if weight <= 0:
            return None
        return cls(kind, float(weight), int(config.depth_loss_decay_steps),
                   float(config.depth_loss_final_fraction))  # fmt: skip

    def weight_at(self, step: int) -> float:
        """The weight at ``step`` (linear from ``weight`` to ``final_fraction × weight`` over ``decay_steps``)."""
        if self.decay_steps <= 0:
            return self.weight
        progress = min(max(step, 0) / self.decay_steps, 1.0)
        return self.weight * (1.0 - (1.0 - self.final_fraction) * progress)

    def __call__(self, outputs: dict[str, Any], batch: dict[str, Any], step: int) -> dict[str, Tensor]:
        """``{"depth_loss": weighted term}`` of one training render (``outputs["depth"]`` [H, W, 1] expected depth,
        ``outputs["accumulation"]``), or ``{}`` when the batch has no prior."""
        prior = batch.get(DEPTH_BATCH_KEY)
        depth = outputs.get("depth")
        if prior is None or depth is None:
            return {}
        depth, alpha = depth.reshape(depth.shape[-3:-1]), outputs["accumulation"].reshape(depth.shape[-3:-1])
        prior = prior.to(depth.device).reshape(prior.shape[0], prior.shape[1])
        if prior.shape != depth.shape:  # training at a lower resolution (num_downscales)
            prior = F.interpolate(prior[None, None], size=tuple(depth.shape), mode="nearest")[0, 0]
        valid = valid_pixels(prior, alpha)
        if self.kind == "metric":
            loss = metric_depth_loss(depth, prior, valid)
        else:
            loss = scale_shift_invariant_loss(1.0 / depth.clamp_min(1e-6), prior, valid)
        return {"depth_loss": self.weight_at(step) * loss}
