"""The synthetic scene generator (dynsplat_ns.scenes.synthetic, dynsplat_ns.scenes.dnerf)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.scenes import dnerf as make_dnerf_scene
from dynsplat_ns.scenes import synthetic


def _load_split(scene: Path, split: str) -> dict:
    return json.loads((scene / f"transforms_{split}.json").read_text())


def _image(scene: Path, file_path: str) -> np.ndarray:
    path = scene / file_path
    if path.suffix != ".png":
        path = path.with_name(path.name + ".png")
    return np.asarray(Image.open(path))


def test_single_sphere_pixel_colour_and_corner_alpha():
    sphere = synthetic.Sphere(base=(0.0, 0.0, 0.0), radius=0.5, color=(0.2, 0.8, 0.4))
    box = synthetic.Box(lo=(5.0, 5.0, 5.0), hi=(5.1, 5.1, 5.1), color=(1.0, 1.0, 1.0))  # out of view
    scene = synthetic.Scene(spheres=(sphere,), box=box, light_dir=(0.0, -1.0, 0.0), ambient=0.3)
    c2w = synthetic.look_at(np.array([0.0, -4.0, 0.0]))  # the light shines straight at the camera-facing point
    focal = synthetic.focal_from_angle(synthetic.DNERF_CAMERA_ANGLE_X, 33)
    rgba = synthetic.render_rgba(scene, c2w, 0.0, 33, 33, focal, supersample=1)
    assert rgba.shape == (33, 33, 4) and rgba.dtype == np.float32
    centre = rgba[16, 16]
    assert centre[3] == 1.0
    np.testing.assert_allclose(centre[:3], sphere.color, atol=0.02)  # n·l ≈ 1 at the centre → full albedo
    for y, x in [(0, 0), (0, 32), (32, 0), (32, 32)]:
        assert rgba[y, x, 3] == 0.0 and (rgba[y, x, :3] == 0).all()


def test_supersampling_gives_fractional_alpha_at_edges():
    scene = synthetic.default_scene()
    c2w = synthetic.look_at(synthetic.spherical_eye(4.0, 0.3, 0.5))
    focal = synthetic.focal_from_angle(synthetic.DNERF_CAMERA_ANGLE_X, 48)
    alpha = synthetic.render_rgba(scene, c2w, 0.3, 48, 48, focal, supersample=2)[..., 3]
    assert set(np.unique(alpha)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert ((alpha > 0) & (alpha < 1)).any() and (alpha == 0).any() and (alpha == 1).any()
    binary = synthetic.render_rgba(scene, c2w, 0.3, 48, 48, focal, supersample=1)[..., 3]
    assert set(np.unique(binary)) == {0.0, 1.0}


def test_sphere_centres_project_onto_opaque_pixels(dnerf_scene: Path):
    """Ties JSON time + pose + camera_angle_x to the image: every sphere centre lands on an opaque pixel."""
    scene = synthetic.default_scene()
    for split in ("train", "val", "test"):
        meta = _load_split(dnerf_scene, split)
        for frame in meta["frames"]:
            rgba = _image(dnerf_scene, frame["file_path"])
            height, width = rgba.shape[:2]
            focal = synthetic.focal_from_angle(meta["camera_angle_x"], width)
            centres = scene.sphere_centers(frame["time"])
            pix = synthetic.project_points(centres, np.array(frame["transform_matrix"]), width, height, focal)
            for x, y in pix:
                assert 0 <= x < width and 0 <= y < height, "sphere left the field of view"
                assert rgba[int(y), int(x), 3] == 255
            assert (rgba[0, 0, 3], rgba[0, -1, 3], rgba[-1, 0, 3], rgba[-1, -1, 3]) == (0, 0, 0, 0)


def test_motion_amplitude_and_static_switch():
    moving, static = synthetic.default_scene(motion=True), synthetic.default_scene(motion=False)
    times = np.linspace(0.0, 1.0, 21)
    travel = np.ptp(moving.sphere_centers(times), axis=0)  # [S, 3] extent over time
    assert (np.linalg.norm(travel, axis=-1) >= 0.3 * moving.radius).all()
    np.testing.assert_array_equal(static.sphere_centers(0.0), static.sphere_centers(0.7))
    radii = np.array([s.radius for s in moving.spheres])
    inside = np.abs(moving.sphere_centers(times)) + radii[None, :, None] <= 1.5
    assert inside.all(), "spheres must stay inside D-NeRF's [-1.5, 1.5]^3 scene box"


def test_layout_times_and_cameras(dnerf_scene: Path, dnerf_scene_params: dict):
    counts = {s: dnerf_scene_params[f"n_{s}"] for s in ("train", "val", "test")}
    for split, n in counts.items():
        meta = _load_split(dnerf_scene, split)
        assert meta["camera_angle_x"] == pytest.approx(synthetic.DNERF_CAMERA_ANGLE_X)
        assert len(meta["frames"]) == n == len(list((dnerf_scene / split).glob("*.png")))
        times = [f["time"] for f in meta["frames"]]
        assert all(0.0 <= t <= 1.0 for t in times) and times == sorted(times)
        for frame in meta["frames"]:
            assert frame["file_path"].startswith(f"./{split}/r_") and not frame["file_path"].endswith(".png")
            c2w = np.array(frame["transform_matrix"])
            assert c2w.shape == (4, 4)
            np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)
            assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(make_dnerf_scene.CAMERA_RADIUS)
            # OpenGL: the camera looks down its -z axis, i.e. towards the origin.
            np.testing.assert_allclose(-c2w[:3, 2], -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3]), atol=1e-9)
        image = Image.open(dnerf_scene / split / "r_000.png")
        assert image.mode == "RGBA" and image.size == (dnerf_scene_params["size"],) * 2
    train = [f["time"] for f in _load_split(dnerf_scene, "train")["frames"]]
    assert train[0] == 0.0 and train[-1] == 1.0 and len(set(train)) == len(train)
    held_out = {f["time"] for s in ("val", "test") for f in _load_split(dnerf_scene, s)["frames"]}
    assert not held_out & set(train)


def test_deterministic_given_seed(tmp_path: Path):
    kwargs = {"size": 16, "n_train": 3, "n_val": 1, "n_test": 1}
    a = make_dnerf_scene.make_dnerf_scene(tmp_path / "a", seed=3, **kwargs)
    b = make_dnerf_scene.make_dnerf_scene(tmp_path / "b", seed=3, **kwargs)
    c = make_dnerf_scene.make_dnerf_scene(tmp_path / "c", seed=4, **kwargs)
    assert (a / "transforms_train.json").read_text() == (b / "transforms_train.json").read_text()
    assert (a / "transforms_train.json").read_text() != (c / "transforms_train.json").read_text()
    for name in ("train/r_000.png", "train/r_002.png", "test/r_000.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(a / name)), np.asarray(Image.open(b / name)))


def test_cli_refuses_non_empty_dir_and_png_ext(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "out"
    args = [str(out), "--size", "16", "--n-train", "2", "--n-val", "1", "--n-test", "1"]
    assert make_dnerf_scene.main(args) == 0
    assert make_dnerf_scene.main(args) == 1
    assert "not empty" in capsys.readouterr().err
    (out / "notes.txt").write_text("keep me")
    assert make_dnerf_scene.main([*args, "--overwrite", "--png-ext", "--static"]) == 0
    frames = json.loads((out / "transforms_train.json").read_text())["frames"]
    assert frames[0]["file_path"] == "./train/r_000.png"
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileExistsError):
        make_dnerf_scene.make_dnerf_scene(out, size=8, n_train=1, n_val=0, n_test=0)


def test_cli_runs_as_a_script(tmp_path: Path):
    cmd = [sys.executable, "-m", "dynsplat_ns.scenes.cli", "dnerf", str(tmp_path / "s"), "--size", "8"]
    cmd += ["--n-train", "2", "--n-val", "0"]
    result = subprocess.run([*cmd, "--n-test", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "test",
        "train",
        "transforms_test.json",
        "transforms_train.json",
        "transforms_val.json",
        "val",
    ]
