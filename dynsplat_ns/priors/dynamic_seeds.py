"""Dynamic seed points unprojected from the motion masks with the depth prior (Shape-of-Motion's foreground init).

Metric depth (DyCheck's LiDAR, in world units once the dataparser scale is applied) is used as it is; relative
disparity (D2RF) is first aligned as below.

Structure from motion on a real video reconstructs the static background only: the moving objects have no consistent
matches, so with ``static_background`` every seed point would be static and nothing could move. Shape of Motion
initialises its foreground from depth + masks instead; so do we: for a few training views, the relative disparity
prior (D2RF ``dpt/``) is aligned to the seed points' scale (least squares of the prior against 1/z of the seed points
that project outside the mask into that view, with one outlier-rejection pass), then the masked pixels are unprojected
at that depth, coloured from the image. They are dynamic by construction (they lie in a mask); their canonical
position is where the object was at that view's time (every motion model starts at the identity).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dynsplat_ns.priors.static_split import project_to_pixels

#: Fewest seed points with a valid prior in a view to align its disparity (fewer: the view gives no seeds).
MIN_ALIGN_POINTS = 8
#: Training views (evenly spread) whose masked pixels give the dynamic seeds; 0: all.
SEED_FRAMES = 0


def align_disparity(prior: Tensor, inv_depth: Tensor) -> tuple[float, float] | None:
    """(a, b) with ``prior ≈ a / z + b`` by least squares, refit once without the residuals > 3 MADs; None when the
    fit is degenerate or inverted (a <= 0).

    Args:
        prior: Prior disparity at the seed points' pixels [M].
        inv_depth: 1 / z of the same points in that camera [M].
    """
    keep = torch.ones_like(prior, dtype=torch.bool)
    a = b = 0.0
    for _ in range(2):
        x, y = inv_depth[keep].double(), prior[keep].double()
        if x.numel() < MIN_ALIGN_POINTS or float(x.var()) <= 1e-12:
            return None
        xc = x - x.mean()
        a = float((xc * (y - y.mean())).sum() / xc.square().sum())
        b = float(y.mean() - a * x.mean())
        residual = (a * inv_depth.double() + b - prior.double()).abs()
        keep = residual <= 3.0 * residual[keep].median().clamp_min(1e-9) * 1.4826
    return (a, b) if a > 0 else None


def _frames(num_views: int, num_frames: int) -> list[int]:
    """``num_frames`` view indices spread evenly over ``num_views`` (all of them when 0 or more than there are)."""
    if num_frames <= 0 or num_frames >= num_views:
        return list(range(num_views))
    return sorted({round(i * (num_views - 1) / max(num_frames - 1, 1)) for i in range(num_frames)})


def unproject_pixels(camera, rows: Tensor, cols: Tensor, depth: Tensor, size: tuple[int, int]) -> Tensor:
    """World points [P, 3] of pixels (``rows``, ``cols`` [P] of an image of ``size`` = (h, w), which may differ from
    the camera's own size) at z-depth ``depth`` [P], for one nerfstudio camera (OpenGL axes)."""
    h, w = size
    sx, sy = w / float(camera.width.reshape(-1)[0]), h / float(camera.height.reshape(-1)[0])
    u, v = (cols.float() + 0.5) / sx, (rows.float() + 0.5) / sy
    d = depth.float()
    local = torch.stack(
        [(u - float(camera.cx)) / float(camera.fx) * d, -(v - float(camera.cy)) / float(camera.fy) * d, -d], dim=-1
    )
    c2w = camera.camera_to_worlds.float().reshape(3, 4)
    return local @ c2w[:, :3].T + c2w[:, 3]


@torch.no_grad()
def dynamic_seed_points(
    points: Tensor, seeding: dict[str, Any], num_points: int, num_frames: int = 1, seed: int = 0
) -> tuple[Tensor, Tensor] | None:
    """Seed points [M, 3] and colours [M, 3] (0–1) unprojected from the masked pixels of ``num_frames`` views.

    Args:
        points: The dataparser's seed points [N, 3] (their scale fixes the prior's).
        seeding: :data:`~dynsplat_ns.priors.depth.MOTION_MASKS_KEY` metadata: ``cameras``, ``masks`` and, when the
            dataset has depth, metric ``depth`` (world units) or relative ``disparity``, and ``images`` (one per view
            at the mask's resolution; None where missing).
        num_points: Total points to draw (spread over the views; fewer when the masks have fewer pixels).
        num_frames: Views to unproject (evenly spread over the training views; 0: all).
        seed: RNG seed of the pixel draw.

    Returns:
        None when there is no depth or disparity, no mask pixel or no view whose prior aligns to the seed points.
    """
    disparities, metric, images = seeding.get("disparity"), seeding.get("depth"), seeding.get("images")
    priors = metric or disparities
    if not priors or images is None or num_points <= 0 or points.shape[0] < MIN_ALIGN_POINTS:
        return None
    cameras, masks = seeding["cameras"].to("cpu"), seeding["masks"]
    pix, z = project_to_pixels(points.detach().cpu(), cameras)
    views = [k for k in _frames(len(masks), num_frames) if priors[k] is not None and bool(masks[k].any())]
    gen = torch.Generator().manual_seed(seed)
    xyz, rgb = [], []
    for k in views:
        mask = masks[k].bool()
        h, w = mask.shape
        sx, sy = w / float(cameras.width.reshape(-1)[k]), h / float(cameras.height.reshape(-1)[k])
        if metric:  # metric depth (DyCheck LiDAR): in world units already
            depth = torch.nan_to_num(metric[k].float().reshape(h, w))
        else:
            disp = disparities[k].float()
            col, row = torch.floor(pix[k, :, 0] * sx).long(), torch.floor(pix[k, :, 1] * sy).long()
            seen = (z[k] > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
            seen[seen.clone()] = ~mask[row[seen], col[seen]]  # the static part of the view
            prior = torch.zeros_like(z[k])
            prior[seen] = disp[row[seen], col[seen]]
            seen &= torch.isfinite(prior) & (prior > 0)
            fit = align_disparity(prior[seen], 1.0 / z[k][seen])
            if fit is None:
                continue
            a, b = fit
            depth = torch.where(disp > 0, a / (disp - b), 0.0)
        rows, cols = torch.nonzero(mask & torch.isfinite(depth) & (depth > 0), as_tuple=True)
        take = torch.randperm(rows.shape[0], generator=gen)[: max(num_points // len(views), 1)]
        rows, cols = rows[take], cols[take]
        xyz.append(unproject_pixels(cameras[k], rows, cols, depth[rows, cols], (h, w)))
        rgb.append(images[k][rows, cols, :3].float())
    if not xyz or sum(x.shape[0] for x in xyz) == 0:
        return None
    return torch.cat(xyz), torch.cat(rgb).clamp(0.0, 1.0)


def with_dynamic_seeds(
    means: Tensor, colors: Tensor | None, metadata: dict[str, Any], config: Any, split: bool, from_dataparser: bool
) -> tuple[Tensor, Tensor | None]:
    """The seed points plus :func:`dynamic_seed_points` (colours then float 0–1) when the model config asks for them.

    Args:
        means: Initial points [N, 3]; colors: their colours [N, 3] (uint8 or 0–1) or None.
        metadata: The training metadata (``MOTION_MASKS_KEY`` with masks, depth or disparity and images).
        config: The model config (``dynamic_seed_points``, ``random_init``).
        split: Whether the static split is on (:func:`~dynsplat_ns.priors.static_split.static_split_enabled`).
        from_dataparser: Whether ``means`` are the dataparser's points (random points give the prior no scale).

    Returns:
        The points unchanged when off, without masks + depth, or when no view aligns.
    """
    from dynsplat_ns.priors.static_split import seeding_input

    if not split or not from_dataparser or config.random_init:
        return means, colors
    seeding = seeding_input(metadata)
    if seeding is None:
        return means, colors
    extra = dynamic_seed_points(means, seeding, int(config.dynamic_seed_points), SEED_FRAMES)
    if extra is None:
        return means, colors
    xyz, rgb = extra
    if colors is not None:
        colors = colors.float() / 255.0 if colors.dtype == torch.uint8 or colors.max() > 1.0 else colors.float()
        colors = torch.cat([colors.cpu(), rgb])
    return torch.cat([means.float().cpu(), xyz]), colors
