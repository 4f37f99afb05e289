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
from dynsplat_ns.priors.depth import MOTION_MASKS_KEY

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
def dynamic_from_masks(points: Tensor, cameras, masks: list[Tensor]) -> Tensor:
    """Bool [N]: the points that fall into the motion mask of at least one view that sees them in frame.

    Args:
        points: [N, 3] world points.
        cameras: V nerfstudio cameras (their own width/height; the masks may have another resolution).
        masks: V bool masks [h, w] (True = moving).
    """
    if len(masks) != int(cameras.shape[0]):
        raise ValueError(f"{len(masks)} motion masks for {int(cameras.shape[0])} cameras")
    pix, z = project_to_pixels(points.detach().cpu(), cameras.to("cpu"))
    dynamic = torch.zeros(points.shape[0], dtype=torch.bool)
    for k, mask in enumerate(masks):
        h, w = mask.shape[-2:]
        sx = w / float(cameras.width.reshape(-1)[k])
        sy = h / float(cameras.height.reshape(-1)[k])
        col = torch.floor(pix[k, :, 0] * sx).long()
        row = torch.floor(pix[k, :, 1] * sy).long()
        seen = (z[k] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        hit = torch.zeros_like(seen)
        hit[seen] = mask.bool()[row[seen], col[seen]]
        dynamic |= hit
    return dynamic


def initial_static_flags(means: Tensor, metadata: dict[str, Any], enabled: bool) -> dict[str, Tensor]:
    """``{"static": [N] float}`` for the initial Gaussians, or ``{}`` (no flag: all dynamic).

    Args:
        means: Initial Gaussian centres [N, 3].
        metadata: The training dataset's metadata: ``motion_mask_filenames`` from the dataparser and, when training,
            the masks and cameras the datamanager read (:data:`~dynsplat_ns.priors.depth.MOTION_MASKS_KEY`).
        enabled: ``--pipeline.model.static-background``.

    Returns:
        ``{}`` when disabled or when the dataset has no motion masks; else the flag (1 = static). Without the read
        masks (a model built for ns-eval / ns-viewer, whose flags come from the checkpoint) all zeros.
    """
    if not enabled or not metadata.get(MASK_FILES_KEY):
        return {}
    seeding = metadata.get(MOTION_MASKS_KEY)
    if seeding is None:
        return {STATIC_KEY: torch.zeros(means.shape[0])}
    dynamic = dynamic_from_masks(means, seeding["cameras"], seeding["masks"])
    return {STATIC_KEY: (~dynamic).float()}
