"""``ns-train --machine.num-devices 2`` (nerfstudio's own launcher: ``mp.spawn`` of ``_distributed_worker``) on CPU.

The real ``ns-train`` console script, with ``--machine.device-type cpu`` (gloo). nerfstudio's worker asserts CUDA
(``torch.cuda.is_available()`` and ``num_devices <= torch.cuda.device_count()``); ``tests/ns_train_shim`` (on
``PYTHONPATH``: a ``sitecustomize`` run by every process, the spawned workers included) makes those two queries say
"yes, 2" inside ``nerfstudio.scripts.train`` only, and records each rank's model after every step. What is not covered:
NCCL and real GPUs. About 30-40 s on 2 shared cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dynsplat_ns.checkpoints.files import list_checkpoints

REPO = Path(__file__).resolve().parents[1]
NS_TRAIN = Path(sys.executable).with_name("ns-train")
SHIM = REPO / "tests" / "ns_train_shim"
STEPS = 24
#: As tests/test_distributed.py: refine every 3 steps; grow/prune at 15, 18, 21 (after the pause that follows the
#: opacity reset at step 0), near-camera pruning at every refine step. Rank 0 alone evaluates (one image at 10, all at
#: 20) while rank 1 trains on.
SMALL = [
    "--machine.device-type", "cpu", "--machine.num-devices", "2", "--vis", "tensorboard",
    "--max-num-iterations", str(STEPS), "--steps-per-save", "1000", "--steps-per-eval-image", "10",
    "--steps-per-eval-all-images", "20", "--steps-per-eval-batch", "1000", "--pipeline.model.warmup-length", "2",
    "--pipeline.model.refine-every", "3", "--pipeline.model.stop-split-at", str(STEPS - 1),
    "--pipeline.model.sh-degree", "1", "--pipeline.model.rasterizer-backend", "torch",
    "--pipeline.model.camera-optimizer.mode", "SO3xR3", "--pipeline.datamanager.stereo-seeds", "0",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not (NS_TRAIN.is_file() and dist.is_available() and dist.is_gloo_available()),
    reason="needs the ns-train console script and torch.distributed with gloo to spawn 2 CPU ranks",
)


@pytest.fixture(scope="module")
def ns_train_run(dnerf_scene, tmp_path_factory):
    """``ns-train dynsplat-som --machine.num-devices 2`` on CPU; each rank's record and the run folder."""
    root = tmp_path_factory.mktemp("ns_train_2")
    args = [str(NS_TRAIN), "dynsplat-som", "--output-dir", str(root / "out"), "--experiment-name", "dist",
            "--timestamp", "two", *SMALL, "dynsplat-dnerf", "--data", str(dnerf_scene)]  # fmt: skip
    python_path = os.pathsep.join(p for p in (str(SHIM), str(SHIM.parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": python_path, "DYNSPLAT_TEST_RECORD_DIR": str(root / "rec"),
           "OMP_NUM_THREADS": "1", "TORCHDYNAMO_DISABLE": "1"}  # fmt: skip
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    log = result.stdout[-3000:] + result.stderr[-6000:]
    assert result.returncode == 0, log
    records = [torch.load(root / "rec" / f"rank{r}.pt") for r in range(2)]
    return records, root / "out" / "dist" / "dynsplat-som" / "two"


def test_spawned_ranks_are_gloo_on_cpu_without_ddp(ns_train_run):
    records, _ = ns_train_run
    assert [r["rank"] for r in records] == [0, 1]
    for r in records:
        assert r["world_size"] == 2 and r["backend"] == "gloo" and r["device"] == "cpu"
        # the shim reaches only nerfstudio's launcher: everything the run touches sees the real (CPU-only) torch.cuda
        assert r["cuda_available"] == torch.cuda.is_available()
        # our pipeline: never DDP-wrapped; our trainer: gradients averaged across ranks before each optimizer step
        assert r["pipeline_model"] != "DistributedDataParallel" and r["pipeline_world_size"] == 2
        assert r["optimizers"] == "RankAveragedOptimizers"
        assert r["strategy"] == "RankSyncedStrategy"


def test_spawned_ranks_render_own_cameras_and_stay_identical(ns_train_run):
    """Distinct cameras per rank and bit-identical models after every step: only gradient averaging (and the
    synchronised refine) can keep them equal."""
    (r0, r1), _ = ns_train_run
    assert len(r0["cameras"]) == len(r1["cameras"]) == STEPS
    for c0, c1 in zip(r0["cameras"], r1["cameras"], strict=True):
        assert len(c0) == len(c1) == 1 and c0 != c1
    assert r0["refines"] == r1["refines"] == 3
    assert r0["counts"] == r1["counts"]
    assert len(set(r0["counts"])) >= 4  # near-camera prunes, then grow/prune: the count changed several times
    assert len(r0["params"]) == len(r1["params"]) == STEPS
    for step, (a, b) in enumerate(zip(r0["params"], r1["params"], strict=True)):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (step, name)
    assert {"gauss_params.motion_coefs", "motion.rots", "camera_optimizer.pose_adjustment"} <= set(r0["params"][-1])
    first, last = r0["params"][0], r0["params"][-1]
    assert not torch.equal(first["camera_optimizer.pose_adjustment"], last["camera_optimizer.pose_adjustment"])


def test_rank_zero_alone_writes_the_run_folder(ns_train_run):
    _, run = ns_train_run
    assert [step for step, _ in list_checkpoints(run / "nerfstudio_models")] == [STEPS - 1]
    assert sorted(p.name for p in (run / "nerfstudio_models").iterdir()) == [f"step-{STEPS - 1:09d}.ckpt"]
    logs = list(run.glob("events.out.tfevents.*"))
    assert len(logs) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logs[0]))
    events.Reload()
    assert [s.step for s in events.Scalars("Eval Images Metrics/psnr")] == [10, 20]  # rank 0 evaluated mid-run
    assert [s.step for s in events.Scalars("Eval Images Metrics Dict (all images)/psnr")] == [20]
    assert sorted(p.name for p in run.glob("*.yml")) == ["config.yml"]
    assert (run / "dataparser_transforms.json").is_file()
