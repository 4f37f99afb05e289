"""A static 360° scene (ball, box and pillar on a checkerboard floor under a white sky) in two capture layouts.

``make_ring360_scene`` writes a ring of cameras all around the objects, at varying heights, in the EyefulTower layout
that ``dynsplat-eyeful`` reads (``cameras.json``, ``splits.json``, ``images-jpeg-1k/`` with ``transforms*.json``;
pinhole lenses without distortion). ``make_forward_scene`` renders the same objects from a forward-facing patch of
cameras in the LLFF layout (``poses_bounds.npy`` + ``images/``). Neither writes seed points: the parsers seed at
random, as for a capture without SfM.

World (z up, metres-like units): the floor is the square ``|x|, |y| <= floor_half`` at z = 0 with a checker texture;
the objects stand on it near the origin; rays that miss everything see the sky colour. Lambert shading with an
ambient term and hard shadows from a directional light, so every surface has a view-independent colour.

Usage::

    dynsplat-make-scene ring360 OUT_DIR [--n-views 30] [--width 200 --height 150]
    dynsplat-make-scene ring360 OUT_DIR --forward-facing [--n-views 20] [--width 256 --height 144]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .camera_models import model_rays
from .eyeful import EYEFUL_FROM_OURS, subsample, to_transforms
from .llff import check_out_dir, poses_bounds_rows
from .synthetic import intersect_box, intersect_sphere, look_at, to_uint8

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class RingScene:
    """The objects, the floor and the light (all static)."""

    ball_center: Vec3 = (0.55, -0.45, 0.42)
    """Centre of the ball."""
    ball_radius: float = 0.42
    """Radius of the ball."""
    ball_color: Vec3 = (0.85, 0.2, 0.15)
    """Albedo of the ball."""
    box_lo: Vec3 = (-0.95, -0.35, 0.0)
    """Minimum corner of the box (it stands on the floor)."""
    box_hi: Vec3 = (-0.25, 0.35, 0.55)
    """Maximum corner of the box."""
    box_color: Vec3 = (0.2, 0.4, 0.85)
    """Albedo of the box."""
    pillar_lo: Vec3 = (0.1, 0.45, 0.0)
    """Minimum corner of the pillar (a tall box)."""
    pillar_hi: Vec3 = (0.4, 0.75, 1.5)
    """Maximum corner of the pillar."""
    pillar_color: Vec3 = (0.9, 0.75, 0.2)
    """Albedo of the pillar."""
    floor_half: float = 4.0
    """The floor covers ``|x|, |y| <= floor_half`` at z = 0."""
    tile: float = 0.4
    """Checker tile side."""
    floor_colors: tuple[Vec3, Vec3] = ((0.82, 0.8, 0.74), (0.3, 0.34, 0.32))
    """Albedos of the two checker tiles."""
    sky: Vec3 = (1.0, 1.0, 1.0)
    """Colour of rays that hit nothing."""
    light_dir: Vec3 = (0.45, -0.35, 0.82)
    """Direction towards the light (normalised on use)."""
    ambient: float = 0.4
    """Ambient fraction of the shading."""

    def boxes(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(lo, hi, albedo)`` of the box and the pillar."""
        parts = ((self.box_lo, self.box_hi, self.box_color), (self.pillar_lo, self.pillar_hi, self.pillar_color))
        return [(np.asarray(lo, float), np.asarray(hi, float), np.asarray(c, float)) for lo, hi, c in parts]


def intersect_floor(origin: np.ndarray, dirs: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray hits with the square ``|x|, |y| <= half`` at z = 0: ``(t [...], hit [...])`` (t is inf on a miss)."""
    origin = np.broadcast_to(np.asarray(origin, dtype=np.float64), dirs.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[..., 2] / dirs[..., 2]
    t = np.where(np.isfinite(t) & (t > 1e-9), t, np.inf)
    p = origin + dirs * np.where(np.isfinite(t), t, 0.0)[..., None]
    hit = np.isfinite(t) & (np.abs(p[..., 0]) <= half) & (np.abs(p[..., 1]) <= half)
    return np.where(hit, t, np.inf), hit


def _objects_hit(scene: RingScene, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit among the ball, box and pillar: ``(t, normal, albedo)`` (t inf on a miss)."""
    best, _ = intersect_sphere(origin, dirs, np.asarray(scene.ball_center, float), scene.ball_radius)
    points = origin + dirs * np.where(np.isfinite(best), best, 0.0)[..., None]
    normal = (points - np.asarray(scene.ball_center)) / scene.ball_radius
    albedo = np.broadcast_to(np.asarray(scene.ball_color, float), dirs.shape).copy()
    for lo, hi, color in scene.boxes():
        t, n, hit = intersect_box(origin, dirs, lo, hi)
        closer = hit & (t < best)
        best = np.where(closer, t, best)
        normal = np.where(closer[..., None], n, normal)
        albedo = np.where(closer[..., None], color, albedo)
    return best, normal, albedo


def trace(scene: RingScene, origin: np.ndarray, dirs: np.ndarray) -> dict[str, np.ndarray]:
    """Shade rays ``dirs [H, W, S, 3]`` from ``origin [3]`` (``S`` samples per pixel are averaged).

    Returns:
        ``rgb`` ``[H, W, 3]`` float32 in [0, 1] and ``distance`` ``[H, W, S]`` (inf where the sky is seen).
    """
    t_obj, normal, albedo = _objects_hit(scene, origin, dirs)
    t_floor, floor_hit = intersect_floor(origin, dirs, scene.floor_half)
    on_floor = floor_hit & (t_floor < t_obj)
    t = np.where(on_floor, t_floor, t_obj)
    points = origin + dirs * np.where(np.isfinite(t), t, 0.0)[..., None]
    parity = (np.floor(points[..., 0] / scene.tile) + np.floor(points[..., 1] / scene.tile)) % 2 == 0
    tiles = np.where(parity[..., None], np.asarray(scene.floor_colors[0]), np.asarray(scene.floor_colors[1]))
    albedo = np.where(on_floor[..., None], tiles, albedo)
    normal = np.where(on_floor[..., None], np.array([0.0, 0.0, 1.0]), normal)
    light = np.asarray(scene.light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0.0, None)
    # Hard shadows: a ray towards the light from every hit point (nudged off the surface) must reach the sky.
    shadow_origin = points + normal * 1e-4
    lit = np.ones(t.shape, dtype=bool)
    for lo, hi, _ in scene.boxes():
        lit &= ~_segment_hits_box(shadow_origin, light, lo, hi)
    lit &= ~_segment_hits_sphere(shadow_origin, light, np.asarray(scene.ball_center, float), scene.ball_radius)
    shade = albedo * (scene.ambient + (1.0 - scene.ambient) * lambert * lit)[..., None]
    hit = np.isfinite(t)
    color = np.where(hit[..., None], shade, np.asarray(scene.sky, dtype=np.float64))
    return {"rgb": np.clip(color.mean(axis=-2), 0.0, 1.0).astype(np.float32), "distance": t}


def _segment_hits_box(origins: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether rays from per-sample ``origins [..., 3]`` along one ``direction`` hit the box."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / direction
        t1, t2 = (lo - origins) * inv, (hi - origins) * inv
    t1, t2 = np.nan_to_num(t1, nan=-np.inf), np.nan_to_num(t2, nan=np.inf)
    near = np.minimum(t1, t2).max(axis=-1)
    far = np.maximum(t1, t2).min(axis=-1)
    return (near <= far) & (far > 1e-6)


def _segment_hits_sphere(origins: np.ndarray, direction: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Whether rays from per-sample ``origins [..., 3]`` along one unit ``direction`` hit the sphere."""
    oc = origins - center
    b = oc @ direction
    c = (oc * oc).sum(axis=-1) - radius * radius
    disc = b * b - c
    return (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0.0)) > 1e-6)


def ring_poses(
    n: int, radius: float = 3.2, height_range: tuple[float, float] = (0.7, 2.1), target_z: float = 0.45
) -> list[np.ndarray]:
    """OpenGL camera-to-worlds on a ring all around the objects, heights oscillating three times per turn."""
    out = []
    lo, hi = height_range
    for i in range(n):
        azimuth = 2.0 * math.pi * i / n
        height = lo + (hi - lo) * 0.5 * (1.0 - math.cos(3.0 * azimuth + 0.4))
        r = radius * (1.0 + 0.06 * math.sin(2.0 * azimuth))
        eye = np.array([r * math.cos(azimuth), r * math.sin(azimuth), height])
        target = np.array([0.15 * math.sin(azimuth), 0.15 * math.cos(azimuth), target_z])
        out.append(look_at(eye, target=target))
    return out


def forward_poses(n: int, distance: float = 3.4, spread: float = 0.8, height: float = 1.4) -> list[np.ndarray]:
    """OpenGL camera-to-worlds on a small patch in front of the objects (along -y), all looking at them."""
    cols = max(1, int(math.ceil(math.sqrt(n))))
    rows = max(1, math.ceil(n / cols))
    out = []
    for i in range(n):
        row, col = divmod(i, cols)
        col = col if row % 2 == 0 else cols - 1 - col
        x = (col / max(cols - 1, 1) - 0.5) * 2.0 * spread
        z = height + (row / max(rows - 1, 1) - 0.5) * spread
        out.append(look_at(np.array([x, -distance, z]), target=np.array([0.0, 0.0, 0.45])))
    return out


def render(scene: RingScene, c2w: np.ndarray, width: int, height: int, focal: float, supersample: int) -> dict:
    """Render one pinhole view (principal point at the centre): ``rgb`` uint8 ``[H, W, 3]`` and ``distance``."""
    origin, dirs, _ = model_rays(c2w, width, height, focal, focal, width / 2, height / 2, supersample=supersample)
    out = trace(scene, origin, dirs)
    return {"rgb": to_uint8(out["rgb"]), "distance": out["distance"]}


def krt_entry(camera_id: str, c2w: np.ndarray, width: int, height: int, focal: float) -> dict:
    """One EyefulTower ``cameras.json`` KRT entry for an undistorted pinhole (column-major K and T, OpenCV w2c)."""
    k = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    c2w_cv = np.eye(4)
    c2w_cv[:3, :4] = c2w[:3, :4]
    c2w_cv[:3, 1:3] *= -1.0
    c2w_cv[:3, :] = EYEFUL_FROM_OURS @ c2w_cv[:3, :]
    return {
        "cameraId": camera_id, "K": k.T.tolist(), "T": np.linalg.inv(c2w_cv).T.tolist(), "width": width,
        "height": height, "distortionModel": "RadialAndTangential", "distortion": [0.0] * 5,
    }  # fmt: skip


def make_ring360_scene(
    out_dir: str | Path,
    n_views: int = 30,
    width: int = 200,
    height: int = 150,
    test_every: int = 5,
    fov_x_deg: float = 60.0,
    supersample: int = 3,
    overwrite: bool = False,
    scene: RingScene | None = None,
) -> Path:
    """Render the ring of views and write them as an EyefulTower capture (``images-jpeg-1k`` only).

    Args:
        out_dir: Capture folder; created if missing. Must be empty unless ``overwrite``.
        n_views: Cameras on the ring (one rig camera, one image per ring position).
        width: Image width in pixels.
        height: Image height in pixels.
        test_every: View ``i`` is a test view when ``i % test_every == test_every // 2`` (0: none).
        fov_x_deg: Horizontal field of view in degrees.
        supersample: ``k×k`` samples per pixel.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: The scene (default: :class:`RingScene`).

    Returns:
        The capture folder.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, ["images-*", "cameras.json", "splits.json"])
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = RingScene() if scene is None else scene
    focal = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    cams = [(f"1/DSC{i:04d}", c2w) for i, c2w in enumerate(ring_poses(n_views))]
    krt = [krt_entry(cid, c2w, width, height, focal) for cid, c2w in cams]
    is_test = [test_every > 0 and i % test_every == test_every // 2 for i in range(n_views)]
    splits = {
        "train": [cid for (cid, _), test in zip(cams, is_test, strict=True) if not test],
        "test": [cid for (cid, _), test in zip(cams, is_test, strict=True) if test],
    }
    (out_dir / "cameras.json").write_text(json.dumps({"KRT": krt}, indent=1))
    (out_dir / "splits.json").write_text(json.dumps(splits, indent=1))
    folder = out_dir / "images-jpeg-1k"
    for cid, c2w in cams:
        path = folder / f"{cid}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render(scene, c2w, width, height, focal, supersample)["rgb"]).save(path, quality=95)
    transforms = to_transforms(krt, splits, (width, height), None)
    (folder / "transforms.json").write_text(json.dumps(transforms, indent=1))
    for n, name in ((300, "transforms_300.json"), (len(krt) // 2, "transforms_half.json")):
        (folder / name).write_text(json.dumps(subsample(transforms, n), indent=1))
    return out_dir


def make_forward_scene(
    out_dir: str | Path,
    n_views: int = 20,
    width: int = 256,
    height: int = 144,
    fov_x_deg: float = 60.0,
    supersample: int = 3,
    overwrite: bool = False,
    scene: RingScene | None = None,
) -> Path:
    """Render the same objects from a forward-facing patch of cameras in the LLFF layout (no ``sparse/``).

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        n_views: Number of images (the LLFF parser holds out every 8th for testing).
        width: Image width in pixels.
        height: Image height in pixels.
        fov_x_deg: Horizontal field of view in degrees.
        supersample: ``k×k`` samples per pixel.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: The scene (default: :class:`RingScene`).

    Returns:
        The output folder.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, ["images", "images_*", "sparse", "poses_bounds.npy"])
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    scene = RingScene() if scene is None else scene
    focal = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    c2ws = forward_poses(n_views)
    bounds = []
    for i, c2w in enumerate(c2ws):
        out = render(scene, c2w, width, height, focal, supersample)
        Image.fromarray(out["rgb"]).save(out_dir / "images" / f"IMG_{i:04d}.png")
        dist = out["distance"][np.isfinite(out["distance"])]
        bounds.append((0.8 * float(dist.min()), 1.1 * float(dist.max())))  # ray lengths bound axis depths
    np.save(out_dir / "poses_bounds.npy", poses_bounds_rows(c2ws, (height, width, focal), np.asarray(bounds)))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene ring360", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--forward-facing", action="store_true", help="LLFF layout, cameras on a patch in front")
    parser.add_argument("--n-views", type=int, default=None, help="images (default 30 on the ring, 20 forward)")
    parser.add_argument("--width", type=int, default=None, help="image width (default 200 ring, 256 forward)")
    parser.add_argument("--height", type=int, default=None, help="image height (default 150 ring, 144 forward)")
    parser.add_argument("--test-every", type=int, default=5, help="ring: every N-th view is a test view (default 5)")
    parser.add_argument("--supersample", type=int, default=3, help="k×k samples per pixel (default 3)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    forward = args.forward_facing
    n = args.n_views or (20 if forward else 30)
    w = args.width or (256 if forward else 200)
    h = args.height or (144 if forward else 150)
    if min(n, w, h, args.supersample) < 1 or args.test_every < 0:
        parser.error("counts, sizes and --supersample must be >= 1, --test-every >= 0")
    try:
        if forward:
            out = make_forward_scene(args.out_dir, n, w, h, supersample=args.supersample, overwrite=args.overwrite)
        else:
            out = make_ring360_scene(args.out_dir, n, w, h, args.test_every, supersample=args.supersample,
                                     overwrite=args.overwrite)  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    layout = "LLFF" if forward else "EyefulTower"
    print(f"wrote {layout} capture to {out} ({n} images, {w}x{h})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
