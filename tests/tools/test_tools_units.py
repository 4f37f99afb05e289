"""Fast checks of the tools' building blocks (no training): path geometry, novelty, masked/per-time metrics,
checkpoint adaptation for frame-subset resume, PLY export, compare tables, --help and input errors."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.camera_paths import get_path_from_json
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox

from dynsplat_ns.checkpoints.state import ResumeInfo, RowMap
from dynsplat_ns.models import metrics as M
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.tools import camera_path as CP
from dynsplat_ns.tools import compare, export_times, novelty
from dynsplat_ns.tools.runs import CameraSet, ToolError, camera_set, check_time
from dynsplat_ns.training.pipeline import DynsplatPipeline, fit_optimizer_state, image_key, match_image_names


def ring_cameras(n=8, radius=4.0, height=1.0, times=True) -> CameraSet:
    """``n`` training cameras on a circle around the origin (z up), looking at it."""
    up = np.array([0.0, 0.0, 1.0])
    c2w = np.stack(
        [
            CP.look_at(np.array([radius * math.cos(a), radius * math.sin(a), height]), np.zeros(3), up)[:3]
            for a in np.linspace(0, 2 * math.pi, n, endpoint=False)
        ]
    )
    return CameraSet(
        c2w=c2w,
        times=np.linspace(0, 1, n) if times else None,
        names=[f"train/r_{i:03d}" for i in range(n)],
        width=np.full(n, 40),
        height=np.full(n, 30),
        fy=np.full(n, 30.0),
    )


# ---- camera paths --------------------------------------------------------------------------------------------------
def test_look_at_points_minus_z_at_target():
    c2w = CP.look_at(np.array([3.0, 1.0, 2.0]), np.array([0.5, 0.0, 0.2]), np.array([0.0, 0.0, 1.0]))
    rot = c2w[:3, :3]
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    forward = -rot[:, 2]
    expected = np.array([0.5, 0.0, 0.2]) - np.array([3.0, 1.0, 2.0])
    np.testing.assert_allclose(forward, expected / np.linalg.norm(expected), atol=1e-12)
    assert rot[2, 1] > 0  # camera up has a positive z component
    straight_down = CP.look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    assert np.isfinite(straight_down).all()


def test_scene_frame_recovers_training_ring():
    train = ring_cameras(radius=4.0, height=1.0)
    frame = CP.scene_frame(train, np.zeros(3))
    assert frame.radius == pytest.approx(4.0)
    assert frame.height == pytest.approx(1.0)
    np.testing.assert_allclose(frame.up, [0, 0, 1], atol=0.3)
    assert (frame.width, frame.image_height, frame.num_times) == (40, 30, 8)
    assert frame.fov == pytest.approx(math.degrees(2 * math.atan(15 / 30)))
    # angle 0 points at the first training camera
    eye = CP.ring_eyes(frame, frame.poi, frame.radius, frame.height, [0.0])[0]
    assert np.linalg.norm(eye - train.positions[0]) < 0.5


@pytest.mark.parametrize(
    "cmd",
    [
        CP.Orbit(load_config=Path("run")),
        CP.Orbit(load_config=Path("run"), radius=2.0, height=0.5, turns=2.0, time=0.25),
        CP.Cones(load_config=Path("run")),
        CP.Spiral(load_config=Path("run")),
        CP.TimeSweep(load_config=Path("run"), camera_index=3),
        CP.TimeSweep(load_config=Path("run"), eye=(1.0, 2.0, 3.0)),
        CP.BulletTime(load_config=Path("run"), time=0.7, arc=90.0),
    ],
    ids=["orbit", "orbit-options", "cones", "spiral", "time-sweep", "time-sweep-eye", "bullet-time"],
)
def test_paths_parse_in_nerfstudio(cmd):
    train = ring_cameras()
    frame = CP.scene_frame(train, np.zeros(3))
    c2ws, times, info = cmd.keyframes(frame, 12, train)
    assert len(c2ws) == len(times) == 12
    assert ((times >= 0) & (times <= 1)).all()
    data = json.loads(json.dumps(CP.path_json(c2ws, times, frame.fov, 40, 30, 24.0, info)))
    assert all("render_time" in kf for kf in data["camera_path"])
    cams = get_path_from_json(data)
    assert isinstance(cams, Cameras) and cams.times is not None and cams.camera_to_worlds.shape == (12, 3, 4)
    np.testing.assert_allclose(cams.times.reshape(-1).numpy(), times, atol=1e-6)
    if isinstance(cmd, CP.BulletTime):
        assert np.allclose(times, 0.7)
    elif isinstance(cmd, CP.TimeSweep):
        assert np.allclose(cams.camera_to_worlds[0], cams.camera_to_worlds[-1]) and times[-1] == 1.0
    elif isinstance(cmd, CP.Orbit) and cmd.radius is None:
        eyes = np.stack([c[:3, 3] for c in c2ws])
        np.testing.assert_allclose(np.linalg.norm(eyes[:, :2], axis=1), 4.0, atol=1e-6)
        assert times[0] == 0.0 and times[-1] == 1.0


def test_cones_make_rings_at_several_distances():
    train = ring_cameras()
    frame = CP.scene_frame(train, np.zeros(3))
    c2ws, times, info = CP.Cones(load_config=Path("r"), distance_scales=(0.5, 1.0, 2.0)).keyframes(frame, 9, train)
    dists = sorted({round(float(np.linalg.norm(c[:3, 3])), 6) for c in c2ws})
    assert len(dists) == 3 and dists[0] < dists[1] < dists[2]
    assert list(times[:3]) == [0.0, 0.5, 1.0]  # each ring sweeps time
    with pytest.raises(ToolError, match="elevations"):
        CP.Cones(load_config=Path("r"), elevations=(10.0,)).keyframes(frame, 9, train)


def test_time_checks():
    assert check_time(0.0) == 0.0 and check_time(1.0) == 1.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ToolError, match=r"\[0, 1\]"):
            check_time(bad, "--time")
    with pytest.raises(ToolError, match="time-end"):
        CP.Orbit(load_config=Path("r"), time_end=2.0).times(4)


# ---- novelty -------------------------------------------------------------------------------------------------------
def test_novelty_of_training_copy_and_novel_view(tmp_path):
    train = ring_cameras()
    query = CameraSet(
        c2w=np.stack([train.c2w[2], CP.look_at(np.array([0.0, 0.0, 6.0]), np.zeros(3), np.array([0, 1.0, 0]))[:3]]),
        times=np.array([train.times[2], 0.5]),
        names=["copy", "top"],
        width=np.full(2, 40),
        height=np.full(2, 30),
        fy=np.full(2, 30.0),
    )
    rows = novelty.novelty_rows(query, train)
    assert rows[0]["nearest_train_index"] == 2 and rows[0]["nearest_train_image"] == "train/r_002"
    assert rows[0]["distance"] == pytest.approx(0.0, abs=1e-9) and rows[0]["angle_deg"] == pytest.approx(0, abs=1e-4)
    assert rows[0]["near_training_view"] and rows[0]["time_diff"] == pytest.approx(0.0)
    assert not rows[1]["near_training_view"] and rows[1]["angle_deg"] > 30 and rows[1]["distance_over_spacing"] > 1
    csv_path, json_path = novelty.write_novelty(query, train, tmp_path / "n", source="test")
    assert csv_path.read_text().splitlines()[0].split(",") == list(novelty.COLUMNS)
    data = json.loads(json_path.read_text())
    assert data["summary"]["num_near_training_views"] == 1 and len(data["cameras"]) == 2


def test_novelty_rejects_bad_paths(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"render_height": 8, "render_width": 8, "seconds": 1, "camera_path": []}))
    with pytest.raises(ToolError, match="no frames"):
        novelty.load_path(empty)
    bad_time = tmp_path / "t.json"
    kf = {"camera_to_world": np.eye(4).reshape(-1).tolist(), "fov": 50, "render_time": 1.5}
    bad_time.write_text(json.dumps({"render_height": 8, "render_width": 8, "camera_path": [kf]}))
    with pytest.raises(ToolError, match=r"outside \[0, 1\]"):
        novelty.load_path(bad_time)
    with pytest.raises(ToolError, match="not found"):
        novelty.load_path(tmp_path / "missing.json")


def test_camera_set_from_nerfstudio_cameras():
    cams = Cameras(
        camera_to_worlds=torch.eye(4)[:3][None].repeat(2, 1, 1),
        fx=10.0,
        fy=12.0,
        cx=5.0,
        cy=4.0,
        width=10,
        height=8,
        times=torch.tensor([[0.0], [1.0]]),
    )
    cs = camera_set(cams, [Path("/d/train/a.png"), Path("/d/train/b.png")])
    assert cs.names == ["train/a", "train/b"] and list(cs.times) == [0.0, 1.0] and cs.fy[0] == 12.0


# ---- metrics -------------------------------------------------------------------------------------------------------
def test_masked_metrics_match_full_image_metrics():
    from pytorch_msssim import SSIM

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(24, 24, 3, generator=gen)
    pred = (gt + 0.1 * torch.randn(24, 24, 3, generator=gen)).clamp(0, 1)
    full = torch.ones(24, 24, dtype=torch.bool)
    mse = ((gt - pred) ** 2).mean()
    assert M.masked_psnr(gt, pred, full) == pytest.approx(float(-10 * torch.log10(mse)), rel=1e-5)
    ref = SSIM(data_range=1.0, size_average=True, channel=3)(gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None])
    assert M.masked_ssim(gt, pred, full) == pytest.approx(float(ref), abs=1e-5)
    half = torch.zeros(24, 24, dtype=torch.bool)
    half[:, 12:] = True
    pred2 = pred.clone()
    pred2[:, :12] = gt[:, :12]  # perfect outside the mask: masked PSNR only sees the errors
    assert M.masked_psnr(gt, pred2, half) < M.masked_psnr(gt, pred2, full) - 2
    assert M.masked_psnr(gt, pred, torch.zeros(24, 24, dtype=torch.bool)) is None
    out = M.region_metrics(gt, pred, half)
    assert set(out) == {"masked_psnr", "masked_ssim", "masked_fraction"} and out["masked_fraction"] == 0.5
    assert M.region_metrics(gt, pred, None) == {}


def test_dynamic_mask_sources(tmp_path):
    from PIL import Image

    image = torch.zeros(8, 8, 3)
    nerfstudio_mask = torch.zeros(8, 8, 1, dtype=torch.bool)
    nerfstudio_mask[2:4] = True
    batch = {"image": image, "mask": nerfstudio_mask}
    assert M.dynamic_mask_from_batch(batch) is None  # nerfstudio's valid-pixel mask is not a motion mask
    assert M.dynamic_mask_from_batch({"image": image, "dynamic_mask": torch.ones(8, 8)}).all()
    Image.fromarray((np.eye(4) * 255).astype(np.uint8)).save(tmp_path / "m.png")
    mask = M.dynamic_mask_from_metadata({"motion_mask_filenames": [tmp_path / "m.png"]}, 0, (8, 8))  # 4→8 px
    assert mask.shape == (8, 8) and mask.sum() == 16
    assert M.dynamic_mask_from_metadata({}, 0) is None


def test_per_time_breakdown_and_summaries():
    times = [0.5, 0.0, 0.5, None]
    records = [{"psnr": 20.0, "ssim": 0.5}, {"psnr": 30.0, "ssim": 0.9}, {"psnr": 22.0, "ssim": 0.7}, {"psnr": 1.0}]
    table = M.per_time_breakdown(times, records)
    assert list(table) == ["0.0", "0.5"]
    assert table["0.5"] == {"psnr": 21.0, "ssim": pytest.approx(0.6), "num_images": 2}
    records[0].update(masked_psnr=10.0, masked_fraction=0.25)
    out = DynsplatPipeline._summaries(times, records)
    assert out["num_images"] == 4 and out["masked_psnr"] == 10.0 and out["masked_num_images"] == 1
    assert out["per_time"]["0.5"]["masked_psnr"] == 10.0


# ---- resume helpers ------------------------------------------------------------------------------------------------
def test_match_image_names():
    old = [image_key(p) for p in ("/a/train/r_000.png", "/a/train/r_001.png", "/a/train/r_002.png")]
    assert old == ["train/r_000", "train/r_001", "train/r_002"]
    assert match_image_names(old, ["train/r_002", "train/r_000", "train/r_009"]) == [2, 0, -1]
    assert match_image_names(["images_4/0001", "images_4/0002"], ["images_8/0002"]) == [1]


def test_fit_optimizer_state_remaps_rows():
    state = {"step": torch.tensor(5.0), "exp_avg": torch.arange(12.0).reshape(4, 3)}
    param = torch.zeros(3, 3)
    out = fit_optimizer_state(state, param, [3, -1, 0])
    assert out["step"] == 5 and out["exp_avg"].tolist() == [[9, 10, 11], [0, 0, 0], [0, 1, 2]]
    assert fit_optimizer_state(state, torch.zeros(2, 5), None) == {}
    assert fit_optimizer_state(state, torch.zeros(4, 3), None)["exp_avg"] is state["exp_avg"]


def _model(num_images: int, num_frames: int, motion=None, **kw):
    from dynsplat_ns.motion import StaticMotionConfig

    cfg = DynamicSplatModelConfig(motion=motion or StaticMotionConfig(), sh_degree=1, rasterizer_backend="torch", **kw)
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(50, 3, generator=gen) - 0.5
    return cfg.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])),
        num_train_data=num_images,
        metadata={"num_frames": num_frames},
        device="cpu",
        seed_points=(pts, torch.full((50, 3), 128, dtype=torch.uint8)),
    )


def test_model_matches_per_image_rows_by_name():
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig

    old = _model(12, 12, camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"))
    with torch.no_grad():
        old.camera_optimizer.pose_adjustment.copy_(torch.arange(12.0)[:, None].repeat(1, 6))
    state = old.state_dict()
    new = _model(8, 8, camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"))
    assert new.per_image_state_keys() == {"camera_optimizer.pose_adjustment": 0}
    resume = ResumeInfo(row_map=(11, 9, 8, 6, 5, 3, 2, -1), old_num_images=12)
    row_maps = new.load_checkpoint_state(dict(state), resume)
    rows = new.camera_optimizer.pose_adjustment[:, 0].tolist()
    assert rows == [11, 9, 8, 6, 5, 3, 2, 0]  # the last image is new: fresh (zero) adjustment
    assert row_maps == {"camera_optimizer.pose_adjustment": RowMap(resume.row_map, axis=0)}
    plain = _model(8, 8, camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"))
    plain.load_state_dict(dict(state))  # no names: re-initialised, no crash
    assert plain.camera_optimizer.pose_adjustment.abs().sum() == 0


def test_model_resamples_per_frame_tables_and_names_real_mismatches():
    from dynsplat_ns.motion.marbles import MarblesMotionConfig

    old = _model(12, 5, motion=MarblesMotionConfig())
    with torch.no_grad():
        old.gauss_params["marble_offsets"].copy_(torch.linspace(0, 1, 5)[None, :, None].expand(50, 5, 3))
    new = _model(3, 3, motion=MarblesMotionConfig())
    new.load_state_dict(dict(old.state_dict()))
    np.testing.assert_allclose(new.gauss_params["marble_offsets"][0, :, 0].tolist(), [0.0, 0.5, 1.0], atol=1e-6)
    other_sh = _model(12, 5, motion=MarblesMotionConfig())
    other_sh.config.sh_degree = 2
    bad = dict(old.state_dict())
    bad["gauss_params.features_rest"] = torch.zeros(50, 8, 3)
    with pytest.raises(ValueError, match="features_rest"):
        other_sh.load_state_dict(bad)


# ---- export and compare --------------------------------------------------------------------------------------------
def test_ply_fields_roundtrip(tmp_path):
    from plyfile import PlyData

    n = 5
    params = {
        "means": torch.randn(n, 3),
        "scales": torch.randn(n, 3),
        "quats": torch.randn(n, 4),
        "opacities": torch.tensor([[1.0], [-9.0], [0.0], [2.0], [3.0]]),
        "features_dc": torch.randn(n, 3),
        "features_rest": torch.randn(n, 3, 3),
    }
    fields = export_times.gaussian_fields(params, sh_degree=1)
    assert list(fields)[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert [k for k in fields if k.startswith("f_rest")] == [f"f_rest_{i}" for i in range(9)]
    keep = export_times.keep_mask(fields)
    assert keep.tolist() == [True, False, True, True, True]
    count = export_times.write_ply(tmp_path / "s.ply", OrderedDict((k, v[keep]) for k, v in fields.items()))
    vertex = PlyData.read(str(tmp_path / "s.ply"))["vertex"]
    assert count == vertex.count == 4
    np.testing.assert_allclose(vertex["rot_0"], params["quats"][keep, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["f_rest_1"], params["features_rest"][keep, 1, 0].numpy(), rtol=1e-6)
    dc0 = export_times.gaussian_fields(params, sh_degree=0)["f_dc_0"]
    np.testing.assert_allclose(0.5 + export_times.SH_C0 * dc0, torch.sigmoid(params["features_dc"][:, 0]), rtol=1e-5)


def _fake_eval(run_dir: Path, step: int, psnr: float) -> Path:
    ckpt = run_dir / "nerfstudio_models" / f"step-{step:09d}.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    (run_dir / "config.yml").write_text("")
    path = run_dir / "eval.json"
    results = {"psnr": psnr, "ssim": 0.8, "lpips": None, "gaussian_count": 100, "fps": 2.0, "per_time": {}}
    path.write_text(
        json.dumps({"method_name": "m", "experiment_name": "e", "checkpoint": str(ckpt), "results": results})
    )
    return path


def test_compare_tables_and_plot(tmp_path):
    _fake_eval(tmp_path / "short", 100, 20.0)
    long_json = _fake_eval(tmp_path / "long", 1000, 25.0)
    out = tmp_path / "cmp"
    assert compare.main([str(tmp_path / "short"), str(long_json), "--output-dir", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "| short | m | e | 100 |" in md and "| long | m | e | 1000 |" in md and "lpips" not in md
    header = (out / "compare.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["run", "method", "experiment", "step", "train_seconds", "psnr"]
    assert (out / "compare.png").stat().st_size > 1000
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToolError, match="ns-eval"):
        compare.load_entry(tmp_path / "empty")
    with pytest.raises(ToolError, match="no such"):
        compare.load_entry(tmp_path / "nope")


@pytest.mark.parametrize(
    ("module", "args", "flags"),
    [
        (CP, ["orbit", "--help"], ["--load-config", "--radius", "--height", "--look-at", "--poi", "--time-start"]),
        (CP, ["cones", "--help"], ["--distance-scales", "--elevations"]),
        (CP, ["spiral", "--help"], ["--spiral-radius", "--turns"]),
        (CP, ["time-sweep", "--help"], ["--camera-index", "--eye"]),
        (CP, ["bullet-time", "--help"], ["--time", "--arc"]),
        (novelty, ["--help"], ["--camera-path", "--split", "--output-dir"]),
        (compare, ["--help"], ["--output-dir", "--metrics", "--x"]),
        (export_times, ["--help"], ["--times", "--num-times", "--output-dir"]),
    ],
)
def test_help_explains_flags(module, args, flags, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(args)
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text, flag


def test_unknown_run_folder_is_a_clear_error(tmp_path, capsys):
    missing = str(tmp_path / "no_run")
    assert CP.main(["orbit", "--load-config", missing]) == 2
    assert novelty.main(["--load-config", missing]) == 2
    assert export_times.main(["--load-config", missing, "--times", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("no such run folder") == 3
    (tmp_path / "not_a_run").mkdir()
    assert novelty.main(["--load-config", str(tmp_path / "not_a_run")]) == 2
    assert "config.yml not found" in capsys.readouterr().err
    assert export_times.main(["--load-config", missing, "--times", "1.5"]) == 2
    assert "[0, 1]" in capsys.readouterr().err


def test_motion_masks_of_the_d2rf_parser_feed_masked_metrics(tmp_path):
    from nerfstudio.data.datasets.base_dataset import InputDataset

    from dynsplat_ns.dataparsers import d2rf
    from dynsplat_ns.scenes import d2rf as make

    make.make_d2rf_scene(tmp_path / "scene")
    dataset = InputDataset(d2rf.D2RFDataParserConfig(data=tmp_path / "scene").setup().get_dataparser_outputs("test"))
    image = dataset.get_image_float32(0)[..., :3]
    mask = M.dynamic_mask_from_metadata(dataset.metadata, 0, tuple(image.shape[:2]))  # half-res file, resized
    assert mask is not None and mask.shape == image.shape[:2] and 0 < float(mask.float().mean()) < 0.5
    out = M.region_metrics(image, (image + 0.05).clamp(0, 1), mask)
    assert out["masked_psnr"] > 20
