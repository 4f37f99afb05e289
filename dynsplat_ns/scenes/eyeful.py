"""Write a synthetic capture in the EyefulTower layout, plus what ``ns-download-data eyefultower`` adds.

Layout (EyefulTower's S3 capture folder after nerfstudio's download script)::

    OUT_DIR/
      cameras.json                {"KRT": [{"cameraId": "2/DSC0003", "K": 3x3, "T": 4x4 world-to-camera (OpenCV
                                  axes), both stored column-major, "width", "height" (full resolution),
                                  "distortionModel": "Fisheye" | "RadialAndTangential", "distortion": [...]}]}
      splits.json                 {"train": [cameraId, ...], "test": [cameraId, ...]}
      images-jpeg-1k/             one folder per resolution, each with
        1/DSC0000.jpg ...           <rig camera>/<image>.jpg
        transforms.json             nerfstudio format: camera_model OPENCV_FISHEYE | OPENCV, fisheye_crop_radius,
                                    per-frame fl_x fl_y cx cy w h k1 k2 k3 p1 p2 transform_matrix (OpenGL),
                                    train_filenames, val_filenames (= splits.json "test"), test_filenames (empty)
        transforms_300.json         the first min(N, 300) frames, evenly subsampled
        transforms_half.json        N // 2 frames, evenly subsampled
      images-jpeg-2k/ ...

``transforms*.json`` are written the way nerfstudio's ``eyeful_tower.py`` converts ``cameras.json`` (implemented
again here, independently of the parser): c2w = inv(T), world axes permuted by rows [2, 0, 1], camera y and z
flipped; intrinsics scaled to each resolution. A rig of ``n_cameras`` cameras stands at ``n_positions`` spots on a
circle around the scene; every camera looks near the centre. Test ids: all cameras of every ``test_every``-th spot.

Usage::

    dynsplat-make-scene eyeful OUT_DIR --n-positions 5 --n-cameras 3 --fisheye
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
from .llff import BACKGROUND, check_out_dir
from .synthetic import Scene, default_scene, look_at, over_background, to_uint8, trace_rays

#: Full resolution declared in cameras.json (portrait, like EyefulTower's 5784x8660 photos).
ORIGINAL_SIZE = (96, 144)
#: Resolution folders written by default: name → (width, height).
RESOLUTIONS = {"images-jpeg-1k": (24, 36), "images-jpeg-2k": (48, 72)}
#: Lens of each model at full resolution: focal as a fraction of the width, and distortion.
FISHEYE = {"focal": 0.6, "distortion": [0.04, -0.01, 0.002, 0.0, 0.0, 0.0, 0.0, 0.0]}  # k1 k2 k3 _ _ _ p1 p2
PINHOLE = {"focal": 0.9, "distortion": [-0.04, 0.01, 0.0005, -0.0005, 0.0]}  # k1 k2 p1 p2 k3
#: Eyeful world axes in terms of ours: nerfstudio maps Eyeful rows [2, 0, 1] to its (our) x, y, z.
EYEFUL_FROM_OURS = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def rig_cameras(
    n_positions: int, n_cameras: int, radius: float = 2.6, aim_spread: float = 0.5
) -> list[tuple[str, np.ndarray]]:
    """``[(cameraId, OpenGL c2w in our world), ...]`` for every rig spot and camera (camera ``c`` aims
    ``aim_spread`` world units left/right of the centre per step from the middle camera)."""
    out = []
    for p in range(n_positions):
        azimuth = 2.0 * math.pi * p / max(n_positions, 1) - math.pi / 2
        eye = np.array([radius * math.cos(azimuth), radius * math.sin(azimuth), 1.0 + 0.3 * (p % 2)])
        for c in range(n_cameras):
            offset = (c - (n_cameras - 1) / 2) * aim_spread  # cameras aim left/right of the centre
            side = np.array([-math.sin(azimuth), math.cos(azimuth), 0.0])
            out.append((f"{c + 1}/DSC{p:04d}", look_at(eye, target=side * offset + np.array([0.0, 0.0, 0.1 * c]))))
    return out


def krt_entry(camera_id: str, c2w: np.ndarray, fisheye: bool) -> dict:
    """One cameras.json KRT entry (full resolution, column-major K and T, OpenCV world-to-camera)."""
    width, height = ORIGINAL_SIZE
    lens = FISHEYE if fisheye else PINHOLE
    f = lens["focal"] * width
    k = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
    c2w_cv = np.eye(4)
    c2w_cv[:3, :4] = c2w[:3, :4]
    c2w_cv[:3, 1:3] *= -1.0
    c2w_cv[:3, :] = EYEFUL_FROM_OURS @ c2w_cv[:3, :]  # into the Eyeful world
    w2c = np.linalg.inv(c2w_cv)
    return {
        "cameraId": camera_id, "K": k.T.tolist(), "T": w2c.T.tolist(), "width": width, "height": height,
        "distortionModel": "Fisheye" if fisheye else "RadialAndTangential", "distortion": list(lens["distortion"]),
    }  # fmt: skip


def to_transforms(krt: list[dict], splits: dict, size: tuple[int, int], crop_radius: float | None) -> dict:
    """nerfstudio's transforms.json for one resolution (what ``ns-download-data eyefultower`` writes)."""
    fisheye = krt[0]["distortionModel"] == "Fisheye"
    out: dict = {"camera_model": "OPENCV_FISHEYE" if fisheye else "OPENCV"}
    if fisheye and crop_radius is not None:
        out["fisheye_crop_radius"] = crop_radius
    frames = []
    for cam in krt:
        sx, sy = size[0] / cam["width"], size[1] / cam["height"]
        k = np.array(cam["K"]).T
        frame = {"file_path": f"{cam['cameraId']}.jpg", "w": size[0], "h": size[1], "fl_x": k[0, 0] * sx,
                 "fl_y": k[1, 1] * sy, "cx": k[0, 2] * sx, "cy": k[1, 2] * sy}  # fmt: skip
        d = cam["distortion"]
        if fisheye:
            frame.update(k1=d[0], k2=d[1], k3=d[2], p1=d[6], p2=d[7])
        else:
            frame.update(k1=d[0], k2=d[1], k3=d[4], k4=0.0, p1=d[2], p2=d[3])
        t = np.linalg.inv(np.array(cam["T"]).T)[[2, 0, 1, 3], :]
        t[:, 1:3] *= -1
        frame["transform_matrix"] = t.tolist()
        frames.append(frame)
    frames.sort(key=lambda f: f["file_path"])
    out["frames"] = frames
    ids = {f["file_path"]: f["file_path"][: -len(".jpg")] for f in frames}
    out["train_filenames"] = [p for p, i in ids.items() if i in set(splits["train"])]
    out["val_filenames"] = [p for p, i in ids.items() if i in set(splits["test"])]
    out["test_filenames"] = []
    return out


def subsample(transforms: dict, n: int) -> dict:
    """``n`` evenly spaced frames of a transforms dict (as nerfstudio's ``subsample_nerfstudio_transforms``)."""
    frames = transforms["frames"]
    picks = np.round(np.linspace(0, len(frames) - 1, min(len(frames), n))).astype(int)
    out = dict(transforms, frames=[frames[i] for i in picks])
    kept = {f["file_path"] for f in out["frames"]}
    for key in ("train_filenames", "val_filenames"):
        out[key] = sorted(set(transforms[key]) & kept)
    return out


def make_eyeful_scene(
    out_dir: str | Path,
    n_positions: int = 5,
    n_cameras: int = 3,
    fisheye: bool = True,
    resolutions: dict[str, tuple[int, int]] | None = None,
    test_every: int = 4,
    crop_radius: float | None = 0.45,
    aim_spread: float = 0.5,
    upscale: int = 1,
    motion: bool = False,
    supersample: int = 2,
    overwrite: bool = False,
    scene: Scene | None = None,
) -> Path:
    """Render the synthetic scene as an EyefulTower capture.

    Args:
        out_dir: Output (capture) folder; created if missing. Must be empty unless ``overwrite``.
        n_positions: Rig positions.
        n_cameras: Cameras on the rig.
        fisheye: OPENCV_FISHEYE lenses (EyefulTower v1) instead of OPENCV ones (v2).
        resolutions: Resolution folders to write, name → (width, height) (default :data:`RESOLUTIONS`).
        test_every: Spot ``p`` is a test spot when ``p % test_every == 1`` (0: no test ids).
        crop_radius: ``fisheye_crop_radius`` written for fisheye captures (None: omit).
        aim_spread: How far left/right of the centre the side cameras aim (larger: the scene nears image edges).
        upscale: Render at ``1 / upscale`` of each folder's size and enlarge (cheap big captures for benchmarks).
        motion: Let the spheres move (EyefulTower is static; times are not written either way).
        supersample: ``k×k`` samples per pixel.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: Scene to render (default: :func:`synthetic.default_scene`).

    Returns:
        The capture folder.
    """
    out_dir = Path(out_dir)
    resolutions = dict(RESOLUTIONS if resolutions is None else resolutions)
    check_out_dir(out_dir, overwrite, ["images-*", "cameras.json", "splits.json"])
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = default_scene(motion=motion) if scene is None else scene
    cams = rig_cameras(n_positions, n_cameras, aim_spread=aim_spread)
    krt = [krt_entry(cid, c2w, fisheye) for cid, c2w in cams]
    spot = {cid: int(cid.split("DSC")[1]) for cid, _ in cams}
    is_test = {cid: test_every > 0 and spot[cid] % test_every == 1 for cid in spot}
    splits = {"train": [c for c in spot if not is_test[c]], "test": [c for c in spot if is_test[c]]}
    (out_dir / "cameras.json").write_text(json.dumps({"KRT": krt}, indent=1))
    (out_dir / "splits.json").write_text(json.dumps(splits, indent=1))
    for folder, size in resolutions.items():
        transforms = to_transforms(krt, splits, size, crop_radius)
        model = "OPENCV_FISHEYE" if fisheye else "OPENCV"
        by_path = {f["file_path"]: f for f in transforms["frames"]}
        for cid, c2w in cams:
            f = by_path[f"{cid}.jpg"]
            params = [f["k1"], f["k2"], f["k3"], 0.0] if fisheye else [f["k1"], f["k2"], f["p1"], f["p2"], f["k3"]]
            w, h = max(1, size[0] // upscale), max(1, size[1] // upscale)
            sx, sy = w / size[0], h / size[1]
            origin, dirs, valid = model_rays(c2w, w, h, f["fl_x"] * sx, f["fl_y"] * sy, f["cx"] * sx, f["cy"] * sy,
                                             model, tuple(params), supersample)  # fmt: skip
            rgba = trace_rays(scene, origin, np.where(valid[..., None], dirs, 0.0), 0.0)["rgba"]
            path = out_dir / folder / f"{cid}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(to_uint8(over_background(rgba, BACKGROUND)))
            image = image if (w, h) == tuple(size) else image.resize(tuple(size), Image.Resampling.BILINEAR)
            image.save(path, quality=95)
        (out_dir / folder / "transforms.json").write_text(json.dumps(transforms, indent=1))
        for n, name in ((300, "transforms_300.json"), (len(krt) // 2, "transforms_half.json")):
            (out_dir / folder / name).write_text(json.dumps(subsample(transforms, n), indent=1))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene eyeful", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="capture folder (must be empty unless --overwrite)")
    parser.add_argument("--n-positions", type=int, default=5, help="rig positions (default 5)")
    parser.add_argument("--n-cameras", type=int, default=3, help="cameras on the rig (default 3)")
    parser.add_argument("--pinhole", action="store_true", help="OPENCV lenses (v2) instead of OPENCV_FISHEYE (v1)")
    parser.add_argument("--size-1k", type=int, nargs=2, default=RESOLUTIONS["images-jpeg-1k"], help="1k folder WxH")
    parser.add_argument("--size-2k", type=int, nargs=2, default=None, help="also write images-jpeg-2k at WxH")
    parser.add_argument("--test-every", type=int, default=4, help="spot p is test when p %% N == 1 (default 4)")
    parser.add_argument("--supersample", type=int, default=2, help="k×k samples per pixel (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    if min(args.n_positions, args.n_cameras, args.supersample, *args.size_1k) < 1:
        parser.error("counts, sizes and --supersample must be >= 1")
    resolutions = {"images-jpeg-1k": tuple(args.size_1k)}
    if args.size_2k:
        resolutions["images-jpeg-2k"] = tuple(args.size_2k)
    try:
        out = make_eyeful_scene(args.out_dir, args.n_positions, args.n_cameras, not args.pinhole, resolutions,
                                args.test_every, supersample=args.supersample, overwrite=args.overwrite)  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote EyefulTower capture to {out} ({args.n_positions * args.n_cameras} images per resolution)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
