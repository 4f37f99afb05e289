"""Write a synthetic dynamic stereo capture in the D2RF layout (Luo et al., ECCV 2024).

Layout (as the D2RF release ships it; ``{id:06d}_{left|right}`` view names)::

    OUT_DIR/
      images/000000_left.jpg ...        all-in-focus views, full resolution
      images_bokeh/ ...                 defocused views (focus on the nearest sphere), full resolution
      images_2/ ...                     defocused views, half resolution
      background_mask/ ...              255 = static background, full resolution (jpg)
      motion_masks/000000_left.png ...  255 = moving spheres, half resolution
      dpt/000000_left.npy ...           disparity 1 / depth (float32), half resolution
      flow_i1/000000_left_fwd.npz ...   placeholder optical flow (zeros; "flow" and "mask" arrays) of the left views
      sparse/0/{cameras,images,points3D}.bin   COLMAP model: one SIMPLE_RADIAL camera (k = 0), every view
      database.db                       stub COLMAP database (cameras and images tables)
      poses_bounds.npy                  2 rows per time step, in name order (left, right, left, ...)

A stereo rig (baseline ``baseline`` along the camera x axis) sweeps sideways in front of the moving spheres; time
step ``k`` shows time ``k / (T - 1)``.

Usage::

    dynsplat-make-scene d2rf OUT_DIR --width 64 --height 32 --n-times 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .colmap_writer import ColmapCamera, ColmapImage, w2c_from_opengl_c2w, write_database, write_model
from .llff import check_out_dir, poses_bounds_rows, render_opaque, shrink
from .synthetic import Scene, default_scene, depth_bounds, look_at, surface_points

OWNED = ["images", "images_bokeh", "images_2", "background_mask", "motion_masks", "dpt", "flow_i1", "sparse"]


def rig_poses(n_times: int, baseline: float = 0.3, distance: float = 4.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(left c2w, right c2w), ...]`` (OpenGL): a parallel stereo rig sweeping sideways in front of the scene."""
    out = []
    for k in range(n_times):
        x = -0.6 + 1.2 * (k / (n_times - 1) if n_times > 1 else 0.5)
        left = look_at(np.array([x, -distance, 0.9]))
        right = left.copy()
        right[:3, 3] += baseline * left[:3, 0]
        out.append((left, right))
    return out


def defocus(rgb: np.ndarray, distance: np.ndarray, focus: float, strength: float = 3.0) -> np.ndarray:
    """Blend the image with a blurred copy by each pixel's disparity distance to the focus plane (a cheap bokeh)."""
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius=1.5)), dtype=np.float32)
    disparity = np.where(np.isfinite(distance) & (distance > 0), 1.0 / np.maximum(distance, 1e-6), 0.0)
    weight = np.clip(np.abs(disparity - 1.0 / focus) * strength, 0.0, 1.0)[..., None]
    return np.clip(np.round(rgb * (1.0 - weight) + blurred * weight), 0, 255).astype(np.uint8)


def make_d2rf_scene(
    out_dir: str | Path,
    width: int = 64,
    height: int = 32,
    n_times: int = 6,
    baseline: float = 0.3,
    seed: int = 0,
    supersample: int = 2,
    num_points: int = 400,
    overwrite: bool = False,
    scene: Scene | None = None,
) -> Path:
    """Render the synthetic scene as a D2RF capture.

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        width: Full-resolution width (even, so that half resolution is exact).
        height: Full-resolution height (even).
        n_times: Time steps (each gives a left and a right view).
        baseline: Stereo baseline in world units.
        seed: Seed for the point cloud.
        supersample: ``k×k`` samples per pixel.
        num_points: Points in ``points3D.bin``.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: Scene to render (default: the moving :func:`synthetic.default_scene`).

    Returns:
        The output folder.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, OWNED + ["poses_bounds.npy", "database.db"])
    scene = default_scene(motion=True) if scene is None else scene
    for name in OWNED[:-1]:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    focal = 0.9 * width
    half = (width // 2, height // 2)
    names, c2ws, bounds = [], [], []
    for k, pair in enumerate(rig_poses(n_times, baseline)):
        t = k / (n_times - 1) if n_times > 1 else 0.0
        for side, c2w in zip(("left", "right"), pair, strict=True):
            name = f"{k:06d}_{side}"
            out = render_opaque(scene, c2w, t, width, height, focal, supersample)
            sharp = Image.fromarray(out["rgb"])
            sharp.save(out_dir / "images" / f"{name}.jpg", quality=95)
            focus = float(np.nanmin(out["distance"]))  # focus on the nearest surface
            bokeh = Image.fromarray(defocus(out["rgb"], out["distance"], focus))
            bokeh.save(out_dir / "images_bokeh" / f"{name}.jpg", quality=95)
            shrink(bokeh, 2).save(out_dir / "images_2" / f"{name}.jpg", quality=95)
            moving = out["moving"] > 0.5
            Image.fromarray(np.where(moving, 0, 255).astype(np.uint8)).save(out_dir / "background_mask" / f"{name}.jpg")
            small = Image.fromarray(np.where(moving, 255, 0).astype(np.uint8)).resize(half, Image.Resampling.NEAREST)
            small.save(out_dir / "motion_masks" / f"{name}.png")
            depth = np.nan_to_num(out["distance"], nan=0.0)
            disparity = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0).astype(np.float32)
            np.save(out_dir / "dpt" / f"{name}.npy", disparity[::2, ::2][: half[1], : half[0]])
            if side == "left":
                zeros = np.zeros((half[1], half[0], 2), np.float32)
                mask = np.zeros((half[1], half[0]), np.float32)
                for direction in ("fwd", "bwd"):
                    np.savez(out_dir / "flow_i1" / f"{name}_{direction}.npz", flow=zeros, mask=mask)
            names.append(name)
            c2ws.append(c2w)
            bounds.append(depth_bounds(scene, c2w, t))
    np.save(out_dir / "poses_bounds.npy", poses_bounds_rows(c2ws, (height, width, focal), np.asarray(bounds)))
    camera = {1: ColmapCamera("SIMPLE_RADIAL", width, height, (focal, width / 2, height / 2, 0.0))}
    images = [
        ColmapImage(i + 1, f"{name}.jpg", 1, w2c_from_opengl_c2w(c2w))
        for i, (name, c2w) in enumerate(zip(names, c2ws, strict=True))
    ]
    xyz, rgb = surface_points(scene, num_points, t=0.0, seed=seed)
    write_model(out_dir / "sparse" / "0", camera, images, xyz, rgb)
    write_database(out_dir / "database.db", camera, images)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene d2rf", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--width", type=int, default=64, help="full-resolution width, even (default 64)")
    parser.add_argument("--height", type=int, default=32, help="full-resolution height, even (default 32)")
    parser.add_argument("--n-times", type=int, default=6, help="time steps, 2 views each (default 6)")
    parser.add_argument("--baseline", type=float, default=0.3, help="stereo baseline (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="point cloud seed (default 0)")
    parser.add_argument("--supersample", type=int, default=2, help="k×k samples per pixel (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    if args.width < 2 or args.height < 2 or args.width % 2 or args.height % 2 or args.n_times < 1:
        parser.error("--width/--height must be even and >= 2, --n-times >= 1")
    try:
        out = make_d2rf_scene(args.out_dir, args.width, args.height, args.n_times, args.baseline, args.seed,
                              args.supersample, overwrite=args.overwrite)  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote D2RF scene to {out} ({args.n_times} time steps x 2 views, {args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
