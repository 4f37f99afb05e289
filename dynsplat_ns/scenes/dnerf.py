"""Write a synthetic dynamic scene in the D-NeRF layout.

Layout (as in D-NeRF's Blender scenes)::

    OUT_DIR/
      transforms_train.json   {"camera_angle_x": ..., "frames": [{"file_path": "./train/r_000", "time": 0.0,
      transforms_val.json                                         "transform_matrix": [[4x4 OpenGL c2w]]}, ...]}
      transforms_test.json
      train/r_000.png ...     RGBA, transparent background
      val/r_000.png ...
      test/r_000.png ...

Training frames form a monocular video: frame ``i`` has time ``i / (n_train - 1)`` and a different camera on the
upper hemisphere of radius 4 (teleporting around the object like D-NeRF's training views). Val/test frames use
held-out times (midpoints between training samples) and held-out views on a smooth orbit.

Usage::

    dynsplat-make-scene dnerf OUT_DIR --size 64 --n-train 50 --n-val 10 --n-test 10 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .synthetic import (
    DNERF_CAMERA_ANGLE_X,
    SCENES,
    Scene,
    default_scene,
    focal_from_angle,
    look_at,
    render_rgba,
    spherical_eye,
)

#: Camera distance from the origin (D-NeRF's Blender cameras sit at ~4.03).
CAMERA_RADIUS = 4.0
_GOLDEN = 0.6180339887498949
SPLITS = ("train", "val", "test")


def split_cameras(split: str, n: int, seed: int) -> list[tuple[float, np.ndarray]]:
    """Times and OpenGL camera-to-world matrices for one split.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n: Number of frames.
        seed: Seed for the training views' elevation jitter and azimuth offset.

    Returns:
        ``[(time, c2w [4, 4]), ...]``, times increasing with the frame index.
    """
    if n <= 0:
        return []
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    out = []
    if split == "train":
        az0 = rng.uniform(0.0, 2.0 * math.pi)
        elevations = rng.uniform(math.radians(10.0), math.radians(65.0), size=n)
        for i in range(n):
            time = i / (n - 1) if n > 1 else 0.0
            azimuth = az0 + 2.0 * math.pi * ((i * _GOLDEN) % 1.0)
            out.append((time, look_at(spherical_eye(CAMERA_RADIUS, azimuth, float(elevations[i])))))
    else:
        # Held-out times: midpoints (test) or quarter points (val); views on an orbit offset from the training ones.
        t_offset = 0.5 if split == "test" else 0.25
        az_offset = 0.3 if split == "test" else 1.1
        elevation = math.radians(30.0 if split == "test" else 40.0)
        for k in range(n):
            time = (k + t_offset) / n
            azimuth = az_offset + 2.0 * math.pi * k / n
            out.append((time, look_at(spherical_eye(CAMERA_RADIUS, azimuth, elevation))))
    return out


def _to_png(rgba: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8), mode="RGBA")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir}: directory is not empty (pass overwrite=True / --overwrite)")
        # Only remove what this tool writes; leave anything else alone.
        for split in SPLITS:
            shutil.rmtree(out_dir / split, ignore_errors=True)
            (out_dir / f"transforms_{split}.json").unlink(missing_ok=True)


def make_dnerf_scene(
    out_dir: str | Path,
    size: int = 64,
    n_train: int = 50,
    n_val: int = 10,
    n_test: int = 10,
    seed: int = 0,
    motion: bool = True,
    supersample: int = 2,
    png_ext: bool = False,
    overwrite: bool = False,
    scene: Scene | None = None,
    motion_scale: float = 1.0,
) -> Path:
    """Render the synthetic scene and write it in the D-NeRF layout.

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        size: Image width and height in pixels.
        n_train: Number of training frames (a monocular video, time increasing with the index).
        n_val: Number of validation frames.
        n_test: Number of test frames.
        seed: Seed for the camera placement; output is deterministic given the seed.
        motion: If False the spheres do not move (a static control scene).
        supersample: ``k×k`` samples per pixel for antialiasing (fractional alpha at edges); 1 disables it.
        png_ext: Write ``file_path`` with the ``.png`` extension (D-NeRF itself omits it).
        overwrite: Allow writing into a non-empty folder (replaces ``train/``, ``val/``, ``test/`` and the JSONs).
        scene: Scene to render (default: :func:`synthetic.default_scene` with ``motion`` and ``motion_scale``).
        motion_scale: Multiplies the spheres' motion amplitudes of the default scene.

    Returns:
        The output folder.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    scene = default_scene(motion=motion, motion_scale=motion_scale) if scene is None else scene
    focal = focal_from_angle(DNERF_CAMERA_ANGLE_X, size)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i, (time, c2w) in enumerate(split_cameras(split, counts[split], seed)):
            rgba = render_rgba(scene, c2w, time, size, size, focal, supersample=supersample)
            name = f"r_{i:03d}"
            _to_png(rgba).save(out_dir / split / f"{name}.png")
            file_path = f"./{split}/{name}" + (".png" if png_ext else "")
            frames.append({"file_path": file_path, "time": float(time), "transform_matrix": c2w.tolist()})
        meta = {"camera_angle_x": DNERF_CAMERA_ANGLE_X, "frames": frames}
        (out_dir / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene dnerf", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--size", type=int, default=64, help="image width/height in pixels (default 64)")
    parser.add_argument("--n-train", type=int, default=50, help="training frames (default 50)")
    parser.add_argument("--n-val", type=int, default=10, help="validation frames (default 10)")
    parser.add_argument("--n-test", type=int, default=10, help="test frames (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="camera placement seed (default 0)")
    parser.add_argument(
        "--scene", choices=sorted(SCENES), default="spheres",
        help="spheres: three moving spheres above a slab (default); bounce: a bouncing ball, a turning box, a pillar",
    )  # fmt: skip
    parser.add_argument("--static", action="store_true", help="nothing moves (static control scene)")
    parser.add_argument("--motion-scale", type=float, default=1.0, help="scale of the motion amplitudes (default 1)")
    parser.add_argument("--supersample", type=int, default=2, help="k×k antialiasing samples per pixel (default 2)")
    parser.add_argument("--png-ext", action="store_true", help="write file_path with the .png extension")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    for name in ("size", "supersample"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if min(args.n_train, args.n_val, args.n_test) < 0 or args.n_train < 1:
        parser.error("--n-train must be >= 1 and --n-val/--n-test >= 0")
    try:
        out = make_dnerf_scene(
            args.out_dir,
            size=args.size,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            seed=args.seed,
            motion=not args.static,
            motion_scale=args.motion_scale,
            scene=SCENES[args.scene](motion=not args.static, motion_scale=args.motion_scale),
            supersample=args.supersample,
            png_ext=args.png_ext,
            overwrite=args.overwrite,
        )
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote D-NeRF scene to {out} ({args.n_train} train, {args.n_val} val, {args.n_test} test, {args.size}px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
