"""dynsplat-som and dynsplat-marbles end to end: ns-train → ns-eval (JSON) → ns-render (in-between render_time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def time_path(run_dir: Path, data: Path, out: Path) -> Path:
    """A camera path at the first test view with render_time between training frames (no snapping)."""
    tf = json.loads((run_dir / "dataparser_transforms.json").read_text())
    meta = json.loads((data / "transforms_test.json").read_text())
    t4 = np.eye(4)
    t4[:3] = np.asarray(tf["transform"])
    c2w = t4 @ np.asarray(meta["frames"][0]["transform_matrix"])
    c2w[:3, 3] *= tf["scale"]
    fov = float(np.degrees(meta["camera_angle_x"]))  # square images: vertical = horizontal FOV
    frames = [{"camera_to_world": c2w.reshape(-1).tolist(), "fov": fov, "aspect": 1.0, "render_time": t}
              for t in (0.0, 0.37, 0.5, 0.91)]
    out.write_text(json.dumps({"camera_type": "perspective", "render_height": 32, "render_width": 32,
                               "seconds": 1.0, "camera_path": frames}))
    return out


def train(method: str, data: Path, out: Path, name: str, steps: int) -> Path:
    run([str(BIN / "ns-train"), method, "--output-dir", str(out), "--experiment-name", "tiny",
         "--timestamp", name, "--machine.device-type", "cpu", "--vis", "tensorboard",
         "--max-num-iterations", str(steps), "--steps-per-save", "1000", "--steps-per-eval-image", "1000",
         "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "1",
         "dynsplat-dnerf", "--data", str(data)], cwd=out)
    return out / "tiny" / method / name


def evaluate(run_dir: Path, out: Path) -> dict:
    eval_json = out / f"eval_{run_dir.name}.json"
    run([str(BIN / "ns-eval"), "--load-config", str(run_dir / "config.yml"), "--output-path", str(eval_json)],
        cwd=out)
    return json.loads(eval_json.read_text())["results"]


@pytest.mark.parametrize("method", ["dynsplat-som", "dynsplat-marbles"])
def test_method_end_to_end(method, dnerf_scene, tmp_path):
    start = evaluate(train(method, dnerf_scene, tmp_path, "start", 1), tmp_path)
    run_dir = train(method, dnerf_scene, tmp_path, "run", 80)
    results = evaluate(run_dir, tmp_path)
    assert results["psnr"] > start["psnr"] + 1.0, (start["psnr"], results["psnr"])
    assert results["gaussian_count"] > 0 and "per_time" in results
    video = tmp_path / "time.mp4"
    run([str(BIN / "ns-render"), "camera-path", "--load-config", str(run_dir / "config.yml"),
         "--camera-path-filename", str(time_path(run_dir, dnerf_scene, tmp_path / "path.json")),
         "--output-path", str(video)], cwd=tmp_path)
    assert video.is_file() and video.stat().st_size > 500
