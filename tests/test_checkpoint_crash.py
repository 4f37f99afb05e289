"""Checkpoints survive a crash: a run SIGKILLed while it writes a checkpoint leaves no truncated ``step-*.ckpt``, and
``--load-dir`` skips an unreadable newest checkpoint (one warning naming it) and resumes from the previous one.

The kill is real: ``ns-train`` runs in a subprocess whose ``torch.save`` writes half the checkpoint, then stalls (a slow
disk), and the test SIGKILLs it there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dynsplat_ns.checkpoints.files import TEMP_NAME, list_checkpoints

pytestmark = pytest.mark.slow
ENV = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
#: Checkpoint interval of the killed run; its second save (step 2 * SAVE_EVERY) is the one killed mid-write.
SAVE_EVERY = 5

#: ns-train (nerfstudio's tyro parse and train main) for each ``name=args`` of argv[1], in one process. With argv[3]
#: (a marker file), torch.save becomes a slow writer: from step argv[4] on it writes half the file, flushes, creates
#: the marker and stalls. Each run's outcome goes to the JSON file argv[2]: "ok" or the exception's type and text.
DRIVER = r"""
import io, json, os, sys, time, traceback
from pathlib import Path
import torch

runs, status_path = json.loads(sys.argv[1]), Path(sys.argv[2])
if len(sys.argv) > 3:
    marker, slow_from, real_save = Path(sys.argv[3]), int(sys.argv[4]), torch.save

    def slow_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        out = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f
        out.write(data[: len(data) // 2])
        out.flush()
        if isinstance(obj, dict) and obj.get("step", -1) >= slow_from:
            marker.write_text(str(out.name))
            time.sleep(600)  # killed here
        out.write(data[len(data) // 2 :])
        if out is not f:
            out.close()

    torch.save = slow_save

import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from nerfstudio.scripts.train import main
from nerfstudio.utils import writer

status = {}
for name, args in runs.items():
    try:
        main(tyro.cli(AnnotatedBaseConfigUnion, args=args))
        status[name] = "ok"
    except BaseException as err:  # noqa: B036 - record every outcome (SystemExit included)
        status[name] = f"{type(err).__name__}: {err}\n{traceback.format_exc()}"
    writer.EVENT_WRITERS.clear()
    writer.EVENT_STORAGE.clear()
    writer.GLOBAL_BUFFER.clear()
    print(f"--- {name}: {status[name].splitlines()[0]}", flush=True)
status_path.write_text(json.dumps(status))
"""


def train_args(data: Path, out: Path, name: str, steps: int, *extra: str) -> list[str]:
    """ns-train arguments: a few CPU steps of dynsplat-4dgs on the 32 px scene, a checkpoint every SAVE_EVERY."""
    return [
        "dynsplat-4dgs", "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", name,
        "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", str(steps),
        "--steps-per-save", str(SAVE_EVERY), "--steps-per-eval-image", "100000", "--steps-per-eval-batch", "100000",
        "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "0",
        "--pipeline.model.motion.static-warmup-steps", "2", "--pipeline.model.motion.resolution", "4", "4", "4", "4",
        *extra, "dynsplat-dnerf", "--data", str(data),
    ]  # fmt: skip


def driver(runs: dict[str, list[str]], out: Path, *slow: str) -> list[str]:
    return [sys.executable, "-c", DRIVER, json.dumps(runs), str(out / "status.json"), *slow]


def loads_completely(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - any failure means incomplete
        return False
    return True


@pytest.fixture(scope="module")
def killed_mid_write(dnerf_scene, tmp_path_factory) -> Path:
    """The checkpoint folder of a run SIGKILLed while it wrote its second checkpoint (step 2 * SAVE_EVERY)."""
    out = tmp_path_factory.mktemp("crash")
    marker = out / "writing"
    runs = {"killed": train_args(dnerf_scene, out, "killed", 100)}
    log_path = out / "killed.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            driver(runs, out, str(marker), str(2 * SAVE_EVERY)), cwd=out, env=ENV, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 600
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), f"the run never reached its slow checkpoint write:\n{log_path.read_text()[-5000:]}"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return out / "tiny" / "dynsplat-4dgs" / "killed" / "nerfstudio_models"


def test_sigkill_during_a_checkpoint_write_leaves_no_truncated_checkpoint(killed_mid_write):
    folder = killed_mid_write
    files = sorted(p.name for p in folder.iterdir())
    ckpts = sorted(folder.glob("step-*.ckpt"))
    assert ckpts, files
    truncated = [p.name for p in ckpts if not loads_completely(p)]
    assert not truncated, f"truncated checkpoints after the kill: {truncated} (folder: {files})"
    assert [p.name for p in ckpts] == [f"step-{SAVE_EVERY:09d}.ckpt"], files
    # the half-written file is a temporary one (the kill did land mid-write)
    assert any(TEMP_NAME.match(name) for name in files), files
    # written with plain numbers: torch's default weights-only loader reads it with no extra safe globals
    assert torch.load(ckpts[0], map_location="cpu", weights_only=True)["step"] == SAVE_EVERY


def test_nerfstudio_eval_setup_ignores_a_leftover_temporary_file(killed_mid_write):
    """ns-eval/ns-render/ns-viewer (eval_load_checkpoint) read the step from every file name in the folder; the
    killed writer's temporary file must not pass for the newest checkpoint there."""
    from nerfstudio.utils.eval_utils import eval_load_checkpoint

    loaded = []
    pipeline = SimpleNamespace(load_pipeline=lambda state, step: loaded.append(step))
    config = SimpleNamespace(load_dir=killed_mid_write, load_step=None)
    path, step = eval_load_checkpoint(config, pipeline)  # type: ignore[arg-type]
    assert (path.name, step, loaded) == (f"step-{SAVE_EVERY:09d}.ckpt", SAVE_EVERY, [SAVE_EVERY])


def test_resume_skips_an_unreadable_newest_checkpoint(killed_mid_write, dnerf_scene, tmp_path):
    folder = Path(shutil.copytree(killed_mid_write, tmp_path / "killed_models"))  # with the leftover temporary file
    good = folder / f"step-{SAVE_EVERY:09d}.ckpt"
    bad = folder / f"step-{2 * SAVE_EVERY:09d}.ckpt"  # by hand: what an in-place write leaves when killed
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path
    runs = {
        "resumed": train_args(dnerf_scene, out, "resumed", 3, "--load-dir", str(folder)),
        "explicit": train_args(dnerf_scene, out, "explicit", 3, "--load-dir", str(folder), "--load-step", "10"),
    }
    proc = subprocess.run(driver(runs, out), cwd=out, env=ENV, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").is_file() else {}
    assert status.get("resumed") == "ok", log[-5000:]
    warnings = [line for line in log.splitlines() if "Warning: skipping" in line]
    assert len(warnings) == 1 and str(bad) in warnings[0], warnings
    assert f"Done loading Nerfstudio checkpoint from {good}" in " ".join(log.split())
    resumed = [p.name for _, p in list_checkpoints(out / "tiny" / "dynsplat-4dgs" / "resumed" / "nerfstudio_models")]
    assert resumed == [f"step-{SAVE_EVERY + 3:09d}.ckpt"]  # steps 6, 7, 8 after step 5
    # an explicit --load-step of the unreadable file: one line naming it, and nothing trained
    assert status.get("explicit", "").startswith("SystemExit: dynsplat error: "), status.get("explicit", log[-3000:])
    message = status["explicit"].splitlines()[0]
    assert str(bad) in message and "cannot be read" in message, message
    assert not (out / "tiny" / "dynsplat-4dgs" / "explicit" / "nerfstudio_models").exists()
