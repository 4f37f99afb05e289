"""Write a synthetic monocular capture in the DyCheck iPhone layout (Gao et al., NeurIPS 2022).

Layout (frame ids ``<camera_id>_<time_id:05d>``; camera 0 is the moving phone, cameras 1 and 2 are static)::

    OUT_DIR/
      dataset.json, metadata.json, scene.json, extra.json, points.npy
      camera/<id>.json                 full-resolution DyCheck cameras (OpenCV world-to-camera orientation, position,
                                       focal_length, principal_point, skew 0, pixel_aspect_ratio, radial [3],
                                       tangential [2] distortion, image_size [W, H])
      rgb/{1x,2x}/<id>.png             RGBA; train alpha = 255 where the pixel has a depth (a surface), black elsewhere;
                                       val alpha = 255 everywhere (the background is black in every view)
      depth/{1x,2x}/<id>.npy           train frames: z-depth along the optical axis, dataset units, [H, W, 1] float32,
                                       0 where no surface (with ``--depth lidar``: with a LiDAR's errors, and the
                                       exact depth in depth_gt/, which DyCheck does not have, for scoring)
      motion_gt/{1x,2x}/<id>.png       train frames: 255 where the pixel shows a moving object (DyCheck has no
                                       motion masks: only for scoring masks derived from the data)
      covisible/{1x,2x}/val/<id>.png   val frames: 255 where the pixel's surface point is seen by some training view
      splits/{train,val}.json          {"frame_names", "time_ids", "camera_ids"}

The scene is :func:`synthetic.default_scene` (moving spheres over a slab). The dataset world is the synthetic world
scaled by :data:`DATASET_SCALE` and shifted by :data:`DATASET_OFFSET` (so ``scene.json``'s scale and centre are not
trivial). The phone sweeps an arc in front of the scene over the ``n_times`` time steps (train); two static cameras
off the arc see time steps ``0, val_every, 2 val_every, ...`` (val). Every camera has the small radial and tangential
distortion :data:`DISTORTION` and pixel aspect ratio :data:`PIXEL_ASPECT`, written into its json AND used to render
(rays are undistorted with the same Brown model), so a wrongly mapped coefficient shows up as misplaced pixels.

Covisibility is computed exactly at pixel centres (not approximated): a val pixel's surface point is carried to each
training frame's time (rigidly with its sphere; slab points stay), projected into that training view with the
distortion, and counted as seen when it lands in the image and matches that view's depth at the nearest pixel
(within 2 %). Pixels without a surface are not covisible. The ``2x`` folders are 2×2 area reductions of ``1x``
(DyCheck's rule: alpha and covisible 255 only where all four are, depth 0 where any is 0).

Usage::

    dynsplat-make-scene dycheck OUT_DIR --width 64 --height 48 --n-times 8 [--depth lidar] [--point-noise 0.02]

Priors as a user has them: ``--depth lidar`` writes depth with the errors of the iPhone's LiDAR
(:mod:`dynsplat_ns.scenes.depth_quality`: low resolution, per-frame scale, smooth error, noise, holes and bleeding
at edges); ``--point-noise`` moves the seed points (static structure only, as always) by Gaussian noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .camera_models import model_rays
from .depth_quality import LIDAR, DepthDegradation, degrade_depth
from .llff import check_out_dir
from .synthetic import Scene, default_scene, look_at, spherical_eye, surface_points, to_uint8, trace_rays
from .variation import vary_scene

OWNED = ["camera", "rgb", "depth", "depth_gt", "motion_gt", "covisible", "splits", "dataset.json", "metadata.json",
         "scene.json", "extra.json", "points.npy"]  # fmt: skip
#: Dataset units per synthetic unit (the dataset world = synthetic world × scale + offset).
DATASET_SCALE = 0.5
#: Dataset-world position of the synthetic origin.
DATASET_OFFSET = (1.0, -2.0, 0.5)
#: DyCheck radial (k1, k2, k3) and tangential (p1, p2) distortion of every camera.
DISTORTION = {"radial": (0.06, -0.02, 0.01), "tangential": (0.015, -0.01)}
#: DyCheck pixel aspect ratio (fy = focal_length × pixel_aspect_ratio).
PIXEL_ASPECT = 1.03


def to_dataset(points: np.ndarray) -> np.ndarray:
    """Synthetic-world points ``[..., 3]`` → dataset world."""
    return np.asarray(points, dtype=np.float64) * DATASET_SCALE + np.asarray(DATASET_OFFSET)


def phone_path(n_times: int, radius: float = 3.2) -> list[np.ndarray]:
    """OpenGL camera-to-worlds (synthetic units) of the moving phone: an arc in front of the scene with a small bob."""
    out = []
    for k in range(n_times):
        s = k / (n_times - 1) if n_times > 1 else 0.5
        azimuth = math.radians(-90.0 - 30.0 + 60.0 * s)
        elevation = math.radians(25.0 + 5.0 * math.sin(2 * math.pi * s))
        out.append(look_at(spherical_eye(radius, azimuth, elevation), np.array([0.0, 0.0, 0.1])))
    return out


def static_cameras(radius: float = 3.4) -> list[np.ndarray]:
    """The two held-out static cameras (OpenGL, synthetic units), outside the phone's arc."""
    return [
        look_at(spherical_eye(radius, math.radians(-90.0 - 55.0), math.radians(15.0)), np.array([0.0, 0.0, 0.1])),
        look_at(spherical_eye(radius, math.radians(-90.0 + 50.0), math.radians(35.0)), np.array([0.0, 0.0, 0.1])),
    ]


def camera_json(c2w_gl: np.ndarray, width: int, height: int) -> dict:
    """The DyCheck camera (full resolution, dataset world) of an OpenGL synthetic camera-to-world."""
    rot_cv = np.asarray(c2w_gl, dtype=np.float64)[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # OpenCV axes, c2w
    return {
        "orientation": rot_cv.T.tolist(),
        "position": to_dataset(np.asarray(c2w_gl)[:3, 3]).tolist(),
        "focal_length": 0.9 * width,
        "principal_point": [0.5 * width + 1.5, 0.5 * height - 1.0],
        "skew": 0.0,
        "pixel_aspect_ratio": PIXEL_ASPECT,
        "radial_distortion": list(DISTORTION["radial"]),
        "tangential_distortion": list(DISTORTION["tangential"]),
        "image_size": [int(width), int(height)],
    }


def project(points: np.ndarray, camera: dict) -> tuple[np.ndarray, np.ndarray]:
    """DyCheck's projection (``dycheck/geometry/camera.py``) of dataset-world points ``[..., 3]``.

    Returns:
        ``(pixels [..., 2] (x right, y down, pixel centres at +0.5), z-depth [...])``.
    """
    rot = np.asarray(camera["orientation"], dtype=np.float64)
    local = (np.asarray(points, dtype=np.float64) - np.asarray(camera["position"])) @ rot.T
    z = local[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = local[..., 0] / z, local[..., 1] / z
    k1, k2, k3 = camera["radial_distortion"]
    p1, p2 = camera["tangential_distortion"]
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
    focal = float(camera["focal_length"])
    u = focal * xd + float(camera.get("skew", 0.0)) * yd + camera["principal_point"][0]
    v = focal * float(camera["pixel_aspect_ratio"]) * yd + camera["principal_point"][1]
    return np.stack([u, v], axis=-1), z


def render_view(scene: Scene, c2w_gl: np.ndarray, cam: dict, t: float, supersample: int) -> dict[str, np.ndarray]:
    """Render one distorted view: ``rgb`` (float over black), ``hit`` points (synthetic, NaN where none), ``z``
    (synthetic units, 0 where none) and ``moving`` (bool: on a moving object) at pixel centres."""
    width, height = cam["image_size"]
    fx, fy = cam["focal_length"], cam["focal_length"] * cam["pixel_aspect_ratio"]
    (cx, cy), k = cam["principal_point"], (*cam["radial_distortion"][:2], *cam["tangential_distortion"],
                                            cam["radial_distortion"][2])  # fmt: skip
    origin, dirs, _ = model_rays(c2w_gl, width, height, fx, fy, cx, cy, "OPENCV", k, supersample)
    rgba = trace_rays(scene, origin, dirs, t)["rgba"]
    _, centre_dirs, _ = model_rays(c2w_gl, width, height, fx, fy, cx, cy, "OPENCV", k, 1)
    centre = trace_rays(scene, origin, centre_dirs, t)
    distance = centre["distance"]
    hit = np.isfinite(distance) & (distance > 0)
    points = np.where(hit[..., None], origin + centre_dirs[:, :, 0] * np.nan_to_num(distance)[..., None], np.nan)
    forward = -np.asarray(c2w_gl)[:3, 2]
    z = np.where(hit, np.nan_to_num(distance) * (centre_dirs[:, :, 0] @ forward), 0.0)
    return {"rgb": rgba[..., :3] * rgba[..., 3:4], "hit": points, "z": z, "moving": centre["moving"] > 0.5}


def carry(scene: Scene, points: np.ndarray, t_from: float, t_to: float) -> np.ndarray:
    """Surface points ``[..., 3]`` at ``t_from`` moved to ``t_to``: rigidly with the sphere they lie on, else kept."""
    out = points.copy()
    for sphere, c0, c1 in zip(scene.spheres, scene.sphere_centers(t_from), scene.sphere_centers(t_to), strict=True):
        on = np.abs(np.linalg.norm(points - c0, axis=-1) - sphere.radius) < 1e-6
        out[on] = points[on] - c0 + c1
    return out


def covisibility(scene: Scene, val: dict, t: float, train: list[dict]) -> np.ndarray:
    """Bool ``[H, W]``: val pixels whose surface point is seen by some training view (see the module docstring)."""
    seen = np.zeros(val["z"].shape, dtype=bool)
    has = np.isfinite(val["hit"][..., 0])
    for frame in train:
        pts = to_dataset(carry(scene, np.nan_to_num(val["hit"]), t, frame["t"]))
        pixels, z = project(pts, frame["camera"])
        u, v = pixels[..., 0], pixels[..., 1]
        h, w = frame["z"].shape
        inside = has & (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        iu, iv = np.clip(np.floor(u), 0, w - 1).astype(int), np.clip(np.floor(v), 0, h - 1).astype(int)
        z_map = frame["z"][iv, iu] * DATASET_SCALE
        seen |= inside & (np.abs(z_map - z) < 0.02 * np.maximum(z, 1e-9))
    return seen


def _half(array: np.ndarray, mode: str) -> np.ndarray:
    """2×2 area reduction of ``[H, W, ...]``: 'mean', 'all' / 'any' (bool: all four / any set) or 'depth' (mean; 0 if
    any is 0)."""
    h, w = array.shape[0] // 2, array.shape[1] // 2
    blocks = array[: 2 * h, : 2 * w].reshape(h, 2, w, 2, *array.shape[2:])
    if mode == "all":
        return blocks.all(axis=(1, 3))
    if mode == "any":
        return blocks.any(axis=(1, 3))
    mean = blocks.mean(axis=(1, 3))
    return np.where((blocks > 0).all(axis=(1, 3)), mean, 0.0) if mode == "depth" else mean


def _write_png(path: Path, rgb: np.ndarray, alpha: np.ndarray) -> None:
    rgba = np.concatenate([to_uint8(rgb * alpha[..., None]), (alpha * 255).astype(np.uint8)[..., None]], axis=-1)
    Image.fromarray(rgba, "RGBA").save(path)


def make_dycheck_scene(
    out_dir: str | Path,
    width: int = 64,
    height: int = 48,
    n_times: int = 8,
    val_every: int = 2,
    supersample: int = 2,
    num_points: int = 400,
    seed: int = 0,
    overwrite: bool = False,
    scene: Scene | None = None,
    depth_quality: DepthDegradation | None = None,
    point_noise: float = 0.0,
    scene_seed: int | None = None,
) -> Path:
    """Render the synthetic scene as a DyCheck iPhone sequence (see the module docstring).

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        width: Full-resolution (``1x``) width, even.
        height: Full-resolution height, even.
        n_times: Time steps (one phone frame each).
        val_every: The static cameras see every ``val_every``-th time step.
        supersample: ``k×k`` colour samples per pixel.
        num_points: Background points in ``points.npy``.
        seed: Seed of the background points.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: Scene to render (default: the moving :func:`synthetic.default_scene`).
        depth_quality: Errors of the written depth (None: exact); the exact depth then goes to ``depth_gt/``.
        point_noise: Standard deviation of the Gaussian noise added to the seed points (dataset units).
        scene_seed: Draw the spheres' positions, motions and colours from this seed
            (:func:`variation.vary_scene`); None: the scene as given.

    Returns:
        The output folder.
    """
    out_dir = Path(out_dir)
    if width < 2 or height < 2 or width % 2 or height % 2 or n_times < 1 or val_every < 1:
        raise ValueError("width/height must be even and >= 2, n_times and val_every >= 1")
    check_out_dir(out_dir, overwrite, OWNED)
    if point_noise < 0:
        raise ValueError(f"point_noise must be >= 0, got {point_noise}")
    depth_rng = np.random.default_rng([seed, 1])
    scene = default_scene(motion=True) if scene is None else scene
    if scene_seed is not None:
        scene = vary_scene(scene, scene_seed)
    for sub in ("camera", "splits", *(f"{kind}/{f}x" for kind in ("rgb", "depth") for f in (1, 2)),
                "covisible/1x/val", "covisible/2x/val"):  # fmt: skip
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    times = [k / (n_times - 1) if n_times > 1 else 0.0 for k in range(n_times)]
    frames: dict[str, dict] = {}
    for k, c2w in enumerate(phone_path(n_times)):
        frames[f"0_{k:05d}"] = {"c2w": c2w, "t": times[k], "time_id": k, "camera_id": 0}
    for c, c2w in enumerate(static_cameras(), start=1):
        for k in range(0, n_times, val_every):
            frames[f"{c}_{k:05d}"] = {"c2w": c2w, "t": times[k], "time_id": k, "camera_id": c}
    train_ids = [i for i, f in frames.items() if f["camera_id"] == 0]
    val_ids = [i for i, f in frames.items() if f["camera_id"] != 0]
    depths = []
    for frame_id, frame in frames.items():
        frame["camera"] = camera_json(frame["c2w"], width, height)
        frame.update(render_view(scene, frame["c2w"], frame["camera"], frame["t"], supersample))
        (out_dir / "camera" / f"{frame_id}.json").write_text(json.dumps(frame["camera"], indent=1) + "\n")
        train = frame["camera_id"] == 0
        alpha = (frame["z"] > 0).astype(np.float64) if train else np.ones(frame["z"].shape)
        _write_png(out_dir / "rgb" / "1x" / f"{frame_id}.png", frame["rgb"], alpha)
        _write_png(out_dir / "rgb" / "2x" / f"{frame_id}.png", _half(frame["rgb"], "mean"),
                   _half(alpha > 0.5, "all").astype(np.float64))  # fmt: skip
        if train:
            depth = (frame["z"] * DATASET_SCALE).astype(np.float32)
            depths.append(depth[depth > 0])
            written = {"depth": depth}
            if depth_quality is not None:
                written = {"depth": degrade_depth(depth, depth_rng, depth_quality), "depth_gt": depth}
            for folder, values in written.items():
                for factor, array in ((1, values), (2, _half(values, "depth"))):
                    (out_dir / folder / f"{factor}x").mkdir(parents=True, exist_ok=True)
                    np.save(out_dir / folder / f"{factor}x" / f"{frame_id}.npy", array.astype(np.float32)[..., None])
            for factor, moving in ((1, frame["moving"]), (2, _half(frame["moving"], "any"))):
                (out_dir / "motion_gt" / f"{factor}x").mkdir(parents=True, exist_ok=True)
                mask = Image.fromarray(moving.astype(np.uint8) * 255)
                mask.save(out_dir / "motion_gt" / f"{factor}x" / f"{frame_id}.png")
    train_frames = [frames[i] for i in train_ids]
    for frame_id in val_ids:
        covisible = covisibility(scene, frames[frame_id], frames[frame_id]["t"], train_frames)
        for factor, mask in ((1, covisible), (2, _half(covisible, "all"))):
            Image.fromarray((mask * 255).astype(np.uint8)).save(out_dir / "covisible" / f"{factor}x" / "val" /
                                                                f"{frame_id}.png")  # fmt: skip
    _write_json(
        out_dir / "dataset.json",
        {
            "count": len(frames),
            "num_exemplars": len(train_ids),
            "ids": train_ids + val_ids,
            "train_ids": train_ids,
            "val_ids": val_ids,
        },
    )
    _write_json(
        out_dir / "metadata.json",
        {
            i: {"warp_id": f["time_id"], "appearance_id": f["time_id"], "camera_id": f["camera_id"]}
            for i, f in frames.items()
        },
    )
    for name, ids in (("train", train_ids), ("val", val_ids)):
        _write_json(
            out_dir / "splits" / f"{name}.json",
            {
                "frame_names": ids,
                "time_ids": [frames[i]["time_id"] for i in ids],
                "camera_ids": [frames[i]["camera_id"] for i in ids],
            },
        )
    xyz, _ = surface_points(scene, num_points, t=0.0, seed=seed)
    centers, radii = scene.sphere_centers(0.0), np.array([s.radius for s in scene.spheres])
    static = (np.linalg.norm(xyz[:, None] - centers[None], axis=-1) > radii + 1e-3).all(axis=1)
    points = to_dataset(xyz[static])
    if point_noise > 0:
        points = points + np.random.default_rng([seed, 2]).normal(0.0, point_noise, points.shape)
    np.save(out_dir / "points.npy", points.astype(np.float32))
    positions = np.array([f["camera"]["position"] for f in frames.values()])
    everything = np.concatenate([points, positions])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    scale = 1.0 / float(np.linalg.norm(hi - lo))
    valid = np.concatenate(depths)
    near, far = float(np.quantile(valid, 0.001)) * 0.75, float(np.quantile(valid, 0.999)) * 1.25
    _write_json(out_dir / "scene.json", {"scale": scale, "center": ((lo + hi) / 2).tolist(), "near": near * scale,
                                         "far": far * scale})  # fmt: skip
    _write_json(out_dir / "extra.json", {"factor": 2, "fps": 30.0, "bbox": [((lo - (lo + hi) / 2) * scale).tolist(),
                                         ((hi - (lo + hi) / 2) * scale).tolist()], "lookat": [0.0, 0.0, 0.0],
                                         "up": [0.0, 0.0, 1.0]})  # fmt: skip
    return out_dir


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene dycheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--width", type=int, default=64, help="full-resolution (1x) width, even (default 64)")
    parser.add_argument("--height", type=int, default=48, help="full-resolution height, even (default 48)")
    parser.add_argument("--n-times", type=int, default=8, help="time steps = phone frames (default 8)")
    parser.add_argument("--val-every", type=int, default=2, help="static cameras see every k-th time (default 2)")
    parser.add_argument("--supersample", type=int, default=2, help="k×k samples per pixel (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of points.npy (default 0)")
    parser.add_argument("--depth", choices=("exact", "lidar"), default="exact",
                        help="depth/ as rendered (exact, default) or with an iPhone LiDAR's errors (lidar; the exact "
                             "depth then goes to depth_gt/)")  # fmt: skip
    parser.add_argument("--point-noise", type=float, default=0.0,
                        help="std of the Gaussian noise on the seed points, dataset units (default 0)")  # fmt: skip
    parser.add_argument("--scene-seed", type=int, default=None,
                        help="draw the spheres' positions, motions and colours from this seed (default: the standard "
                             "scene)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    if args.width < 2 or args.height < 2 or args.width % 2 or args.height % 2 or args.n_times < 1:
        parser.error("--width/--height must be even and >= 2, --n-times >= 1")
    if args.val_every < 1 or args.supersample < 1:
        parser.error("--val-every and --supersample must be >= 1")
    if args.point_noise < 0:
        parser.error("--point-noise must be >= 0")
    try:
        out = make_dycheck_scene(args.out_dir, args.width, args.height, args.n_times, args.val_every,
                                 args.supersample, seed=args.seed, overwrite=args.overwrite,
                                 depth_quality=LIDAR if args.depth == "lidar" else None,
                                 point_noise=args.point_noise, scene_seed=args.scene_seed)  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    n_val = 2 * len(range(0, args.n_times, args.val_every))
    print(f"wrote DyCheck iPhone scene to {out} ({args.n_times} phone frames, {n_val} static-camera frames, "
          f"{args.width}x{args.height})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
