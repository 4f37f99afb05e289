"""Data-parallel training on torch.distributed (gloo, 2 CPU processes via torchrun): ``dynsplat_ns.training.train``.

Each run is the real ``dynsplat-train`` path under ``torchrun --standalone`` (tests/distributed_driver.py only records
the model after every step). About 20-30 s per run on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dynsplat_ns.checkpoints.files import list_checkpoints

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
DRIVER = REPO / "tests" / "distributed_driver.py"
STEPS = 24
#: refine every 3 steps from step 3; gsplat grows/prunes only once a step is past its pause after the opacity reset
#: at step 0 (num_train_data + refine_every = 15): grow/prune at 15, 18, 21; near-camera pruning at every refine step.
SMALL = [
    "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", str(STEPS),
    "--steps-per-save", "1000", "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "1000",
    "--steps-per-eval-batch", "1000", "--pipeline.model.warmup-length", "2", "--pipeline.model.refine-every", "3",
    "--pipeline.model.stop-split-at", str(STEPS - 1), "--pipeline.model.sh-degree", "1",
    "--pipeline.model.rasterizer-backend", "torch", "--pipeline.model.camera-optimizer.mode", "SO3xR3",
    "--pipeline.datamanager.stereo-seeds", "0",
]  # fmt: skip


def launch(nproc: int, record: Path, out: Path, name: str, extra: list[str], scene: Path, script=None) -> None:
    """``torchrun --standalone --nproc-per-node nproc`` of the driver (or ``-m dynsplat_ns.training.train``)."""
    target = [str(DRIVER), str(record)] if script is None else script
    args = [str(TORCHRUN), "--standalone", "--nproc-per-node", str(nproc), *target, "dynsplat-som",
            "--output-dir", str(out), "--experiment-name", "dist", "--timestamp", name, *SMALL, *extra,
            "dynsplat-dnerf", "--data", str(scene)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHDYNAMO_DISABLE": "1"}
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


@pytest.fixture(scope="module")
def two_rank_run(dnerf_scene, tmp_path_factory):
    """dynsplat-som (motion on) on 2 ranks, 1 camera each per step; records of both ranks and the run folder."""
    root = tmp_path_factory.mktemp("dist")
    launch(2, root / "rec", root / "out", "two", [], dnerf_scene)
    records = [torch.load(root / "rec" / f"rank{r}.pt") for r in range(2)]
    return records, root / "out" / "dist" / "dynsplat-som" / "two"


def test_ranks_hold_identical_models_through_refinements(two_rank_run):
    (r0, r1), _ = two_rank_run
    assert r0["strategy"] == "RankSyncedStrategy"
    assert r0["refines"] == r1["refines"] == 3
    assert r0["counts"] == r1["counts"]
    assert len(set(r0["counts"])) >= 4  # near-camera prunes, then grow/prune: the count changed several times
    for step, (a, b) in enumerate(zip(r0["params"], r1["params"], strict=True)):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (step, name)
    assert {"gauss_params.motion_coefs", "motion.rots", "camera_optimizer.pose_adjustment"} <= set(r0["params"][-1])
    assert not torch.equal(r0["params"][0]["camera_optimizer.pose_adjustment"], r0["params"][-1][
        "camera_optimizer.pose_adjustment"])  # fmt: skip
    # rank-distinct cameras: consecutive entries of one shared order
    for c0, c1 in zip(r0["cameras"], r1["cameras"], strict=True):
        assert len(c0) == len(c1) == 1 and c0 != c1


def test_one_checkpoint_written_by_rank_zero_and_it_resumes(two_rank_run, dnerf_scene, tmp_path):
    _, run = two_rank_run
    checkpoints = list_checkpoints(run / "nerfstudio_models")
    assert [step for step, _ in checkpoints] == [STEPS - 1]
    assert sorted(p.name for p in (run / "nerfstudio_models").iterdir()) == [f"step-{STEPS - 1:09d}.ckpt"]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # rank 0's log only
    assert (run / "config.yml").is_file() and (run / "dataparser_transforms.json").is_file()
    # resume the 2-rank checkpoint with 2 ranks through the module entry point (python -m dynsplat_ns.training.train)
    launch(2, tmp_path / "rec", tmp_path, "resumed", ["--load-dir", str(run / "nerfstudio_models"),
           "--max-num-iterations", "3"], dnerf_scene, script=["-m", "dynsplat_ns.training.train"])  # fmt: skip
    resumed = tmp_path / "dist" / "dynsplat-som" / "resumed" / "nerfstudio_models"
    assert [step for step, _ in list_checkpoints(resumed)] == [STEPS + 2]
    state = torch.load(resumed / f"step-{STEPS + 2:09d}.ckpt", map_location="cpu")
    saved = torch.load(checkpoints[0][1], map_location="cpu")
    key = "_model.gauss_params.means"
    assert state["pipeline"][key].shape[0] > 0 and not torch.equal(state["pipeline"][key], saved["pipeline"][key])


def test_two_ranks_one_camera_match_one_rank_two_cameras(dnerf_scene, tmp_path):
    """Static Gaussians (motion off; the motion parameters are covered above and in test_cameras_per_step.py).

    Tolerance: the cameras are the same and the averaged gradients agree to float rounding (the sums associate
    differently; most tensors are bit-equal after step 0). Adam turns a gradient that is at rounding level (~1e-10 of
    the largest: quaternions of round Gaussians, some scales and opacities) into a step of about its learning rate
    whose sign is that of the noise, so those components drift apart by up to a few learning rates. Asserted: equal
    Gaussian counts through the refinements at 15 and 18; before the first split (step 15) means, colours and camera
    adjustments within 1e-4, opacities and scales within 2e-3, quaternions within 5e-3 (their learning rate: 1e-3).
    """
    static = ["--pipeline.model.disable-motion", "True"]
    launch(2, tmp_path / "two", tmp_path / "out", "two", static, dnerf_scene)
    launch(1, tmp_path / "one", tmp_path / "out", "one", [*static, "--pipeline.datamanager.cameras-per-step", "2"],
           dnerf_scene)  # fmt: skip
    two, one = torch.load(tmp_path / "two" / "rank0.pt"), torch.load(tmp_path / "one" / "rank0.pt")
    assert one["strategy"] == "ViewMaxStrategy"
    assert [a + b for a, b in zip(two["cameras"], torch.load(tmp_path / "two" / "rank1.pt")["cameras"],
                                  strict=True)] == one["cameras"]  # fmt: skip
    assert two["refines"] == one["refines"] == 3
    assert two["counts"][:21] == one["counts"][:21]  # through the refinements at steps 15 and 18
    for step in range(15):  # before the first split (whose random samples then differ by the same rounding)
        for name, a in two["params"][step].items():
            b = one["params"][step][name]
            if a.numel() == 0:
                continue
            tol = {"quats": 5e-3, "scales": 2e-3, "opacities": 2e-3}.get(name.split(".")[-1], 1e-4)
            assert (a - b).abs().max() <= tol, (step, name, float((a - b).abs().max()))
