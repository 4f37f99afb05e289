"""End to end through nerfstudio's own CLIs: ns-train → ns-eval (JSON) → ns-render (mp4, render_time) → ns-export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def train(data: Path, out: Path, name: str, steps: int) -> Path:
    run(
        [
            str(BIN / "ns-train"), "dynsplat-4dgs",
            "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", name,
            "--machine.device-type", "cpu", "--vis", "tensorboard",
            "--max-num-iterations", str(steps), "--steps-per-save", "1000",
            "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "100000",
            "--pipeline.model.sh-degree", "1",
            "--pipeline.model.motion.static-warmup-steps", "10",
            "--pipeline.model.motion.resolution", "8", "8", "8", "6",
            "dynsplat-dnerf", "--data", str(data),
        ],
        cwd=out,
    )
    run_dir = out / "tiny" / "dynsplat-4dgs" / name
    assert (run_dir / "config.yml").is_file()
    assert list((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    return run_dir


def evaluate(run_dir: Path, out: Path) -> dict:
    target = out / f"eval_{run_dir.name}.json"
    run([str(BIN / "ns-eval"), "--load-config", str(run_dir / "config.yml"), "--output-path", str(target)], cwd=out)
    return json.loads(target.read_text())["results"]


def test_train_eval_render_export(dnerf_scene, tmp_path):
    start = evaluate(train(dnerf_scene, tmp_path, "start", 1), tmp_path)
    run_dir = train(dnerf_scene, tmp_path, "trained", 80)
    results = evaluate(run_dir, tmp_path)
    for key in ("psnr", "ssim", "lpips", "gaussian_count", "fps", "num_rays_per_sec"):
        assert key in results, key
    assert results["psnr"] > start["psnr"] + 1.0, (start["psnr"], results["psnr"])
    assert results["lpips"] is None or isinstance(results["lpips"], float)

    path = tmp_path / "path.json"
    run([str(BIN / "dynsplat-camera-path"), "orbit", "--load-config", str(run_dir / "config.yml"),
         "--output-path", str(path), "--frames", "6"], cwd=tmp_path)
    assert all("render_time" in kf for kf in json.loads(path.read_text())["camera_path"])
    video = tmp_path / "orbit.mp4"
    run([str(BIN / "ns-render"), "camera-path", "--load-config", str(run_dir / "config.yml"),
         "--camera-path-filename", str(path), "--output-path", str(video)], cwd=tmp_path)
    assert video.is_file() and video.stat().st_size > 1000

    run([str(BIN / "ns-export"), "gaussian-splat", "--load-config", str(run_dir / "config.yml"),
         "--output-dir", str(tmp_path / "export")], cwd=tmp_path)
    ply = tmp_path / "export" / "splat.ply"
    assert ply.is_file()
    header = ply.read_bytes()[:2000].decode("latin-1")
    assert f"element vertex {results['gaussian_count']}" in header
