"""Which initial Gaussians are static background and which dynamic foreground, from the dataset's motion masks.

The flag lives in the Gaussian parameter dict (:data:`~dynsplat_ns.motion.static_gaussians.STATIC_KEY`, [N] float,
1 = static), so densification keeps it in lock-step (a new Gaussian inherits its parent's flag); it is never
optimised (its optimizer group has learning rate 0 and it takes no part in the loss). Static Gaussians skip the motion
model (:mod:`dynsplat_ns.motion.static_gaussians`).

Seeding: a point is dynamic when it falls into the motion mask of at least one training view that sees it in frame
(seed points have no time, and a point wrongly held static can never move, while a static point left dynamic only
costs a motion evaluation); else static. Without masks there is no flag at all: every Gaussian is dynamic, exactly as
without the option.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dynsplat_ns.motion.static_gaussians import STATIC_KEY
from dynsplat_ns.priors.depth import MOTION_MASKS_KEY, depth_kind

#: Relative depth beyond which a point lies behind the surface a view's metric depth shows (hidden from that view).
HIDDEN_TOLERANCE = 0.15
#: Dataparser metadata key listing one motion mask per image (the D2RF parser's ``motion_masks/``).
MASK_FILES_KEY = "motion_mask_filenames"


def project_to_pixels(points: Tensor, cameras) -> tuple[Tensor, Tensor]:
    """Pixel coordinates [V, N, 2] (x right, y down, in each camera's width × height) and depth in front [V, N] of
    ``points`` [N, 3] in V nerfstudio cameras (OpenGL axes; distortion ignored)."""
    c2w = cameras.camera_to_worlds.float()  # [V, 3, 4]
    rel = points.float()[None] - c2w[:, None, :3, 3]  # [V, N, 3]
    local = rel @ c2w[:, :3, :3]  # world -> camera: R^T (p - t), as row vectors
    z = -local[..., 2]
    safe = z.clamp_min(1e-9)
    u = cameras.fx.float().reshape(-1, 1) * local[..., 0] / safe + cameras.cx.float().reshape(-1, 1)
    v = cameras.fy.float().reshape(-1, 1) * -local[..., 1] / safe + cameras.cy.float().reshape(-1, 1)
    return torch.stack([u, v], dim=-1), z


@torch.no_grad()
def dynamic_from_masks(
    points: Tensor, cameras, masks: list[Tensor], min_fraction: float = 0.0, depths: list[Tensor] | None = None
) -> Tensor:
    """Bool [N]: the points that fall into the motion mask of at least one view that sees them in frame (and, with
    ``min_fraction`` > 0, of more than that fraction of those views: masks derived from the data have scattered
    false detections that would otherwise make every point dynamic).

    Args:
        points: [N, 3] world points.
        cameras: V nerfstudio cameras (their own width/height; the masks may have another resolution).
        masks: V bool masks [h, w] (True = moving).
        min_fraction: Fraction of the views seeing a point whose masks must hold it.
        depths: Optional metric depth maps [h, w] at the masks' size (0 / NaN: none): a point more than
            :data:`HIDDEN_TOLERANCE` behind the surface a view sees there is hidden from that view (e.g. the static
            floor behind a moving ball) and that view does not count.
    """
    if len(masks) != int(cameras.shape[0]):
        raise ValueError(f"{len(masks)} motion masks for {int(cameras.shape[0])} cameras")
    pix, z = project_to_pixels(points.detach().cpu(), cameras.to("cpu"))
    hits = torch.zeros(points.shape[0])
    views = torch.zeros(points.shape[0])
    for k, mask in enumerate(masks):
        h, w = mask.shape[-2:]
        sx = w / float(cameras.width.reshape(-1)[k])
        sy = h / float(cameras.height.reshape(-1)[k])
        col = torch.floor(pix[k, :, 0] * sx).long()
        row = torch.floor(pix[k, :, 1] * sy).long()
        seen = (z[k] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        if depths is not None and depths[k] is not None:
            surface = torch.zeros_like(z[k])
            surface[seen] = torch.nan_to_num(depths[k].float().reshape(h, w))[row[seen], col[seen]]
            seen &= ~((surface > 0) & (z[k] > surface * (1.0 + HIDDEN_TOLERANCE)))
        hit = torch.zeros_like(seen)
        hit[seen] = mask.bool()[row[seen], col[seen]]
        hits += hit.float()
        views += seen.float()
    return (hits > 0) & (hits > min_fraction * views)


def seeding_input(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The training metadata's motion masks for seeding (:data:`~dynsplat_ns.priors.depth.MOTION_MASKS_KEY`): the
    dict read from the data's mask files, or the masks derived on demand (a callable the datamanager left), or
    None."""
    seeding = metadata.get(MOTION_MASKS_KEY)
    return seeding() if callable(seeding) else seeding


def has_motion_masks(metadata: dict[str, Any]) -> bool:
    """Whether the dataset lists motion masks or has metric depth to derive them from: the static flag exists then
    (in training and when a checkpoint is loaded for ns-eval / ns-viewer alike)."""
    return bool(metadata.get(MASK_FILES_KEY)) or depth_kind(metadata) == "metric"


def static_split_enabled(setting: bool | None, metadata: dict[str, Any]) -> bool:
    """``--pipeline.model.static-background`` resolved for a dataset: True / False as given; None (auto) on for video
    with metric depth and no motion masks (DyCheck: the masks are derived), off otherwise."""
    if setting is not None:
        return bool(setting)
    return not metadata.get(MASK_FILES_KEY) and depth_kind(metadata) == "metric"


def initial_static_flags(
    means: Tensor, metadata: dict[str, Any], enabled: bool, num_dynamic_seeds: int = 0
) -> dict[str, Tensor]:
    """``{"static": [N] float}`` for the initial Gaussians, or ``{}`` (no flag: all dynamic).

    Args:
        means: Initial Gaussian centres [N, 3].
        metadata: The training dataset's metadata: ``motion_mask_filenames`` from the dataparser and, when training,
            the masks and cameras the datamanager read (:data:`~dynsplat_ns.priors.depth.MOTION_MASKS_KEY`).
        enabled: The static split is on (:func:`static_split_enabled`).
        num_dynamic_seeds: The last points of ``means`` were unprojected from the masks
            (:mod:`~dynsplat_ns.priors.dynamic_seeds`): dynamic by construction.

    Returns:
        ``{}`` when disabled or when the dataset has no motion masks; else the flag (1 = static). Without the read
        masks (a model built for ns-eval / ns-viewer, whose flags come from the checkpoint) all zeros.
    """
    if not enabled or not has_motion_masks(metadata):
        return {}
    seeding = seeding_input(metadata)
    if seeding is None:
        return {STATIC_KEY: torch.zeros(means.shape[0])}
    vote, depths = seeding.get("min_fraction", 0.0), seeding.get("depth")
    dynamic = dynamic_from_masks(means, seeding["cameras"], seeding["masks"], vote, depths)
    if num_dynamic_seeds > 0:
        dynamic[-num_dynamic_seeds:] = True
    return {STATIC_KEY: (~dynamic).float()}
