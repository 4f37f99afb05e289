"""Seed points estimated from the training images by plane-sweep stereo, for captures without SfM points.

Splatting from points drawn uniformly in the scene box works when the cameras look into a small box from outside
(D-NeRF), but not when they stand inside it: on a 360° ring over a textured floor almost no random point lies on the
floor, the Gaussians that start next to a camera turn into floaters that only that camera sees, and the sky is painted
by whatever lies in front of it (issue 17: 11.6 dB on held-out views at 64 px; true-surface seeds: 18 dB).

:func:`stereo_seed_points` puts seeds where the images say the surfaces are. For a subsample of reference views and a
coarse pixel grid, each pixel's ray is swept over depths (uniform in inverse depth); at each depth the 3×3 patch around
the pixel is compared with the patches the point projects to in the nearest cameras (mean absolute colour difference,
the best two of four neighbours, so that one occluded neighbour does not veto a surface). A textured pixel takes the
depth of the clearly best match. A uniform pixel (sky, a plain wall) has no depth to find, and gives no seed by default:
densification fills uniform surfaces from the seeds on their edges, and the sky is the environment map's. (Seeding
uniform pixels at their farthest consistent depth, ``uniform_seeds``, put Gaussians in the sky that floated in front
of other views: 23.06 → 25.17 dB on held-out views of the 100×75 ring without them.) Pixels of the dataset's known
background colour and points next to a training camera give no seed either. Each seed takes its pixel's colour.

Pure torch on the CPU; a few seconds for tens of views. The datamanager calls it once at the start of training
(:class:`dynsplat_ns.training.datamanager.DynsplatDatamanager`), when the dataparser's seeds are random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from nerfstudio.cameras.cameras import Cameras, CameraType
from torch import Tensor

__all__ = ["StereoSeedOptions", "stereo_seed_points"]

# 3×3 patch offsets (dx, dy) in pixels of the downscaled images.
_PATCH = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.float32)


@dataclass(frozen=True)
class StereoSeedOptions:
    """Settings of :func:`stereo_seed_points` (measured on the generated 360° ring and forward-facing scenes)."""

    max_side: int = 48
    """Images are box-filtered down to at most this many pixels on their longer side (one candidate per pixel)."""
    max_reference_views: int = 32
    """At most this many reference views (evenly spaced in the training order); all views serve as neighbours."""
    num_depths: int = 64
    """Depth samples along each ray, uniform in inverse depth."""
    num_neighbours: int = 4
    """Nearest cameras (by centre) a reference view is compared with."""
    best_of: int = 2
    """The cost at a depth is the mean of the best this-many neighbours (robust to occlusion)."""
    photo_tol: float = 0.06
    """A depth is consistent when the patch cost (mean absolute RGB difference in [0, 1]) is below this."""
    texture_min: float = 0.02
    """Patches whose colour standard deviation is below this are uniform: they take the farthest consistent depth."""
    peak_ratio: float = 0.5
    """A textured pixel's best cost must be below this fraction of its median cost over depths (a clear match)."""
    uniform_seeds: bool = False
    """Whether uniform patches (sky, plain walls) give seeds at their farthest consistent depth; by default only
    textured pixels with a clear match are seeded."""
    near_fraction: float = 0.3
    """Rays start (and seeds stay) this fraction of the camera spread (the cameras' largest distance from their
    mean) away from every training camera."""


def stereo_seed_points(
    cameras: Cameras,
    images: Sequence[Tensor],
    aabb: Tensor,
    num_points: int,
    background: Tensor | None = None,
    options: StereoSeedOptions | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor] | None:
    """Seed points on the surfaces the training images show.

    Args:
        cameras: The training cameras (OpenGL camera-to-worlds, pinhole intrinsics; distortion is ignored).
        images: One image per camera, [H, W, 3(+)] uint8 or float in [0, 1], at the cameras' resolution.
        aabb: [2, 3] scene box; rays end at its farthest corner from the camera.
        num_points: The most seeds returned (a uniform subsample of all estimates).
        background: RGB in [0, 1] of a known background (alpha-composited data): pixels of that colour give no seed.
        options: Stereo settings.
        seed: Random seed of the subsample.

    Returns:
        ``(xyz float32 [M, 3], rgb uint8 [M, 3])``, or None when the capture does not allow stereo (fewer than two
        cameras, non-perspective cameras, or no pixel found a consistent depth).
    """
    opt = options or StereoSeedOptions()
    n = int(cameras.shape[0]) if cameras.shape else 1
    if n < 2 or len(images) != n or num_points <= 0:
        return None
    if not bool((cameras.camera_type == CameraType.PERSPECTIVE.value).all()):
        return None
    c2w = cameras.camera_to_worlds.detach().float().cpu()
    fx, fy, cx, cy = (getattr(cameras, k).detach().float().cpu().reshape(-1) for k in ("fx", "fy", "cx", "cy"))
    widths = cameras.width.detach().float().cpu().reshape(-1)
    heights = cameras.height.detach().float().cpu().reshape(-1)
    small, factors = zip(*(_downscale(img, opt.max_side) for img in images), strict=True)
    centers = c2w[:, :3, 3]
    spread = float((centers - centers.mean(dim=0)).norm(dim=1).max())
    box = aabb.detach().float().cpu()
    corners = torch.stack(torch.meshgrid(*[box[:, i] for i in range(3)], indexing="ij"), dim=-1).reshape(-1, 3)

    dist = torch.cdist(centers, centers)
    dist.fill_diagonal_(float("inf"))
    k = min(opt.num_neighbours, n - 1)
    refs = torch.linspace(0, n - 1, min(n, opt.max_reference_views)).round().long().unique().tolist()
    points, colors = [], []
    for r in refs:
        far = float(torch.cdist(centers[r : r + 1], corners).max())
        near = max(opt.near_fraction * spread, 0.02 * far)
        if far <= near:
            continue
        depths = 1.0 / torch.linspace(1.0 / near, 1.0 / far, opt.num_depths)  # near → far
        neighbours = dist[r].topk(k, largest=False).indices.tolist()
        cams = (c2w, fx, fy, cx, cy, widths, heights)
        found = _sweep_view(r, neighbours, cams, small, factors, depths, background, opt)
        if found is not None:
            points.append(found[0])
            colors.append(found[1])
    if not points:
        return None
    xyz, rgb = torch.cat(points), torch.cat(colors)
    if spread > 0:
        keep = torch.cdist(xyz, centers).min(dim=1).values > opt.near_fraction * spread
        xyz, rgb = xyz[keep], rgb[keep]
    if xyz.shape[0] == 0:
        return None
    if xyz.shape[0] > num_points:
        pick = torch.randperm(xyz.shape[0], generator=torch.Generator().manual_seed(seed))[:num_points]
        xyz, rgb = xyz[pick], rgb[pick]
    return xyz.contiguous(), (rgb.clamp(0, 1) * 255).round().to(torch.uint8)


def _downscale(image: Tensor, max_side: int) -> tuple[Tensor, int]:
    """[1, 3, h, w] float image box-filtered by an integer factor to at most ``max_side`` pixels, and the factor."""
    img = image[..., :3].detach().cpu()
    img = img.float() / 255.0 if not img.is_floating_point() else img.float()
    h, w = img.shape[:2]
    factor = max(1, -(-max(h, w) // max_side))
    out = img.permute(2, 0, 1)[None]
    if factor > 1:
        out = F.avg_pool2d(out, factor, factor, ceil_mode=True)
    return out, factor


def _sample(image: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear RGB of ``image`` [1, 3, h, w] at pixel coordinates ``x``, ``y`` (any equal shapes) → [..., 3]."""
    h, w = image.shape[-2:]
    grid = torch.stack([x.reshape(-1) / w * 2 - 1, y.reshape(-1) / h * 2 - 1], dim=-1)[None, None]
    rgb = F.grid_sample(image, grid, mode="bilinear", align_corners=False, padding_mode="border")[0, :, 0].T
    return rgb.reshape(*x.shape, 3)


def _sweep_view(
    r: int,
    neighbours: list[int],
    cams: tuple[Tensor, ...],
    small: Sequence[Tensor],
    factors: Sequence[int],
    depths: Tensor,
    background: Tensor | None,
    opt: StereoSeedOptions,
) -> tuple[Tensor, Tensor] | None:
    """Seeds (xyz [M, 3], rgb float [M, 3]) of reference view ``r``: the best depth of each usable pixel."""
    c2w, fx, fy, cx, cy, widths, heights = cams
    img, f = small[r], factors[r]
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    ref = _sample(img, xs[:, None] + _PATCH[:, 0], ys[:, None] + _PATCH[:, 1])  # [P, 9, 3]
    rays_cam = torch.stack([(xs * f - cx[r]) / fx[r], -(ys * f - cy[r]) / fy[r], -torch.ones_like(xs)], dim=-1)
    rays = rays_cam @ c2w[r, :3, :3].T  # [P, 3], unit length along the viewing axis
    pts = c2w[r, :3, 3] + depths[None, :, None] * rays[:, None]  # [P, D, 3]
    num_px, num_d = pts.shape[:2]

    costs = []
    for nb in neighbours:
        rot, origin = c2w[nb, :3, :3], c2w[nb, :3, 3]
        local = (pts.reshape(-1, 3) - origin) @ rot  # camera coordinates (OpenGL: looking down -z)
        z = -local[:, 2]
        u = fx[nb] * local[:, 0] / z.clamp_min(1e-9) + cx[nb]
        v = -fy[nb] * local[:, 1] / z.clamp_min(1e-9) + cy[nb]
        inside = (z > 1e-6) & (u >= 0) & (u < widths[nb]) & (v >= 0) & (v < heights[nb])
        fn = factors[nb]
        patch = _sample(small[nb], u[:, None] / fn + _PATCH[:, 0], v[:, None] / fn + _PATCH[:, 1])
        cost = (patch.reshape(num_px, num_d, 9, 3) - ref[:, None]).abs().mean(dim=(-1, -2))
        costs.append(torch.where(inside.reshape(num_px, num_d), cost, torch.full_like(cost, float("inf"))))
    stacked = torch.stack(costs).sort(dim=0).values
    cost = stacked[: min(opt.best_of, stacked.shape[0])].mean(dim=0)  # [P, D]

    best, best_i = cost.min(dim=1)
    finite = torch.where(cost.isfinite(), cost, torch.nan)
    median = finite.nanmedian(dim=1).values
    consistent = cost < opt.photo_tol
    index = torch.arange(num_d).expand(num_px, -1)
    farthest = torch.where(consistent, index, torch.full_like(index, -1)).amax(dim=1)
    textured = ref.std(dim=1).mean(dim=-1) > opt.texture_min
    use = torch.where(textured, (best < opt.photo_tol) & (best < opt.peak_ratio * median), farthest >= 0)
    if not opt.uniform_seeds:
        use &= textured
    if background is not None:
        is_background = (ref - background.float().reshape(1, 1, 3)).abs().amax(dim=(-1, -2)) < opt.photo_tol
        use &= ~is_background
    if not bool(use.any()):
        return None
    chosen = torch.where(textured, best_i, farthest.clamp_min(0))
    xyz = c2w[r, :3, 3] + depths[chosen][:, None] * rays
    return xyz[use], ref[use, 4]
