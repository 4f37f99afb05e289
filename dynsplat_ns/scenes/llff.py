"""Write a synthetic forward-facing capture in the LLFF layout (``poses_bounds.npy`` + images + COLMAP points).

Layout (as LLFF's ``imgs2poses.py`` / ``minify`` write it)::

    OUT_DIR/
      poses_bounds.npy           N x 17 float64: 3x5 [R | t | (h, w, focal)] per image, rotation columns
                                 [down, right, back], then near, far (rows in sorted image-name order)
      images/IMG_0000.png ...    full resolution, opaque
      images_2/ ...              optional copies shrunk by each factor in ``factors``
      sparse/0/{cameras,images,points3D}.bin   optional COLMAP model (SIMPLE_PINHOLE; points on the surfaces)

Cameras sit on a small patch in front of the synthetic scene, all looking at it (``synthetic.forward_facing_poses``).
The near/far bounds are the depth range of the scene's geometry seen by each camera. With ``motion`` the spheres
move and frame ``i`` shows time ``i / (N - 1)`` (a video-like sequence for ``--time-from-order``).

Usage::

    dynsplat-make-scene llff OUT_DIR --width 48 --height 32 --n-frames 12 --factors 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .camera_models import model_rays
from .colmap_writer import ColmapCamera, ColmapImage, w2c_from_opengl_c2w, write_model
from .synthetic import (
    Scene,
    default_scene,
    depth_bounds,
    forward_facing_poses,
    opengl_to_llff,
    over_background,
    surface_points,
    to_uint8,
    trace_rays,
)

#: Background colour behind the scene (LLFF captures are opaque).
BACKGROUND = (0.55, 0.6, 0.7)


def check_out_dir(out_dir: Path, overwrite: bool, owned: Sequence[str]) -> None:
    """Refuse a non-empty ``out_dir`` unless ``overwrite``; then remove only the entries named in ``owned``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir}: directory is not empty (pass overwrite=True / --overwrite)")
        for pattern in owned:
            for path in out_dir.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def render_opaque(scene: Scene, c2w: np.ndarray, t: float, width: int, height: int, focal: float, ss: int) -> dict:
    """Render a pinhole view (principal point at the centre) over :data:`BACKGROUND`.

    Returns:
        ``rgb`` uint8 ``[H, W, 3]`` plus ``trace_rays``' ``distance`` and ``moving``.
    """
    origin, dirs, _ = model_rays(c2w, width, height, focal, focal, width / 2, height / 2, supersample=ss)
    out = trace_rays(scene, origin, dirs, t)
    out["rgb"] = to_uint8(over_background(out["rgba"], BACKGROUND))
    return out


def shrink(image: Image.Image, factor: int) -> Image.Image:
    """Area-downscale by an integer factor (LLFF's minify keeps ``size // factor``)."""
    return image.resize((max(1, image.width // factor), max(1, image.height // factor)), Image.Resampling.BOX)


def poses_bounds_rows(c2ws: Sequence[np.ndarray], hwf: tuple[float, float, float], bounds: np.ndarray) -> np.ndarray:
    """``[N, 17]`` rows of ``poses_bounds.npy`` from OpenGL camera-to-worlds, (h, w, focal) and ``[N, 2]`` bounds."""
    rows = []
    for c2w, (near, far) in zip(c2ws, bounds, strict=True):
        mat = np.concatenate([opengl_to_llff(c2w), np.asarray(hwf, dtype=np.float64)[:, None]], axis=1)
        rows.append(np.concatenate([mat.reshape(-1), [near, far]]))
    return np.asarray(rows, dtype=np.float64)


def make_llff_scene(
    out_dir: str | Path,
    width: int = 48,
    height: int = 32,
    n_frames: int = 12,
    seed: int = 0,
    motion: bool = False,
    factors: Sequence[int] = (2,),
    sparse: bool = True,
    num_points: int = 400,
    supersample: int = 2,
    ext: str = "png",
    overwrite: bool = False,
    scene: Scene | None = None,
) -> Path:
    """Render the synthetic scene and write it in the LLFF layout.

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        width: Full-resolution image width.
        height: Full-resolution image height.
        n_frames: Number of images (rows of ``poses_bounds.npy``).
        seed: Seed for the camera jitter and the point cloud.
        motion: Let the spheres move, frame ``i`` at time ``i / (N - 1)``; False: a static capture.
        factors: Also write ``images_{k}/`` shrunk by each ``k``.
        sparse: Write ``sparse/0`` (COLMAP cameras, images, points3D).
        num_points: Points in ``points3D.bin``.
        supersample: ``k×k`` samples per pixel.
        ext: Image extension (``png`` or ``jpg``).
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: Scene to render (default: :func:`synthetic.default_scene`).

    Returns:
        The output folder.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, ["images", "images_*", "sparse", "poses_bounds.npy"])
    scene = default_scene(motion=motion) if scene is None else scene
    focal = 1.1 * width
    c2ws = forward_facing_poses(n_frames, seed=seed)
    times = [i / (n_frames - 1) if (motion and n_frames > 1) else 0.0 for i in range(n_frames)]
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    names, bounds = [], []
    for i, (c2w, t) in enumerate(zip(c2ws, times, strict=True)):
        name = f"IMG_{i:04d}.{ext}"
        image = Image.fromarray(render_opaque(scene, c2w, t, width, height, focal, supersample)["rgb"])
        image.save(out_dir / "images" / name)
        for k in factors:
            (out_dir / f"images_{k}").mkdir(exist_ok=True)
            shrink(image, k).save(out_dir / f"images_{k}" / name)
        names.append(name)
        bounds.append(depth_bounds(scene, c2w, t))
    np.save(out_dir / "poses_bounds.npy", poses_bounds_rows(c2ws, (height, width, focal), np.asarray(bounds)))
    if sparse:
        camera = {1: ColmapCamera("SIMPLE_PINHOLE", width, height, (focal, width / 2, height / 2))}
        images = [
            ColmapImage(i + 1, name, 1, w2c_from_opengl_c2w(c2w))
            for i, (name, c2w) in enumerate(zip(names, c2ws, strict=True))
        ]
        xyz, rgb = surface_points(scene, num_points, t=0.0, seed=seed)
        write_model(out_dir / "sparse" / "0", camera, images, xyz, rgb)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene llff", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--width", type=int, default=48, help="image width in pixels (default 48)")
    parser.add_argument("--height", type=int, default=32, help="image height in pixels (default 32)")
    parser.add_argument("--n-frames", type=int, default=12, help="number of images (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="camera jitter / point cloud seed (default 0)")
    parser.add_argument("--motion", action="store_true", help="moving spheres, frame i at time i/(N-1)")
    parser.add_argument("--factors", type=int, nargs="*", default=[2], help="also write images_{k}/ (default 2)")
    parser.add_argument("--no-sparse", action="store_true", help="do not write sparse/0")
    parser.add_argument("--supersample", type=int, default=2, help="k×k samples per pixel (default 2)")
    parser.add_argument("--ext", choices=["png", "jpg"], default="png", help="image format (default png)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    if min(args.width, args.height, args.n_frames, args.supersample) < 1 or any(k < 2 for k in args.factors):
        parser.error("sizes, --n-frames and --supersample must be >= 1, --factors >= 2")
    try:
        out = make_llff_scene(
            args.out_dir, args.width, args.height, args.n_frames, args.seed, args.motion, args.factors,
            not args.no_sparse, supersample=args.supersample, ext=args.ext, overwrite=args.overwrite,
        )  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote LLFF scene to {out} ({args.n_frames} images, {args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
