"""Write a nerfstudio camera-path JSON that orbits a D-NeRF-style scene while time sweeps 0 → 1.

The orbit is defined in the dataset's world (radius/height around the origin, like D-NeRF's cameras) and mapped into
the trained run's world with the run's ``dataparser_transforms.json``, so ``ns-render camera-path`` renders it.

Usage:
    python examples/orbit_camera_path.py RUN_DIR OUT.json [--frames 48] [--size 96] [--radius 4] [--height 1.5]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (x right, y up, looking down −z) at ``eye`` looking at ``target``."""
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, back, eye
    return c2w


def orbit_path(
    transform: np.ndarray, scale: float, frames: int, size: int, fov_deg: float, radius: float, height: float
) -> dict:
    """Camera-path dict (nerfstudio format) with ``render_time`` on every keyframe."""
    t4 = np.eye(4)
    t4[:3, :4] = transform
    path = []
    for i in range(frames):
        angle = 2 * math.pi * i / frames
        eye = np.array([radius * math.cos(angle), radius * math.sin(angle), height])
        c2w = t4 @ look_at_c2w(eye, np.zeros(3), np.array([0.0, 0.0, 1.0]))
        c2w[:3, 3] *= scale
        time = i / max(frames - 1, 1)
        path.append({"camera_to_world": c2w.reshape(-1).tolist(), "fov": fov_deg, "aspect": 1.0, "render_time": time})
    return {
        "camera_type": "perspective",
        "render_height": size,
        "render_width": size,
        "seconds": frames / 24.0,
        "camera_path": path,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="training run folder (holds dataparser_transforms.json)")
    parser.add_argument("out", type=Path, help="camera path JSON to write")
    parser.add_argument("--frames", type=int, default=48, help="number of keyframes (default 48)")
    parser.add_argument("--size", type=int, default=96, help="render width/height in pixels (default 96)")
    parser.add_argument("--fov", type=float, default=39.6, help="vertical field of view in degrees (default 39.6)")
    parser.add_argument("--radius", type=float, default=4.0, help="orbit radius in dataset units (default 4)")
    parser.add_argument("--height", type=float, default=1.5, help="orbit height in dataset units (default 1.5)")
    args = parser.parse_args(argv)
    tf_file = args.run_dir / "dataparser_transforms.json"
    if not tf_file.is_file():
        parser.error(f"{tf_file} not found: pass the run folder that ns-train wrote (it holds config.yml)")
    tf = json.loads(tf_file.read_text())
    path = orbit_path(
        np.asarray(tf["transform"]), float(tf["scale"]), args.frames, args.size, args.fov, args.radius, args.height
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(path, indent=1))
    print(f"wrote {args.out} ({args.frames} keyframes, render_time 0→1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
