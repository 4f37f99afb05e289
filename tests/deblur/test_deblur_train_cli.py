"""``ns-train dynsplat-deblur`` on CPU end to end (20 steps on the tiny D-NeRF scene), then ``ns-eval`` on the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow  # about 40 s on 2 shared cores (two nerfstudio start-ups)


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def test_ns_train_and_ns_eval_dynsplat_deblur(dnerf_scene, tmp_path):
    log = run([str(BIN / "ns-train"), "dynsplat-deblur", "--output-dir", str(tmp_path), "--experiment-name", "tiny",
               "--timestamp", "run", "--machine.device-type", "cpu", "--vis", "tensorboard",
               "--max-num-iterations", "20", "--steps-per-save", "1000", "--steps-per-eval-image", "19",
               "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "1",
               "dynsplat-dnerf", "--data", str(dnerf_scene)], cwd=tmp_path)  # fmt: skip
    # The deblur groups are derived from the final config at run start (and logged with the motion groups).
    assert "deblur_trajectory lr 0.003" in log and "deblur_exposure lr 0.01" in log, log[-3000:]
    run_dir = tmp_path / "tiny" / "dynsplat-deblur" / "run"
    (ckpt,) = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    state = torch.load(ckpt, map_location="cpu")
    model = {k.removeprefix("_model."): v for k, v in state["pipeline"].items()}
    assert model["trajectory.knots"].shape == (12, 2, 6) and model["trajectory.knots"].abs().max() > 0
    assert model["exposure.logits"].shape == (12,) and model["exposure.logits"].abs().max() > 0
    assert "deblur_trajectory" in state["optimizers"] and "deblur_exposure" in state["optimizers"]

    eval_json = tmp_path / "eval.json"
    run([str(BIN / "ns-eval"), "--load-config", str(run_dir / "config.yml"), "--output-path", str(eval_json)],
        cwd=tmp_path)
    results = json.loads(eval_json.read_text())["results"]
    assert results["psnr"] > 5 and results["gaussian_count"] > 0
