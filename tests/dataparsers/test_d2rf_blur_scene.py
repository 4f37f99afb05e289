"""Blurry D2RF scenes (``dynsplat-make-scene d2rf --blur``): shake, object motion and defocus on the left views.

Each blur kind must parse with ``dynsplat-d2rf`` exactly like the sharp scene, blur its left (training) views
measurably (gradient energy), leave every other file byte-identical to the ``none`` scene, and describe itself
truthfully in ``blur_gt.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.scenes import d2rf as d2rf_gen
from dynsplat_ns.scenes.blur import (
    BlurSettings,
    coc_radius,
    depth_from_distance,
    gradient_energy,
    offset_pose,
    parse_blur,
    render_exposure,
    subexposure_offsets,
)
from dynsplat_ns.scenes.cli import main as make_scene_main
from dynsplat_ns.scenes.llff import render_opaque, shrink
from dynsplat_ns.scenes.synthetic import default_scene, to_uint8

W, H, N_TIMES = 64, 32, 4
FOCAL = 0.9 * W  # the generator's focal length
KINDS = ("shake", "motion", "defocus")
#: Per-view upper bound of gradient energy (blurred left / sharp left); measured 0.32-0.52 (shake), 0.25-0.37
#: (motion), 0.48-0.78 (defocus) at 64x32.
MAX_ENERGY_RATIO = {"shake": 0.65, "motion": 0.55, "defocus": 0.9}
#: Bound on the mean ratio over the left views (measured ~0.40 / 0.31 / 0.59).
MAX_MEAN_ENERGY_RATIO = {"shake": 0.55, "motion": 0.45, "defocus": 0.75}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 64x32, 4-step capture with each blur (and none). Read-only."""
    root = tmp_path_factory.mktemp("d2rf_blur")
    return {
        kind: d2rf_gen.make_d2rf_scene(root / kind, width=W, height=H, n_times=N_TIMES, seed=0, blur=kind)
        for kind in ("none",) + KINDS
    }


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64) / 255.0


def left(scene: Path, folder: str, k: int) -> np.ndarray:
    return load(scene / folder / f"{k:06d}_left.jpg")


def edge_pixels(image: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Pixels whose grey value differs from the next one (right or down) by more than ``threshold``."""
    grey = image.mean(axis=-1)
    edges = np.zeros(grey.shape, dtype=bool)
    edges[:, :-1] |= np.abs(np.diff(grey, axis=1)) > threshold
    edges[:-1, :] |= np.abs(np.diff(grey, axis=0)) > threshold
    return edges


def files(scene: Path) -> dict[str, bytes]:
    return {str(p.relative_to(scene)): p.read_bytes() for p in sorted(scene.rglob("*")) if p.is_file()}


def parse(data: Path, split: str):
    return D2RFDataParserConfig(data=data).setup().get_dataparser_outputs(split=split)


def test_parse_blur_kinds():
    assert parse_blur("none") == parse_blur(None) == parse_blur([]) == ()
    assert parse_blur("motion, shake") == ("shake", "motion") == parse_blur(["motion", "shake"])
    assert parse_blur("defocus,shake,motion") == ("shake", "motion", "defocus")
    for bad in ("blurry", "none,shake", ["shake", "wobble"]):
        with pytest.raises(ValueError):
            parse_blur(bad)


def test_none_writes_the_sharp_generator_output(scenes: dict[str, Path], tmp_path: Path):
    """``blur="none"`` is the default (byte-identical) and writes no sidecar."""
    default = d2rf_gen.make_d2rf_scene(tmp_path / "default", width=W, height=H, n_times=N_TIMES, seed=0)
    assert files(default) == files(scenes["none"])
    assert not (scenes["none"] / d2rf_gen.BLUR_GT).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_left_bokeh_views_change(scenes: dict[str, Path], kind: str):
    """Right views (every folder), sharp left views, masks, disparity, poses and COLMAP files equal ``none``'s."""
    sharp, blurred = files(scenes["none"]), files(scenes[kind])
    assert set(blurred) == set(sharp) | {d2rf_gen.BLUR_GT}
    changed = {name for name in sharp if sharp[name] != blurred[name]}
    expected = {f"{folder}/{k:06d}_left.jpg" for folder in ("images_bokeh", "images_2") for k in range(N_TIMES)}
    assert changed == expected


@pytest.mark.parametrize("kind", KINDS)
def test_blurred_scene_parses_like_the_sharp_one(scenes: dict[str, Path], kind: str):
    for split in ("train", "test"):
        ref, out = parse(scenes["none"], split), parse(scenes[kind], split)
        assert [f.relative_to(scenes[kind]) for f in out.image_filenames] == [
            f.relative_to(scenes["none"]) for f in ref.image_filenames
        ]
        for attr in ("camera_to_worlds", "fx", "fy", "cx", "cy", "width", "height", "times"):
            torch.testing.assert_close(getattr(out.cameras, attr), getattr(ref.cameras, attr), rtol=0, atol=0)
        assert out.metadata["frame_indices"] == ref.metadata["frame_indices"]
        assert out.dataparser_scale == ref.dataparser_scale
        torch.testing.assert_close(out.dataparser_transform, ref.dataparser_transform, rtol=0, atol=0)
    train = parse(scenes[kind], "train")
    assert [f.parent.name for f in train.image_filenames] == ["images_bokeh"] * N_TIMES  # the blurred left views


@pytest.mark.parametrize("kind", KINDS)
def test_left_views_are_blurrier_than_their_sharp_render(scenes: dict[str, Path], kind: str):
    ratios = [
        gradient_energy(left(scenes[kind], "images_bokeh", k)) / gradient_energy(left(scenes[kind], "images", k))
        for k in range(N_TIMES)
    ]
    assert max(ratios) < MAX_ENERGY_RATIO[kind], ratios
    assert np.mean(ratios) < MAX_MEAN_ENERGY_RATIO[kind], ratios
    for k in range(N_TIMES):  # the half-resolution copies are the blurred views too
        sharp_half = shrink(Image.open(scenes[kind] / "images" / f"{k:06d}_left.jpg"), 2)
        half_ratio = gradient_energy(left(scenes[kind], "images_2", k)) / gradient_energy(np.asarray(sharp_half))
        assert half_ratio < 0.5 * (1 + MAX_ENERGY_RATIO[kind]), half_ratio


def _static_and_moving(gt: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels no sphere touches during view ``k``'s exposure window, and pixels one does (from the sidecar)."""
    view = gt["views"][f"{k:06d}_left"]
    c2w = d2rf_gen.rig_poses(N_TIMES)[k][0]
    moving = np.zeros((H, W), dtype=bool)
    for s in subexposure_offsets(gt["settings"]["sub_exposures"]):
        time = (1.0 - s) * view["exposure_window"][0] + s * view["exposure_window"][1]
        moving |= render_opaque(default_scene(), c2w, time, W, H, FOCAL, 2)["moving"] > 0
    static = ~moving
    static[:, :-1] &= ~moving[:, 1:]  # gradient_energy's forward differences stay inside the region
    static[:-1, :] &= ~moving[1:, :]
    return static, moving


def test_motion_blur_smears_the_moving_spheres_only(scenes: dict[str, Path]):
    gt = json.loads((scenes["motion"] / d2rf_gen.BLUR_GT).read_text())
    for k in range(N_TIMES):
        interval = 1.0 / (N_TIMES - 1)
        assert gt["views"][f"{k:06d}_left"]["exposure_window"] == pytest.approx([(k - 0.5) * interval,
                                                                                  (k + 0.5) * interval])  # fmt: skip
        static, moving = _static_and_moving(gt, k)
        sharp, blurred = left(scenes["motion"], "images", k), left(scenes["motion"], "images_bokeh", k)
        error = np.abs(blurred - sharp).mean(axis=-1)
        assert error[static].mean() < 0.01 and error[static].mean() < 0.1 * error[moving].mean()
        # the static slab keeps its edges (gradient energy) and its edge pixels; camera shake moves those
        assert gradient_energy(blurred, static) / gradient_energy(sharp, static) > 0.9
        static_edges = static & edge_pixels(sharp)
        shaken = left(scenes["shake"], "images_bokeh", k)
        shake_error = np.abs(shaken - sharp).mean(axis=-1)
        assert static_edges.sum() > 50 and error[static_edges].mean() < 0.5 * shake_error[static_edges].mean()


def test_defocus_keeps_the_focus_depth_sharp(scenes: dict[str, Path]):
    gt = json.loads((scenes["defocus"] / d2rf_gen.BLUR_GT).read_text())
    in_focus, out_of_focus = [], []
    for k, (c2w, _) in enumerate(d2rf_gen.rig_poses(N_TIMES)):
        view = gt["views"][f"{k:06d}_left"]
        sharp = render_opaque(default_scene(), c2w, k / (N_TIMES - 1), W, H, FOCAL, 2)
        depth = depth_from_distance(sharp["distance"], FOCAL)
        assert (
            np.nanpercentile(depth[np.isfinite(depth)], 5) <= view["focus_distance"] <= depth[np.isfinite(depth)].max()
        )
        coc = coc_radius(depth, view["focus_distance"], view["aperture"])
        image, blurred = left(scenes["defocus"], "images", k), left(scenes["defocus"], "images_bokeh", k)
        edges = edge_pixels(image)  # pixels with structure to blur
        error = np.abs(blurred - image).mean(axis=-1)
        in_focus += list(error[edges & (coc < 0.5)])
        out_of_focus += list(error[edges & (coc > 2.0)])
    assert len(in_focus) > 50 and len(out_of_focus) > 50
    # measured: 0.009 in focus vs 0.063 out of focus
    assert np.mean(in_focus) < 0.3 * np.mean(out_of_focus), (np.mean(in_focus), np.mean(out_of_focus))


@pytest.mark.parametrize("kind", KINDS)
def test_sidecar_reproduces_the_blurred_views(scenes: dict[str, Path], kind: str):
    """Re-rendering from ``blur_gt.json`` gives the written left views (the sidecar is the ground truth)."""
    gt = json.loads((scenes[kind] / d2rf_gen.BLUR_GT).read_text())
    assert (
        gt["blur"] == [kind] and gt["focal"] == FOCAL and set(gt["views"]) == {f"{k:06d}_left" for k in range(N_TIMES)}
    )
    settings = BlurSettings(**gt["settings"])
    scene = default_scene()

    def render(pose, time):
        return render_opaque(scene, pose, time, W, H, FOCAL, 2)

    for k, (c2w, _) in enumerate(d2rf_gen.rig_poses(N_TIMES)):
        view = gt["views"][f"{k:06d}_left"]
        shake = None
        if kind == "shake":
            sh = view["shake"]
            shake = {key: np.radians(sh[key + "_deg"]) for key in ("start_rotvec", "end_rotvec")}
            shake |= {key: np.asarray(sh[key]) for key in ("start_translation", "end_translation")}
            np.testing.assert_allclose(shake["end_rotvec"], -shake["start_rotvec"])
            assert 0.6 * 4.0 / FOCAL <= np.radians(sh["rotation_deg"]) <= 4.0 / FOCAL + 1e-9
            np.testing.assert_allclose(sh["start_c2w"], offset_pose(c2w, shake["start_rotvec"],
                                                                      shake["start_translation"]))  # fmt: skip
        else:
            assert "shake" not in view
        assert ("focus_distance" in view) == (kind == "defocus")
        expected = render_exposure(render, c2w, view["time"], FOCAL, [kind], settings, shake=shake,
                                   window=tuple(view["exposure_window"]), focus=view.get("focus_distance"))  # fmt: skip
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(expected)).save(buffer, format="JPEG", quality=95)  # as the generator saves it
        rebuilt = np.asarray(Image.open(buffer), dtype=np.float64) / 255.0
        written = left(scenes[kind], "images_bokeh", k)
        assert np.abs(written - rebuilt).max() <= 1.5 / 255.0
        assert np.abs(written - left(scenes[kind], "images", k)).max() > 0.1  # (not the sharp view)


def test_combined_kinds_and_cli(tmp_path: Path, capsys):
    assert make_scene_main(["d2rf", str(tmp_path / "s"), "--width", "16", "--height", "8", "--n-times", "2",
                            "--blur", "motion,shake", "--sub-exposures", "3", "--aperture", "20"]) == 0  # fmt: skip
    gt = json.loads((tmp_path / "s" / d2rf_gen.BLUR_GT).read_text())
    assert gt["blur"] == ["shake", "motion"] and gt["settings"]["sub_exposures"] == 3
    assert gt["settings"]["aperture"] == 20.0
    assert all("shake" in v and "focus_distance" not in v for v in gt["views"].values())
    assert "blur: shake,motion" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        make_scene_main(["d2rf", str(tmp_path / "bad"), "--blur", "wobble"])
    assert err.value.code == 2 and "unknown kind" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        make_scene_main(["d2rf", "--help"])
    assert "--blur" in capsys.readouterr().out
    # re-writing the folder without blur removes the stale sidecar
    d2rf_gen.make_d2rf_scene(tmp_path / "s", width=16, height=8, n_times=2, overwrite=True)
    assert not (tmp_path / "s" / d2rf_gen.BLUR_GT).exists()
