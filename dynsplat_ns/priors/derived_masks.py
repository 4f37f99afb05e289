"""Motion masks derived from the data itself: multi-view depth and colour consistency of the training video.

DyCheck captures and phone videos ship metric depth (LiDAR) but no motion masks. A static surface point seen in
training view ``i`` (its pixel unprojected with view i's depth) lands, in another view ``j`` of the same video, on a
pixel whose depth and colour agree with it; a point of a moving object does not: at view j's time the object has
moved, so view j sees *through* where the point was (j's depth there is larger than the point's: a free-space
violation) or sees another colour. Each pixel of view i is compared with views at several time offsets; it is
moving when a third of the neighbours that can judge it (the point in frame and not hidden behind a nearer surface
there) say so. An opening removes thin detections along silhouettes (mixed edge colours); then the masks are dilated:
a static point wrongly made dynamic only costs a motion evaluation, a moving one held static can never move.

Works on the cached (undistorted) training images, their metric depth priors (world units, 0 / NaN = none) and the
training cameras (nerfstudio, OpenGL axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dynsplat_ns.priors.dynamic_seeds import unproject_pixels
from dynsplat_ns.priors.static_split import project_to_pixels


@dataclass(frozen=True)
class MaskDerivation:
    """Settings of :func:`derive_motion_masks`."""

    offsets: tuple[int, ...] = (-12, -8, -5, -3, 3, 5, 8, 12)
    """Frame offsets of the neighbour views each view is compared with (in training order, i.e. time)."""
    depth_tolerance: float = 0.1
    """Relative depth difference beyond which a point is in front of what a neighbour sees (free space) or behind it
    (hidden: that neighbour cannot judge)."""
    color_tolerance: float = 0.1
    """Mean absolute RGB difference (0–1) beyond which a point's colour disagrees with a neighbour's."""
    vote: float = 0.34
    """Fraction of the judging neighbours that must call a pixel moving."""
    min_judges: int = 2
    """Fewest judging neighbours for a pixel to be called moving."""
    dilate: int = 1
    """Pixels of dilation of the final masks."""
    open: int = 1
    """Radius of the morphological opening that removes thin (silhouette-edge) false detections."""
    search: int = 1
    """A point's colour is compared with the best match within this many pixels of where it lands in a neighbour (depth
    errors move static points by a pixel or two; a moving object finds no match)."""
    fill_holes: bool = True
    """Give pixels without depth the depth of the nearest pixel with one (LiDAR holes sit at depth edges, often on
    the moving objects)."""


def _unproject(depth: Tensor, camera) -> Tensor:
    """World points [H, W, 3] of the pixel centres of ``camera`` (one nerfstudio camera) at z-depth ``depth`` [H, W]."""
    h, w = depth.shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return unproject_pixels(camera, rows.reshape(-1), cols.reshape(-1), depth.reshape(-1), (h, w)).reshape(h, w, 3)


def _project(points: Tensor, camera, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pixel coordinates [H, W, 2] in an image of ``size`` = (h, w) (which may be smaller than the camera's own) and
    z-depth [H, W] of world ``points`` [H, W, 3] in one nerfstudio camera."""
    pixels, z = project_to_pixels(points.reshape(-1, 3), camera.reshape((1,)))
    h, w = size
    scale = torch.tensor([w / float(camera.width.reshape(-1)[0]), h / float(camera.height.reshape(-1)[0])])
    return (pixels[0] * scale).reshape(*points.shape[:-1], 2), z[0].reshape(points.shape[:-1])


def _color_error(rgb_i: Tensor, rgb_j: Tensor, pixels: Tensor, search: int) -> Tensor:
    """Mean absolute RGB difference [H, W] between ``rgb_i`` and the best match in ``rgb_j`` within ``search`` pixels of
    ``pixels`` [H, W, 2]."""
    best = None
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            shifted = pixels + torch.tensor([float(dx), float(dy)])
            err = (rgb_i - _sample(rgb_j, shifted)).abs().mean(dim=-1)
            best = err if best is None else torch.minimum(best, err)
    return best


def fill_depth_holes(depth: Tensor, valid: Tensor, iterations: int = 3) -> Tensor:
    """``depth`` [H, W] with each invalid pixel within ``iterations`` pixels of a valid one given the largest valid
    depth of its 3×3 neighbourhood, grown outwards one pixel per step; farther pixels stay 0."""
    depth, valid = torch.where(valid, depth, 0.0), valid.clone()
    for _ in range(iterations):
        if bool(valid.all()):
            break
        d = depth[None, None]
        v = valid.float()[None, None]
        # the nearest-ish valid neighbour: the largest valid depth around (ties between surfaces go to the far one,
        # which for a hole at an object's edge is the background, so the object's own pixels stay consistent)
        grown = F.max_pool2d(torch.where(v > 0, d, torch.zeros_like(d)), 3, stride=1, padding=1)[0, 0]
        any_valid = F.max_pool2d(v, 3, stride=1, padding=1)[0, 0] > 0
        new = ~valid & any_valid
        depth = torch.where(new, grown, depth)
        valid = valid | new
    return depth


def _sample(image: Tensor, pixels: Tensor) -> Tensor:
    """``image`` [H, W, C] at the nearest pixel of ``pixels`` [..., 2] (callers mask out-of-frame pixels)."""
    h, w = image.shape[:2]
    col = pixels[..., 0].floor().long().clamp(0, w - 1)
    row = pixels[..., 1].floor().long().clamp(0, h - 1)
    return image[row, col]


@torch.no_grad()
def derive_motion_masks(
    cameras, images: list[Tensor], depths: list[Tensor], settings: MaskDerivation = MaskDerivation()
) -> list[Tensor]:
    """Bool motion masks [H, W] (True = moving) of every training view.

    Args:
        cameras: The N training cameras (nerfstudio ``Cameras``, undistorted intrinsics), in time order; the images
            may be a reduced copy of the cameras' own size.
        images: N images [H, W, 3 or 4] float 0–1 (a 4th channel is ignored).
        depths: N metric z-depth maps [H, W] or [H, W, 1] in world units (0 or NaN: none).
        settings: Thresholds and neighbours.

    Returns:
        N masks; a view without depth gets an all-False mask.
    """
    n = len(images)
    cameras = cameras.to("cpu")
    rgb = [im[..., :3].float().cpu() for im in images]
    depth = [d.reshape(d.shape[0], d.shape[1]).float().cpu() for d in depths]
    valid = [torch.isfinite(d) & (d > 0) for d in depth]
    masks = []
    for i in range(n):
        h, w = depth[i].shape
        moving_votes = torch.zeros(h, w)
        judges = torch.zeros(h, w)
        di = fill_depth_holes(depth[i], valid[i]) if settings.fill_holes else torch.nan_to_num(depth[i])
        has_i = di > 0
        points = _unproject(di, cameras[i])
        for offset in settings.offsets:
            j = i + offset
            if j < 0 or j >= n:
                continue
            pix, z = _project(points, cameras[j], tuple(depth[j].shape))
            hj, wj = depth[j].shape
            inside = has_i & (z > 0) & (pix[..., 0] >= 0) & (pix[..., 0] < wj) & (pix[..., 1] >= 0) & (pix[..., 1] < hj)
            dj = _sample(torch.nan_to_num(depth[j])[..., None], pix)[..., 0]
            has_depth = _sample(valid[j][..., None], pix)[..., 0]
            front = has_depth & (z < dj * (1.0 - settings.depth_tolerance))  # j sees through the point
            hidden = has_depth & (z > dj * (1.0 + settings.depth_tolerance))  # a nearer surface hides it from j
            color = _color_error(rgb[i], rgb[j], pix, settings.search) > settings.color_tolerance
            judging = inside & ~hidden
            moving = judging & (front | color)
            judges += judging.float()
            moving_votes += moving.float()
        mask = (judges >= settings.min_judges) & (moving_votes >= settings.vote * judges.clamp_min(1)) & has_i
        if settings.open > 0:  # opening: thin false lines at silhouettes (mixed edge colours) go, blobs stay
            k = 2 * settings.open + 1
            eroded = -F.max_pool2d(-mask.float()[None, None], k, stride=1, padding=settings.open)
            mask = F.max_pool2d(eroded, k, stride=1, padding=settings.open)[0, 0] > 0
        if settings.dilate > 0:
            k = 2 * settings.dilate + 1
            mask = F.max_pool2d(mask.float()[None, None], k, stride=1, padding=settings.dilate)[0, 0] > 0
        masks.append(mask)
    return masks


#: A seed point is dynamic when more than this fraction of the views seeing it hold it in their derived mask.
SEED_VOTE = 0.5
#: Longest image side the masks are derived at (images and depth are reduced to it; the masks are used at that size).
MAX_SIDE = 192


def _reduce(image: Tensor, depth: Tensor, max_side: int) -> tuple[Tensor, Tensor]:
    """``image`` [H, W, C] (area) and ``depth`` [H, W] (nearest) reduced so the longest side is at most
    ``max_side``."""
    h, w = depth.shape
    factor = min(1.0, max_side / max(h, w))
    if factor >= 1.0:
        return image, depth
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    image = F.interpolate(image.permute(2, 0, 1)[None], size=size, mode="area")[0].permute(1, 2, 0)
    depth = F.interpolate(depth[None, None], size=size, mode="nearest")[0, 0]
    return image, depth


def derived_motion_seeding(cameras, items, settings: MaskDerivation = MaskDerivation(), max_side: int = MAX_SIDE):
    """The static/dynamic seeding input (:data:`~dynsplat_ns.priors.depth.MOTION_MASKS_KEY`) from masks derived
    from the training views' metric depth priors.

    Args:
        cameras: The N training cameras (undistorted intrinsics of the cached images).
        items: The N cached training images (dicts with ``image`` and ``depth_prior``, e.g. a datamanager's
            ``cached_train``), read one at a time.
        settings: Mask derivation settings.
        max_side: Longest side the masks are derived at.

    Returns:
        None when the video is too short for any neighbour (fewer frames than the smallest offset): no split. Else
        ``{"cameras", "masks", "depth", "images", "min_fraction"}`` (masks, depth and images at the reduced size,
        in dataset order; the cameras at the images' own size; ``min_fraction``: :data:`SEED_VOTE`).
    """
    from dynsplat_ns.priors.depth import DEPTH_BATCH_KEY

    if len(items) <= min(abs(o) for o in settings.offsets):
        return None
    images, depths = [], []
    for k in range(len(items)):
        item = items[k]
        depth = item[DEPTH_BATCH_KEY].float().cpu()
        image, depth = _reduce(item["image"].float().cpu(), depth.reshape(depth.shape[0], depth.shape[1]), max_side)
        if item["image"].dtype == torch.uint8:
            image = image / 255.0
        images.append(image)
        depths.append(depth)
    cameras = cameras.to("cpu")
    order = list(range(len(images)))
    if cameras.times is not None:
        order = torch.argsort(cameras.times.reshape(-1), stable=True).tolist()
    masks_in_order = derive_motion_masks(cameras[torch.tensor(order)], [images[k] for k in order],
                                         [depths[k] for k in order], settings)  # fmt: skip
    masks = [torch.zeros(1)] * len(order)
    for rank, k in enumerate(order):
        masks[k] = masks_in_order[rank]
    return {"cameras": cameras, "masks": masks, "depth": depths, "images": [im[..., :3] for im in images],
            "min_fraction": SEED_VOTE}
