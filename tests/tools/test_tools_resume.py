"""Resume and fine-tune through ``ns-train --load-dir``: after SIGKILL training continues from the last checkpoint,
and a run resumes on a frame subset (other image count and order) with per-image parameters matched by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
ENV = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
pytestmark = pytest.mark.slow


def train_cmd(data: Path, out: Path, name: str, steps: int, save_every: int, *extra: str) -> list[str]:
    return [
        str(BIN / "ns-train"), "dynsplat-4dgs",
        "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", name,
        "--machine.device-type", "cpu", "--vis", "tensorboard",
        "--max-num-iterations", str(steps), "--steps-per-save", str(save_every),
        "--steps-per-eval-image", "100000", "--steps-per-eval-all-images", "100000",
        "--pipeline.model.sh-degree", "1",
        "--pipeline.model.motion.static-warmup-steps", "5",
        "--pipeline.model.motion.resolution", "8", "8", "8", "6",
        "--pipeline.model.camera-optimizer.mode", "SO3xR3",
        *extra,
        "dynsplat-dnerf", "--data", str(data),
    ]  # fmt: skip


def ckpts(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))


def step_of(path: Path) -> int:
    return int(path.stem.split("-")[-1])


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def killed_run(dnerf_scene, tmp_path_factory) -> Path:
    """A run killed with SIGKILL in the middle of training, after a few checkpoints (one every 4 steps)."""
    out = tmp_path_factory.mktemp("resume")
    run_dir = out / "tiny" / "dynsplat-4dgs" / "killed"
    log = (out / "killed.log").open("w")
    proc = subprocess.Popen(
        train_cmd(dnerf_scene, out, "killed", 100_000, 4), cwd=out, env=ENV, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            found = ckpts(run_dir)
            # nerfstudio deletes the older checkpoint only after writing the new one: one file ⇒ it is complete
            if len(found) == 1 and step_of(found[0]) >= 8:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (out / "killed.log").read_text()[-5000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    return run_dir


def test_resume_after_sigkill_continues_training(killed_run, dnerf_scene):
    out = killed_run.parents[2]
    last = ckpts(killed_run)[-1]
    killed = torch.load(last, map_location="cpu")
    cmd = train_cmd(dnerf_scene, out, "resumed", 4, 1000, "--load-dir", str(killed_run / "nerfstudio_models"))
    proc = run(cmd, cwd=out)
    assert "Done loading Nerfstudio checkpoint" in proc.stdout
    resumed_ckpts = ckpts(out / "tiny" / "dynsplat-4dgs" / "resumed")
    assert [step_of(p) for p in resumed_ckpts] == [step_of(last) + 4]
    resumed = torch.load(resumed_ckpts[-1], map_location="cpu")
    # Adam continued from the checkpoint's moments: 4 more updates (not a fresh optimizer) ...
    adam_steps = {k: float(v["state"][0]["step"]) for k, v in resumed["optimizers"].items() if v["state"]}
    killed_steps = {k: float(v["state"][0]["step"]) for k, v in killed["optimizers"].items() if v["state"]}
    assert adam_steps["means"] == killed_steps["means"] + 4
    # ... and it updated the model's Gaussians (not stale tensors): they moved from the checkpoint, a little
    moved = (resumed["pipeline"]["_model.gauss_params.means"] - killed["pipeline"]["_model.gauss_params.means"]).abs()
    assert 0 < float(moved.max()) < 0.1
    names = resumed["pipeline"]["_extra_state"]["train_image_names"]
    assert names[:2] == ["train/r_000", "train/r_001"] and len(names) == 12


def test_resume_on_frame_subset_matches_per_image_parameters_by_name(killed_run, dnerf_scene, tmp_path):
    # the checkpoint with recognisable per-image camera adjustments: row i = 0.01 (i + 1)
    state = torch.load(ckpts(killed_run)[-1], map_location="cpu")
    rows = torch.arange(1, 13, dtype=torch.float32)[:, None].repeat(1, 6) * 0.01
    state["pipeline"]["_model.camera_optimizer.pose_adjustment"] = rows
    doctored = tmp_path / "doctored"
    doctored.mkdir()
    torch.save(state, doctored / ckpts(killed_run)[-1].name)

    # a frame subset in another order, plus an image the checkpoint never saw
    subset = Path(shutil.copytree(dnerf_scene, tmp_path / "subset"))
    meta = json.loads((subset / "transforms_train.json").read_text())
    frames = [meta["frames"][i] for i in (11, 9, 8, 6, 5, 3, 2)]
    shutil.copy(subset / "train" / "r_000.png", subset / "train" / "r_new.png")
    frames.append({**meta["frames"][0], "file_path": "./train/r_new"})
    (subset / "transforms_train.json").write_text(json.dumps({**meta, "frames": frames}))

    out = tmp_path / "runs"
    proc = run(train_cmd(subset, out, "subset", 2, 1000, "--load-dir", str(doctored)), cwd=tmp_path)
    assert "matched by image name (7 matched, 1 re-initialised)" in " ".join(proc.stdout.split())
    new = torch.load(ckpts(out / "tiny" / "dynsplat-4dgs" / "subset")[-1], map_location="cpu")
    pose = new["pipeline"]["_model.camera_optimizer.pose_adjustment"]
    assert pose.shape == (8, 6)
    expected = torch.tensor([12, 10, 9, 7, 6, 4, 3], dtype=torch.float32)[:, None] * 0.01
    torch.testing.assert_close(pose[:7], expected.expand(7, 6), atol=1e-4, rtol=0)
    assert float(pose[7].abs().max()) < 1e-4  # the new image starts from a fresh (identity) adjustment
    assert new["optimizers"]["camera_opt"]["state"][0]["exp_avg"].shape == (8, 6)
    assert new["pipeline"]["_extra_state"]["train_image_names"][-1] == "train/r_new"
