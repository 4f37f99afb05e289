"""``ns-train dynsplat-deblur`` killed after a checkpoint and resumed with ``--load-dir``: training continues at the
next step with the saved deblur tables (trajectory knots, exposure logits, defocus tables) and their optimizer state.

The kill is real: the first run (a forked child of the test's driver, so that nerfstudio is imported once) SIGKILLs
itself right after its step-5 checkpoint is on disk. The resumed run records its model's deblur tables just after
loading (before its first step), then trains 3 steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # about 25 s on 2 shared cores (one nerfstudio import)
ENV = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
#: The first run saves a checkpoint every SAVE_EVERY steps and is killed right after the first one.
SAVE_EVERY = 5
#: State keys of the deblur tables.
TABLES = ("trajectory.", "exposure.", "defocus.")

#: Both runs in one process tree with one nerfstudio import: ns-train (nerfstudio's tyro parse and train main) with
#: argv[1] as arguments runs in a forked child that SIGKILLs itself right after its first checkpoint is written (the
#: parent checks it died of the signal), then ns-train with argv[2] runs in the parent and saves, just after it loaded
#: --load-dir, its start step and its model's deblur tables to argv[3].
DRIVER = r"""
import os, signal, sys
import torch, tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from nerfstudio.scripts.train import main
from dynsplat_ns.training.trainer import DynsplatTrainer

first, resumed, record = sys.argv[1].split("\x1f"), sys.argv[2].split("\x1f"), sys.argv[3]
pid = os.fork()
if pid == 0:
    save = DynsplatTrainer.save_checkpoint

    def save_then_die(self, step):
        save(self, step)
        os.kill(os.getpid(), signal.SIGKILL)

    DynsplatTrainer.save_checkpoint = save_then_die
    main(tyro.cli(AnnotatedBaseConfigUnion, args=first))
    os._exit(3)  # not killed: the test fails on the exit status
_, status = os.waitpid(pid, 0)
killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
print(f"first run: {'killed by SIGKILL' if killed else status}", flush=True)
if not killed:
    sys.exit(2)
load = DynsplatTrainer._load_checkpoint


def load_and_record(self):
    load(self)
    state = {k: v.detach().clone() for k, v in self.pipeline.model.state_dict().items()
             if k.startswith(("trajectory.", "exposure.", "defocus."))}
    torch.save({"start_step": self._start_step, "tables": state}, record)


DynsplatTrainer._load_checkpoint = load_and_record
main(tyro.cli(AnnotatedBaseConfigUnion, args=resumed))
"""


def ns_train(data: Path, out: Path, name: str, steps: int, *extra: str) -> list[str]:
    """A few CPU steps of dynsplat-deblur (3 virtual views, defocus on) on the 32 px D-NeRF scene."""
    return [
        "dynsplat-deblur", "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", name,
        "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", str(steps),
        "--steps-per-save", str(SAVE_EVERY), "--steps-per-eval-image", "100000", "--steps-per-eval-batch", "100000",
        "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "0",
        "--pipeline.model.num-virtual-views", "3", "--pipeline.model.defocus", "True", *extra,
        "dynsplat-dnerf", "--data", str(data),
    ]  # fmt: skip


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def tables(state: dict) -> dict[str, torch.Tensor]:
    model = {k.removeprefix("_model."): v for k, v in state["pipeline"].items()}
    return {k: v for k, v in model.items() if k.startswith(TABLES)}


def test_killed_deblur_run_resumes_with_its_tables(dnerf_scene: Path, tmp_path: Path):
    folder = tmp_path / "tiny" / "dynsplat-deblur" / "killed" / "nerfstudio_models"
    record = tmp_path / "after_load.pt"
    first = ns_train(dnerf_scene, tmp_path, "killed", 100)
    resumed = ns_train(dnerf_scene, tmp_path, "resumed", 3, "--load-dir", str(folder))
    cmd = [sys.executable, "-c", DRIVER, "\x1f".join(first), "\x1f".join(resumed), str(record)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    log = proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "first run: killed by SIGKILL" in proc.stdout and proc.returncode == 0, log

    # what the killed run left: its step-5 checkpoint, with trained deblur tables
    assert [p.name for p in folder.glob("*.ckpt")] == [f"step-{SAVE_EVERY:09d}.ckpt"]
    saved = load(folder / f"step-{SAVE_EVERY:09d}.ckpt")
    saved_tables = tables(saved)
    assert {"trajectory.knots", "exposure.logits", "defocus.focus_rel", "defocus.ref_depth"} <= set(saved_tables)
    assert saved_tables["exposure.logits"].abs().max() > 0  # trained away from the initial values (all 0)
    assert saved_tables["trajectory.knots"].abs().max() > 0
    assert torch.isfinite(saved_tables["defocus.view_time"]).any()  # the trained images' cameras, for the eval filter

    # the resumed run: next step, the saved tables exactly, then 3 more steps
    after_load = load(record)
    assert after_load["start_step"] == SAVE_EVERY + 1  # continues at the next step, not from 0
    assert after_load["tables"].keys() == saved_tables.keys()
    for key, value in saved_tables.items():
        torch.testing.assert_close(after_load["tables"][key], value, rtol=0, atol=0, equal_nan=True, msg=key)
    out = tmp_path / "tiny" / "dynsplat-deblur" / "resumed" / "nerfstudio_models"
    assert [p.name for p in out.glob("*.ckpt")] == [f"step-{SAVE_EVERY + 3:09d}.ckpt"]  # steps 6, 7, 8
    final = load(out / f"step-{SAVE_EVERY + 3:09d}.ckpt")
    assert not torch.equal(tables(final)["exposure.logits"], saved_tables["exposure.logits"])  # kept training
    for group in ("deblur_trajectory", "deblur_exposure"):  # Adam went on from the saved moments, not from scratch
        steps = [float(s["step"]) for s in final["optimizers"][group]["state"].values()]
        saved_steps = [float(s["step"]) for s in saved["optimizers"][group]["state"].values()]
        assert steps == [s + 3 for s in saved_steps], (group, steps, saved_steps)
