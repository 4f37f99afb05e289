"""The D2RF generator's scene options (``dynsplat-make-scene d2rf --sphere-checker/--sphere-scale/--sphere-speed/
--slab-shift``).

Each option must reach the scene and do what its help says, measured on the written files (masks, images, blurred
left views) and, where one camera at two times is needed, on the ray caster directly: the sphere checker is texture
attached to the sphere, the scale grows the spheres, the speed sends them along the same path faster (more motion
blur), and a sliding slab is moving (masks), textured with a checker that slides with it, smeared by ``--blur
motion``; without the options the output is the old one byte for byte.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.scenes import d2rf as d2rf_gen
from dynsplat_ns.scenes.blur import gradient_energy
from dynsplat_ns.scenes.synthetic import (
    Box,
    Scene,
    Sphere,
    camera_rays,
    depth_bounds,
    look_at,
    surface_points,
    trace_rays,
)

W, H, N_TIMES = 48, 32, 4
FOCAL = 0.9 * W  # the generator's focal length
SHIFT = 0.4
#: Generated scenes (CLI arguments after the size options).
CASES = {
    "plain": [],
    "sphere_checker": ["--sphere-checker", "0.6"],
    "sphere_scale": ["--sphere-scale", "1.5"],
    "sphere_speed_blur": ["--sphere-speed", "2", "--blur", "motion"],
    "sphere_blur": ["--blur", "motion"],
    "slab_shift": ["--slab-shift", str(SHIFT)],
    "slab_blur": ["--slab-shift", str(SHIFT), "--checker", "0.6", "--blur", "motion"],
    "static_blur": ["--checker", "0.6", "--blur", "motion"],
}
#: A sphere far outside every view: keeps ``Scene.spheres`` non-empty while rendering only the slab.
FAR_SPHERE = Sphere(base=(40.0, 40.0, 40.0), radius=0.1, color=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each case written by ``dynsplat-make-scene d2rf`` (in process) at 48x32, 4 time steps. Read-only."""
    root = tmp_path_factory.mktemp("d2rf_options")
    size = ["--width", str(W), "--height", str(H), "--n-times", str(N_TIMES)]
    for name, extra in CASES.items():
        assert d2rf_gen.main([str(root / name), *size, *extra]) == 0
    return {name: root / name for name in CASES}


def cli_scene(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """The ``Scene`` that ``dynsplat-make-scene d2rf`` would render with these options (nothing is written)."""
    seen = {}

    def fake_make(out_dir, *args, scene=None, **kwargs):
        seen["scene"] = scene
        return Path(out_dir)

    monkeypatch.setattr(d2rf_gen, "make_d2rf_scene", fake_make)
    assert d2rf_gen.main([str(tmp_path / "unused"), *argv]) == 0
    return seen["scene"]


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64) / 255.0


def view(k: int) -> str:
    return f"{k:06d}_left"


def mask_area(scene: Path, k: int) -> int:
    """Moving pixels of the left view ``k`` (``motion_masks/``, half resolution)."""
    return int((load(scene / "motion_masks" / f"{view(k)}.png") > 0.5).sum())


def moving_full(scene: Path, k: int) -> np.ndarray:
    """Full-resolution moving pixels of the left view ``k`` (``background_mask/`` is 255 on the static part)."""
    return load(scene / "background_mask" / f"{view(k)}.jpg") < 0.5


def files(scene: Path) -> dict[str, bytes]:
    return {str(p.relative_to(scene)): p.read_bytes() for p in sorted(scene.rglob("*")) if p.is_file()}


def render(scene: Scene, c2w: np.ndarray, t: float) -> dict[str, np.ndarray]:
    """One sample per pixel (exact values, no edge averaging)."""
    origin, dirs = camera_rays(c2w, W, H, FOCAL, supersample=1)
    return trace_rays(scene, origin, dirs, t)


def moved(c2w: np.ndarray, delta: np.ndarray) -> np.ndarray:
    out = c2w.copy()
    out[:3, 3] += delta
    return out


def left_camera(k: int = 0) -> np.ndarray:
    return d2rf_gen.rig_poses(N_TIMES)[k][0]


# ----------------------------------------------------------------------------------------------------------------------
# Defaults and wiring
# ----------------------------------------------------------------------------------------------------------------------


def test_without_the_options_the_output_is_the_old_default_scene(scenes: dict[str, Path], tmp_path: Path):
    """No option given: byte-identical to ``make_d2rf_scene``'s default scene (static slab, plain, radius 1)."""
    ref = d2rf_gen.make_d2rf_scene(tmp_path / "ref", width=W, height=H, n_times=N_TIMES)
    assert files(scenes["plain"]) == files(ref)


def test_options_reach_the_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plain = cli_scene([], tmp_path, monkeypatch)
    scene = cli_scene(
        ["--sphere-checker", "0.6", "--sphere-scale", "1.5", "--slab-shift", "0.4"], tmp_path, monkeypatch
    )
    assert (plain.sphere_checker, plain.box.shift) == (0.0, (0.0, 0.0, 0.0))
    assert scene.sphere_checker == 0.6
    assert scene.box.shift == (0.4, 0.0, 0.0)
    assert (scene.box.lo, scene.box.hi) == (plain.box.lo, plain.box.hi)
    for got, ref in zip(scene.spheres, plain.spheres, strict=True):
        assert got.radius == pytest.approx(1.5 * ref.radius)
        assert replace(got, radius=ref.radius) == ref  # only the radius changes
    fast = cli_scene(["--sphere-speed", "2"], tmp_path, monkeypatch)
    for got, ref in zip(fast.spheres, plain.spheres, strict=True):
        assert got.frequency == pytest.approx(2 * ref.frequency)
        assert replace(got, frequency=ref.frequency) == ref  # only the frequency changes


# ----------------------------------------------------------------------------------------------------------------------
# --sphere-checker
# ----------------------------------------------------------------------------------------------------------------------


def test_sphere_checker_textures_the_sphere_pixels(scenes: dict[str, Path]):
    """More gradient energy on the spheres (measured 1.5-2.0x at 48x32), same masks (texture only)."""
    textured, plain = scenes["sphere_checker"], scenes["plain"]
    for k in range(N_TIMES):
        spheres = moving_full(plain, k)
        assert spheres.sum() > 20
        ratio = gradient_energy(load(textured / "images" / f"{view(k)}.jpg"), spheres) / gradient_energy(
            load(plain / "images" / f"{view(k)}.jpg"), spheres
        )
        assert ratio > 1.25, (k, ratio)
    for folder in ("motion_masks", "background_mask"):
        for name in sorted((plain / folder).iterdir()):
            assert (textured / folder / name.name).read_bytes() == name.read_bytes(), name


def test_sphere_checker_moves_with_the_sphere():
    """A camera translated with the sphere sees the same pattern at two times: texture fixed to the sphere.

    The pattern is two albedo levels (1 and 1 - contrast) over the sphere's pixels, in both halves substantial.
    """
    sphere = Sphere(base=(0.0, 0.0, 0.0), radius=0.6, color=(0.8, 0.8, 0.8), amp_cos=(0.55, 0.0, 0.0),
                    amp_sin=(0.0, 0.2, 0.3))  # fmt: skip
    far_box = Box(lo=(50.0, 50.0, 50.0), hi=(51.0, 51.0, 51.0), color=(0.5, 0.5, 0.5))
    textured = Scene(spheres=(sphere,), box=far_box, sphere_checker=0.6)
    plain = replace(textured, sphere_checker=0.0)
    c2w = look_at(np.array([0.0, -1.7, 0.5]))
    ref = render(textured, c2w, 0.0)["rgba"]
    on = ref[..., 3] == 1.0
    assert on.sum() > 0.3 * W * H
    factor = ref[on][:, :3] / render(plain, c2w, 0.0)["rgba"][on][:, :3]
    dark = np.isclose(factor, 0.4, atol=1e-5).all(axis=-1)
    light = np.isclose(factor, 1.0, atol=1e-5).all(axis=-1)
    assert (dark | light).all()
    assert 0.2 < dark.mean() < 0.8
    for t in (0.2, 0.45, 0.7):
        delta = sphere.center(t) - sphere.center(0.0)
        assert np.linalg.norm(delta) > 0.3  # the sphere really moved (several checker cells' worth of world space)
        np.testing.assert_allclose(render(textured, moved(c2w, delta), t)["rgba"], ref, atol=1e-5)
        assert np.abs(render(textured, c2w, t)["rgba"] - ref).max() > 0.3  # a fixed camera sees it move


# ----------------------------------------------------------------------------------------------------------------------
# --sphere-scale
# ----------------------------------------------------------------------------------------------------------------------


def test_sphere_scale_grows_the_moving_area(scenes: dict[str, Path]):
    """Radii x1.5: mask area about x2.25 (measured 2.07 on frame 0, 2.19 over all frames; occlusion lowers it)."""
    big, plain = scenes["sphere_scale"], scenes["plain"]
    assert mask_area(plain, 0) > 8
    assert 1.6 < mask_area(big, 0) / mask_area(plain, 0) < 3.0
    total = sum(mask_area(big, k) for k in range(N_TIMES)) / sum(mask_area(plain, k) for k in range(N_TIMES))
    assert 1.8 < total < 2.8


# ----------------------------------------------------------------------------------------------------------------------
# --sphere-speed
# ----------------------------------------------------------------------------------------------------------------------


def test_sphere_speed_runs_the_same_path_faster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Speed 2: at time t each sphere is where the default one is at 2t (same path), so between two frames it moves
    about twice as far (measured 1.55x over 8 frames: 2x where the
    path is sampled finely, less for the blue sphere, whose 4 periods alias at 8 frames)."""
    plain = cli_scene([], tmp_path, monkeypatch)
    fast = cli_scene(["--sphere-speed", "2"], tmp_path, monkeypatch)
    for t in (0.1, 0.3, 0.45):
        np.testing.assert_allclose(fast.sphere_centers(t), plain.sphere_centers(2 * t), atol=1e-12)
    frames = np.linspace(0.0, 1.0, 8)
    step_plain = np.linalg.norm(np.diff(plain.sphere_centers(frames), axis=0), axis=-1).sum()
    step_fast = np.linalg.norm(np.diff(fast.sphere_centers(frames), axis=0), axis=-1).sum()
    assert 1.5 < step_fast / step_plain <= 2.0 + 1e-9, step_fast / step_plain


def test_sphere_speed_blurs_the_spheres_more(scenes: dict[str, Path]):
    """``--blur motion``: the spheres' gradient energy in the blurred left views, relative to the sharp ones, is lower
    at speed 2 than at speed 1 (the exposure covers twice the path; measured mean 0.11 vs 0.19 at 48x32, 4 times)."""
    ratios = {}
    for name in ("sphere_blur", "sphere_speed_blur"):
        scene, kept = scenes[name], []
        for k in range(N_TIMES):
            spheres = moving_full(scene, k)
            sharp = gradient_energy(load(scene / "images" / f"{view(k)}.jpg"), spheres)
            kept.append(gradient_energy(load(scene / "images_bokeh" / f"{view(k)}.jpg"), spheres) / sharp)
        ratios[name] = float(np.mean(kept))
    assert ratios["sphere_speed_blur"] < 0.9 * ratios["sphere_blur"], ratios


# ----------------------------------------------------------------------------------------------------------------------
# --slab-shift
# ----------------------------------------------------------------------------------------------------------------------


def test_slab_shift_puts_the_slab_in_the_motion_masks(scenes: dict[str, Path]):
    """The masks keep the spheres and add the slab: about 3x the area (measured 48-54 vs 15-18 px at 24x16)."""
    sliding, plain = scenes["slab_shift"], scenes["plain"]
    for k in range(N_TIMES):
        with_slab = load(sliding / "motion_masks" / f"{view(k)}.png") > 0.5
        spheres = load(plain / "motion_masks" / f"{view(k)}.png") > 0.5
        assert not (spheres & ~with_slab).any(), k
        assert with_slab.sum() > 2.5 * spheres.sum(), (k, with_slab.sum(), spheres.sum())


def test_moving_is_the_slab_only_when_it_slides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Ray caster, slab alone in view: ``moving`` = its coverage with ``--slab-shift``, 0 without (old behaviour);
    a static (``motion=False``) scene keeps the slab still and out of the masks."""
    sliding = replace(cli_scene(["--slab-shift", str(SHIFT)], tmp_path, monkeypatch), spheres=(FAR_SPHERE,))
    static = replace(cli_scene([], tmp_path, monkeypatch), spheres=(FAR_SPHERE,))
    c2w = left_camera()
    for t in (0.0, 0.25, 0.6):
        out = render(sliding, c2w, t)
        slab = out["rgba"][..., 3] > 0
        assert 0.05 < slab.mean() < 0.9
        np.testing.assert_array_equal(out["moving"], out["rgba"][..., 3])
        assert not render(static, c2w, t)["moving"].any()
        frozen = replace(sliding, motion=False)
        assert not render(frozen, c2w, t)["moving"].any()
        np.testing.assert_array_equal(render(frozen, c2w, t)["rgba"], render(frozen, c2w, 0.0)["rgba"])


def test_slab_and_its_checker_slide_by_shift_sin_2pi_t(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Slab alone: at time t it looks exactly as at t = 0 from a camera moved by ``A sin(2πt)`` along x (the checker
    moves with it), and a fixed camera sees its pixels change while the background stays the same."""
    scene = cli_scene(["--slab-shift", str(SHIFT), "--checker", "0.6"], tmp_path, monkeypatch)
    slab_only = replace(scene, spheres=(FAR_SPHERE,))
    c2w = left_camera()
    ref = render(slab_only, c2w, 0.0)["rgba"]
    for t in (0.1, 0.25, 0.75):
        delta = np.array([SHIFT * np.sin(2 * np.pi * t), 0.0, 0.0])
        np.testing.assert_allclose(render(slab_only, moved(c2w, delta), t)["rgba"], ref, atol=1e-5)
    # Fixed camera, frozen spheres (--motion-scale 0): only the slab's pixels change.
    frozen = cli_scene(["--slab-shift", str(SHIFT), "--checker", "0.6", "--motion-scale", "0"], tmp_path, monkeypatch)
    a, b = render(frozen, c2w, 0.0), render(frozen, c2w, 0.25)
    spheres = render(replace(frozen, box=replace(frozen.box, shift=(0.0, 0.0, 0.0))), c2w, 0.0)["moving"] > 0
    background = (a["rgba"][..., 3] == 0) & (b["rgba"][..., 3] == 0)
    slab = ((a["rgba"][..., 3] > 0) | (b["rgba"][..., 3] > 0)) & ~spheres
    assert background.mean() > 0.3 and slab.sum() > 50
    np.testing.assert_array_equal(a["rgba"][background], b["rgba"][background])
    np.testing.assert_array_equal(a["rgba"][spheres], b["rgba"][spheres])
    diff = np.abs(a["rgba"] - b["rgba"]).max(axis=-1)
    assert (diff[slab] > 0.05).mean() > 0.3, (diff[slab] > 0.05).mean()
    # Without --slab-shift the same two renders are identical.
    still = cli_scene(["--checker", "0.6", "--motion-scale", "0"], tmp_path, monkeypatch)
    np.testing.assert_array_equal(render(still, c2w, 0.0)["rgba"], render(still, c2w, 0.25)["rgba"])


def test_slab_shift_moves_depth_bounds_and_surface_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``depth_bounds``/``surface_points`` at time t equal those of a static slab placed at its offset."""
    scene = cli_scene(["--slab-shift", str(SHIFT)], tmp_path, monkeypatch)
    c2w = look_at(np.array([2.5, -3.0, 1.5]))
    for t in (0.0, 0.25, 0.8):
        offset = np.array([SHIFT * np.sin(2 * np.pi * t), 0.0, 0.0])
        placed = replace(scene, box=replace(scene.box, lo=tuple(np.add(scene.box.lo, offset)),
                                            hi=tuple(np.add(scene.box.hi, offset)), shift=(0.0, 0.0, 0.0)))  # fmt: skip
        np.testing.assert_allclose(depth_bounds(scene, c2w, t), depth_bounds(placed, c2w, t), rtol=0, atol=1e-12)
        xyz, rgb = surface_points(scene, 200, t=t, seed=3)
        ref_xyz, ref_rgb = surface_points(placed, 200, t=t, seed=3)
        np.testing.assert_allclose(xyz, ref_xyz, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(rgb, ref_rgb)
    static = cli_scene([], tmp_path, monkeypatch)
    assert depth_bounds(scene, c2w, 0.25) != depth_bounds(static, c2w, 0.25)


def test_motion_blur_smears_the_sliding_slab(scenes: dict[str, Path]):
    """``--blur motion``: the textured sliding slab loses gradient energy in the left training views (measured
    0.18-0.37 of the sharp view's), while a static textured slab keeps it (0.97-1.01)."""
    sliding, static = scenes["slab_blur"], scenes["static_blur"]
    for k in range(N_TIMES):
        slab = moving_full(sliding, k) & ~moving_full(static, k)  # the slab's pixels (spheres excluded)
        assert slab.sum() > 80, k
        ratios = {}
        for name, scene in (("sliding", sliding), ("static", static)):
            sharp = gradient_energy(load(scene / "images" / f"{view(k)}.jpg"), slab)
            ratios[name] = gradient_energy(load(scene / "images_bokeh" / f"{view(k)}.jpg"), slab) / sharp
        assert ratios["sliding"] < 0.6, (k, ratios)
        assert ratios["static"] > 0.85, (k, ratios)
