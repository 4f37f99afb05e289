"""The tools on one tiny trained run: camera paths rendered by ns-render, novelty next to the renders, ns-eval JSON
(per-time, lpips, Gaussian count, masked metrics when masks exist), per-time PLY export read back, compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynsplat_ns.tools import camera_path, compare, export_times, novelty

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def trained_run(dnerf_scene, tmp_path_factory) -> Path:
    """One tiny dynsplat-4dgs run (20 steps, motion on after 5) shared by this module."""
    out = tmp_path_factory.mktemp("tools_run")
    run(
        [
            str(BIN / "ns-train"), "dynsplat-4dgs",
            "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", "run",
            "--machine.device-type", "cpu", "--vis", "tensorboard",
            "--max-num-iterations", "20", "--steps-per-save", "1000",
            "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "100000",
            "--pipeline.model.sh-degree", "1",
            "--pipeline.model.motion.static-warmup-steps", "5",
            "--pipeline.model.motion.resolution", "8", "8", "8", "6",
            "dynsplat-dnerf", "--data", str(dnerf_scene),
        ],
        cwd=out,
    )  # fmt: skip
    run_dir = out / "tiny" / "dynsplat-4dgs" / "run"
    assert list((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    return run_dir


@pytest.fixture(scope="module")
def loaded(trained_run):
    """The run loaded in this process (test split), as ns-eval loads it."""
    from dynsplat_ns.tools.runs import load_pipeline

    _, pipeline, _, _ = load_pipeline(trained_run, test_mode="test")
    return pipeline


@pytest.mark.parametrize("kind", ["orbit", "cones", "spiral", "time-sweep", "bullet-time"])
def test_camera_path_defaults_from_run(trained_run, tmp_path, kind):
    out = tmp_path / f"{kind}.json"
    assert camera_path.main([kind, "--load-config", str(trained_run), "--output-path", str(out)]) == 0
    data = json.loads(out.read_text())
    frames = data["camera_path"]
    assert len(frames) == 48  # default: 4 × 12 training times
    assert (data["render_width"], data["render_height"]) == (32, 32)  # from the training cameras
    assert all(0.0 <= kf["render_time"] <= 1.0 for kf in frames)
    assert data["seconds"] == pytest.approx(48 / 24)
    assert frames[0]["fov"] == pytest.approx(np.degrees(0.6911112070083618), rel=0.05)  # generator's camera angle
    poi = np.array(data["dynsplat"]["poi"])
    assert np.linalg.norm(poi) < 1.5  # Gaussian centroid: inside the scene box
    rows = json.loads((tmp_path / f"{kind}.novelty.json").read_text())["cameras"]
    assert len(rows) == 48 and {"distance", "angle_deg", "nearest_train_index"} <= set(rows[0])
    if kind == "time-sweep":  # the first training camera's view at its time is a copy of that training frame
        assert rows[0]["near_training_view"] and rows[0]["distance"] == pytest.approx(0.0, abs=1e-5)


def test_ns_render_renders_path_and_novelty_sits_next_to_frames(trained_run, tmp_path):
    path = tmp_path / "orbit.json"
    assert camera_path.main(
        ["orbit", "--load-config", str(trained_run / "config.yml"), "--output-path", str(path), "--frames", "5",
         "--no-novelty"]
    ) == 0  # fmt: skip
    renders = tmp_path / "renders"
    run([str(BIN / "ns-render"), "camera-path", "--load-config", str(trained_run / "config.yml"),
         "--camera-path-filename", str(path), "--output-path", str(renders), "--output-format", "images"],
        cwd=tmp_path)  # fmt: skip
    assert len(list(renders.glob("*.jpg")) + list(renders.glob("*.png"))) == 5
    assert (
        novelty.main(["--load-config", str(trained_run), "--camera-path", str(path), "--output-dir", str(renders)]) == 0
    )
    table = (renders / "orbit.novelty.csv").read_text().splitlines()
    assert len(table) == 6 and table[0].startswith("index,name,time,nearest_train_index")
    assert novelty.main(["--load-config", str(trained_run), "--split", "test", "--output-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "novelty_test.json").read_text())["cameras"]
    assert len(rows) == 4 and all(r["name"].startswith("test/") for r in rows)


def test_ns_eval_json_and_compare(trained_run, tmp_path):
    target = trained_run / "eval.json"
    run([str(BIN / "ns-eval"), "--load-config", str(trained_run / "config.yml"), "--output-path", str(target)],
        cwd=tmp_path)  # fmt: skip
    results = json.loads(target.read_text())["results"]
    for key in ("psnr", "ssim", "lpips", "gaussian_count", "fps", "num_rays_per_sec", "per_time", "num_images"):
        assert key in results, key
    assert results["lpips"] is None or isinstance(results["lpips"], float)
    assert "masked_psnr" not in results  # D-NeRF has no motion masks
    per_time = results["per_time"]
    assert list(per_time) == ["0.125", "0.375", "0.625", "0.875"]  # the generated test times
    assert all(set(v) >= {"psnr", "ssim", "num_images"} for v in per_time.values())
    assert np.mean([v["psnr"] for v in per_time.values()]) == pytest.approx(results["psnr"], rel=1e-5)

    out = tmp_path / "cmp"
    assert compare.main([str(trained_run), str(target), "--output-dir", str(out), "--x", "train_seconds"]) == 0
    lines = (out / "compare.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("run,dynsplat-4dgs,tiny,19,")
    assert float(lines[1].split(",")[4]) > 0  # training time from the tensorboard events
    assert (out / "compare.png").stat().st_size > 1000 and "psnr" in (out / "compare.md").read_text()


def test_masked_metrics_when_dataset_has_motion_masks(loaded):
    dataset = loaded.datamanager.eval_dataset
    n = len(dataset)
    masks = [torch.zeros(32, 32, dtype=torch.bool) for _ in range(n)]
    for m in masks:
        m[8:24, 8:24] = True
    dataset.metadata["motion_mask_filenames"] = masks  # the key the D2RF parser writes (files or tensors)
    try:
        results = loaded.get_average_eval_image_metrics(get_std=True)
    finally:
        del dataset.metadata["motion_mask_filenames"]
    assert {"masked_psnr", "masked_ssim", "masked_fraction"} <= set(results)
    assert results["masked_num_images"] == n and results["masked_fraction"] == pytest.approx(0.25)
    assert all("masked_psnr" in v for v in results["per_time"].values())
    training_view = loaded.get_average_eval_image_metrics(step=1)  # what the Trainer logs: floats only
    assert all(isinstance(v, float | int) for v in training_view.values()) and "per_time" not in training_view


def test_export_times_every_frame_and_chosen_times(trained_run, loaded, tmp_path):
    from plyfile import PlyData

    every = tmp_path / "every"
    assert export_times.main(["--load-config", str(trained_run), "--output-dir", str(every)]) == 0
    index = json.loads((every / "times.json").read_text())["exports"]
    assert len(index) == 12 and len(list(every.glob("splat_t*.ply"))) == 12

    chosen = tmp_path / "chosen"
    assert export_times.main(["--load-config", str(trained_run), "--output-dir", str(chosen), "--times", "0", "1",
                              "--keep-low-opacity"]) == 0  # fmt: skip
    model = loaded.model
    for t in (0.0, 1.0):
        vertex = PlyData.read(str(chosen / f"splat_t{t:.4f}.ply"))["vertex"]
        names = [p.name for p in vertex.properties]
        assert names[:7] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0"] and names[-4:] == [f"rot_{i}" for i in range(4)]
        assert "opacity" in names and "scale_2" in names and "f_rest_8" in names  # sh_degree 1: 3 × 3 rest coeffs
        with torch.no_grad():
            expected = model.gaussians_at(t)["means"].numpy()
        assert vertex.count == expected.shape[0]
        got = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_bad_inputs_on_a_real_run(trained_run, tmp_path, capsys):
    assert export_times.main(["--load-config", str(trained_run), "--times", "-0.5"]) == 2
    assert camera_path.main(["bullet-time", "--load-config", str(trained_run), "--time", "2"]) == 2
    assert camera_path.main(["orbit", "--load-config", str(trained_run), "--frames", "0"]) == 2
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"render_height": 8, "render_width": 8, "seconds": 1.0, "camera_path": []}))
    assert novelty.main(["--load-config", str(trained_run), "--camera-path", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("[0, 1]") == 2 and "at least one frame" in err and "no frames" in err


def test_render_size_keeps_the_training_aspect(trained_run, tmp_path):
    out = tmp_path / "p.json"
    args = ["orbit", "--load-config", str(trained_run), "--output-path", str(out), "--frames", "2", "--no-novelty"]
    assert camera_path.main([*args, "--render-width", "64"]) == 0
    data = json.loads(out.read_text())
    assert (data["render_width"], data["render_height"]) == (64, 64) and len(data["camera_path"]) == 2
    assert not (tmp_path / "p.novelty.csv").exists()
