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

Blurry captures (``blur``; ``--blur``): ``none`` (default) writes the cheap focus-on-the-nearest-surface bokeh above.
``shake``, ``motion`` and ``defocus`` (or a combination, ``shake,motion``) replace the LEFT (training) views of
``images_bokeh/`` and ``images_2/`` by a blurred render (:mod:`dynsplat_ns.scenes.blur`): ``shake`` averages
sub-exposures along a short random camera path, ``motion`` averages sub-times over an exposure window (moving spheres
smear, the slab stays sharp unless it slides: ``--slab-shift``), ``defocus`` blurs by depth around a per-view focus
distance. Everything else is written exactly as with ``none`` (the right views, ``images/`` = sharp renders at the
nominal pose and frame time, the masks and disparity of the sharp render, the poses), so ``dynsplat-d2rf`` parses it
identically. The ground-truth blur parameters of each left view go to ``blur_gt.json`` (not read by the dataparser)::

    {"blur": ["shake", ...], "settings": {...}, "width": W, "height": H, "focal": f,
     "views": {"000000_left": {"time": t, "exposure_window": [t0, t1],          # motion ([t, t] without it)
                               "shake": {"start_rotvec_deg": [3], "end_rotvec_deg": [3],   # camera axes (OpenGL)
                                         "start_translation": [3], "end_translation": [3],
                                         "start_c2w": [4x4], "end_c2w": [4x4], ...},
                               "focus_distance": z, "aperture": a, "aperture_world": a / f}, ...}}   # defocus

Sub-exposure pose = nominal c2w @ [R(rotvec) | translation], both linear from start to end.

Usage::

    dynsplat-make-scene d2rf OUT_DIR --width 64 --height 32 --n-times 6
    dynsplat-make-scene d2rf OUT_DIR --blur shake,motion --sub-exposures 9
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .blur import (
    BLUR_KINDS,
    BlurSettings,
    depth_from_distance,
    offset_pose,
    parse_blur,
    random_shake,
    render_exposure,
)
from .colmap_writer import ColmapCamera, ColmapImage, w2c_from_opengl_c2w, write_database, write_model
from .llff import check_out_dir, poses_bounds_rows, render_opaque, shrink
from .synthetic import Scene, default_scene, depth_bounds, look_at, surface_points, to_uint8

OWNED = ["images", "images_bokeh", "images_2", "background_mask", "motion_masks", "dpt", "flow_i1", "sparse"]
#: Sidecar with the ground-truth blur of each left view (written only when ``blur`` is not ``none``).
BLUR_GT = "blur_gt.json"


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
    static_points_only: bool = False,
    overwrite: bool = False,
    scene: Scene | None = None,
    blur: str | Sequence[str] | None = "none",
    blur_settings: BlurSettings | None = None,
) -> Path:
    """Render the synthetic scene as a D2RF capture.

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``overwrite``.
        width: Full-resolution width (even, so that half resolution is exact).
        height: Full-resolution height (even).
        n_times: Time steps (each gives a left and a right view).
        baseline: Stereo baseline in world units.
        seed: Seed for the point cloud and (a separate stream) the blur draws.
        supersample: ``k×k`` samples per pixel.
        num_points: Points in ``points3D.bin``.
        static_points_only: Keep only the points of the static box in ``points3D.bin`` (as SfM on a real video
            gives: the moving objects have no consistent matches), half of ``num_points``.
        overwrite: Allow a non-empty folder (replaces what this tool writes).
        scene: Scene to render (default: the moving :func:`synthetic.default_scene`).
        blur: ``"none"`` (the cheap bokeh everywhere) or blur kinds for the left views: ``"shake"``, ``"motion"``,
            ``"defocus"``, combined as ``"shake,motion"`` or a list (see the module docstring).
        blur_settings: Blur magnitudes (default :class:`blur.BlurSettings`).

    Returns:
        The output folder.
    """
    out_dir = Path(out_dir)
    kinds = parse_blur(blur)
    settings = BlurSettings() if blur_settings is None else blur_settings
    if settings.sub_exposures < 1:
        raise ValueError(f"sub_exposures={settings.sub_exposures}: must be >= 1")
    check_out_dir(out_dir, overwrite, OWNED + ["poses_bounds.npy", "database.db", BLUR_GT])
    scene = default_scene(motion=True) if scene is None else scene
    for name in OWNED[:-1]:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    focal = 0.9 * width
    half = (width // 2, height // 2)
    names, c2ws, bounds = [], [], []
    rng = np.random.default_rng([seed, 0xB1])  # blur draws: their own stream (the point cloud keeps ``seed``)
    blur_gt = {}
    for k, pair in enumerate(rig_poses(n_times, baseline)):
        t = k / (n_times - 1) if n_times > 1 else 0.0
        for side, c2w in zip(("left", "right"), pair, strict=True):
            name = f"{k:06d}_{side}"
            out = render_opaque(scene, c2w, t, width, height, focal, supersample)
            sharp = Image.fromarray(out["rgb"])
            sharp.save(out_dir / "images" / f"{name}.jpg", quality=95)
            if kinds and side == "left":
                blurred, blur_gt[name] = blur_left_view(
                    scene, c2w, t, out, (width, height, focal, supersample), kinds, settings, rng,
                    frame_interval=1.0 / (n_times - 1) if n_times > 1 else 0.0,
                )  # fmt: skip
                bokeh = Image.fromarray(blurred)
            else:
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
    if static_points_only:  # surface_points puts the box's points first (half of them)
        xyz, rgb = xyz[: num_points // 2], rgb[: num_points // 2]
    write_model(out_dir / "sparse" / "0", camera, images, xyz, rgb)
    write_database(out_dir / "database.db", camera, images)
    if kinds:
        sidecar = {"blur": list(kinds), "settings": asdict(settings), "width": width, "height": height,
                   "focal": focal, "views": blur_gt}  # fmt: skip
        (out_dir / BLUR_GT).write_text(json.dumps(sidecar, indent=1) + "\n")
    return out_dir


def blur_left_view(
    scene: Scene,
    c2w: np.ndarray,
    t: float,
    sharp: dict,
    camera: tuple[int, int, float, int],
    kinds: Sequence[str],
    settings: BlurSettings,
    rng: np.random.Generator,
    frame_interval: float,
) -> tuple[np.ndarray, dict]:
    """Blurred render of one left view and its ``blur_gt.json`` entry.

    Args:
        scene: The scene.
        c2w: Nominal OpenGL camera-to-world.
        t: Frame time.
        sharp: ``render_opaque`` output at the nominal pose and time (its depth picks the focus distance).
        camera: ``(width, height, focal, supersample)``.
        kinds: Active blur kinds.
        settings: Blur magnitudes.
        rng: Generator for the shake path and the focus distance.
        frame_interval: Time between frames (scales the ``motion`` exposure window).

    Returns:
        ``(uint8 [H, W, 3], ground truth dict)``.
    """
    width, height, focal, supersample = camera
    half = 0.5 * settings.exposure * frame_interval if "motion" in kinds else 0.0
    entry: dict = {"time": t, "exposure_window": [t - half, t + half]}
    shake = focus = None
    if "shake" in kinds:
        shake = random_shake(rng, focal, float(np.linalg.norm(c2w[:3, 3])), settings)
        entry["shake"] = {
            "start_rotvec_deg": np.degrees(shake["start_rotvec"]).tolist(),
            "end_rotvec_deg": np.degrees(shake["end_rotvec"]).tolist(),
            "start_translation": shake["start_translation"].tolist(),
            "end_translation": shake["end_translation"].tolist(),
            "rotation_deg": float(np.degrees(np.linalg.norm(shake["end_rotvec"] - shake["start_rotvec"]))),
            "translation": float(np.linalg.norm(shake["end_translation"] - shake["start_translation"])),
            "start_c2w": offset_c2w(c2w, shake, "start"),
            "end_c2w": offset_c2w(c2w, shake, "end"),
        }
    if "defocus" in kinds:
        depth = depth_from_distance(sharp["distance"], focal)
        depth = depth[np.isfinite(depth)]
        near, far = np.percentile(depth, [10, 90]) if depth.size else (1.0, 1.0)
        focus = float(1.0 / rng.uniform(1.0 / far, 1.0 / near))  # uniform in disparity over the visible depths
        entry.update(focus_distance=focus, aperture=settings.aperture, aperture_world=settings.aperture / focal)

    def render(pose: np.ndarray, time: float) -> dict:
        return render_opaque(scene, pose, time, width, height, focal, supersample)

    window = tuple(entry["exposure_window"])
    rgb = render_exposure(render, c2w, t, focal, kinds, settings, shake=shake, window=window, focus=focus)
    return to_uint8(rgb), entry


def offset_c2w(c2w: np.ndarray, shake: dict[str, np.ndarray], end: str) -> list[list[float]]:
    """The shaken camera-to-world at the exposure ``start`` or ``end``, as nested lists."""
    return offset_pose(c2w, shake[f"{end}_rotvec"], shake[f"{end}_translation"]).tolist()


def _cli_scene(args: argparse.Namespace):
    """The default scene with the command line's motion scale, textures, sphere size and speed."""
    scene = default_scene(motion=True, motion_scale=args.motion_scale)
    spheres = tuple(replace(s, radius=s.radius * args.sphere_scale, frequency=s.frequency * args.sphere_speed)
                    for s in scene.spheres)  # fmt: skip
    box = replace(scene.box, shift=(args.slab_shift, 0.0, 0.0))
    return replace(scene, spheres=spheres, box=box, checker=args.checker, sphere_checker=args.sphere_checker)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="dynsplat-make-scene d2rf", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--width", type=int, default=64, help="full-resolution width, even (default 64)")
    parser.add_argument("--height", type=int, default=32, help="full-resolution height, even (default 32)")
    parser.add_argument("--n-times", type=int, default=6, help="time steps, 2 views each (default 6)")
    parser.add_argument("--baseline", type=float, default=0.3, help="stereo baseline (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the point cloud and the blur draws (default 0)")
    parser.add_argument("--supersample", type=int, default=2, help="k×k samples per pixel (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    parser.add_argument("--motion-scale", type=float, default=1.0,
                        help="multiplies the spheres' motion amplitudes (default 1; 0 keeps them still)")  # fmt: skip
    parser.add_argument("--checker", type=float, default=0.0,
                        help="contrast of a checkerboard texture on the slab (default 0: plain; e.g. 0.6)")  # fmt: skip
    parser.add_argument("--sphere-scale", type=float, default=1.0,
                        help="multiplies the spheres' radii (default 1; e.g. 1.6: moving objects cover more pixels)")
    parser.add_argument("--sphere-speed", type=float, default=1.0,
                        help="multiplies the spheres' motion frequencies (default 1; e.g. 2: twice the distance per "
                             "frame at the same amplitude, so twice the object motion blur)")  # fmt: skip
    parser.add_argument("--slab-shift", type=float, default=0.0,
                        help="the slab slides sideways by this amplitude (world units; default 0: static; e.g. 0.3: a "
                             "large textured moving object for object motion blur)")
    parser.add_argument("--sphere-checker", type=float, default=0.0,
                        help="contrast of a checker texture that moves with each sphere (default 0: plain; e.g. 0.6: "
                             "detail that object motion blur smears)")  # fmt: skip
    defaults = BlurSettings()
    blur = parser.add_argument_group(
        "blur", "blur the left (training) views of images_bokeh/ and images_2/; right views stay as with 'none'; "
        "ground truth in blur_gt.json"
    )  # fmt: skip
    blur.add_argument("--blur", default="none", metavar="KINDS",
                      help=f"none (default: cheap bokeh on every view) or a comma-separated mix of "
                           f"{', '.join(BLUR_KINDS)}: camera shake along a short path, object motion over an "
                           f"exposure window, depth-dependent defocus (e.g. shake,motion)")  # fmt: skip
    blur.add_argument("--sub-exposures", type=int, default=defaults.sub_exposures,
                      help=f"renders averaged per shake/motion view (default {defaults.sub_exposures})")  # fmt: skip
    blur.add_argument("--shake-rotation-px", type=float, default=defaults.shake_rotation_px,
                      help="shake rotation (start to end) as its image shift at the centre, in pixels "
                           f"(default {defaults.shake_rotation_px})")  # fmt: skip
    blur.add_argument("--shake-translation-px", type=float, default=defaults.shake_translation_px,
                      help="shake translation (start to end) as its parallax at the scene centre, in pixels "
                           f"(default {defaults.shake_translation_px})")  # fmt: skip
    blur.add_argument("--exposure", type=float, default=defaults.exposure,
                      help="motion exposure window as a fraction of the frame interval, centred on the frame "
                           f"time (default {defaults.exposure})")  # fmt: skip
    blur.add_argument("--aperture", type=float, default=defaults.aperture,
                      help="defocus radius = aperture * |1/z - 1/focus| pixels, focus drawn per view "
                           f"(default {defaults.aperture})")  # fmt: skip
    args = parser.parse_args(argv)
    if args.width < 2 or args.height < 2 or args.width % 2 or args.height % 2 or args.n_times < 1:
        parser.error("--width/--height must be even and >= 2, --n-times >= 1")
    if args.sub_exposures < 1:
        parser.error("--sub-exposures must be >= 1")
    try:
        kinds = parse_blur(args.blur)
    except ValueError as err:
        parser.error(str(err))
    settings = BlurSettings(
        sub_exposures=args.sub_exposures, shake_rotation_px=args.shake_rotation_px,
        shake_translation_px=args.shake_translation_px, exposure=args.exposure, aperture=args.aperture,
    )  # fmt: skip
    try:
        out = make_d2rf_scene(args.out_dir, args.width, args.height, args.n_times, args.baseline, args.seed,
                              args.supersample, overwrite=args.overwrite, blur=kinds or "none",
                              blur_settings=settings,
                              scene=_cli_scene(args))  # fmt: skip
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    what = f", blur: {','.join(kinds)}" if kinds else ""
    print(f"wrote D2RF scene to {out} ({args.n_times} time steps x 2 views, {args.width}x{args.height}{what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
