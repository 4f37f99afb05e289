"""Shared pytest fixtures: small generated scenes (CPU only, nothing downloaded)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from dynsplat_ns.scenes import d2rf as make_d2rf_scene
from dynsplat_ns.scenes import dnerf as make_dnerf_scene
from dynsplat_ns.scenes import dycheck as make_dycheck_scene
from dynsplat_ns.scenes import eyeful as make_eyeful_scene
from dynsplat_ns.scenes import llff as make_llff_scene

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]

#: How the ``dnerf_scene`` fixture is generated (see ``dnerf_scene_params``).
DNERF_SCENE_PARAMS = {"size": 32, "n_train": 12, "n_val": 4, "n_test": 4, "seed": 0, "motion": True, "supersample": 2}


@pytest.fixture(scope="session")
def kernels():
    """The compiled CPU kernels (built on first use, about a minute); the test is skipped when they are unavailable."""
    from dynsplat_ns.kernels import cpu as cpu_kernels

    module = cpu_kernels.load_cpu_kernels()
    if module is None:
        pytest.skip(f"compiled CPU kernels unavailable: {cpu_kernels._state['error'] or 'opted out'}")
    return module


@pytest.fixture(scope="session")
def dnerf_scene_params() -> dict:
    """The keyword arguments ``dnerf_scene`` was generated with (size, n_train, n_val, n_test, seed, ...)."""
    return dict(DNERF_SCENE_PARAMS)


@pytest.fixture(scope="session")
def dnerf_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny moving-spheres scene in the D-NeRF layout (32 px; 12 train, 4 val, 4 test frames).

    Shared by the whole session: treat it as read-only and use ``dnerf_scene_copy`` to modify it.
    """
    return make_dnerf_scene.make_dnerf_scene(tmp_path_factory.mktemp("dnerf") / "scene", **DNERF_SCENE_PARAMS)


@pytest.fixture
def dnerf_scene_copy(dnerf_scene: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``dnerf_scene`` for tests that edit or corrupt it."""
    return Path(shutil.copytree(dnerf_scene, tmp_path / "scene"))


# ----------------------------------------------------------------------------------------------------------------------
# LLFF / D2RF / EyefulTower scenes (generated in each dataset's real layout; tiny)
# ----------------------------------------------------------------------------------------------------------------------

#: How the ``llff_scene`` fixture is generated.
LLFF_SCENE_PARAMS = {"width": 48, "height": 32, "n_frames": 12, "seed": 0, "factors": (2,), "sparse": True}
#: How the ``d2rf_scene`` fixture is generated (6 time steps x left/right = 12 views).
D2RF_SCENE_PARAMS = {"width": 64, "height": 32, "n_times": 6, "seed": 0}
#: How the ``dycheck_scene`` fixture is generated: the fewest frames the generator writes that still hold a train/test
#: ``split_indices.json`` of 6 frames (2 phone frames, then 2 static cameras x 2 times; ids 0_0000k, 1_0000k, 2_0000k).
DYCHECK_SCENE_PARAMS = {"width": 32, "height": 24, "n_times": 2, "val_every": 1, "seed": 0}
#: How the ``eyeful_scene`` fixture is generated (5 rig spots x 3 cameras = 15 images per resolution).
EYEFUL_SCENE_PARAMS = {
    "n_positions": 5,
    "n_cameras": 3,
    "fisheye": True,
    "resolutions": {"images-jpeg-1k": (24, 36), "images-jpeg-2k": (48, 72)},
    "test_every": 4,
}


@pytest.fixture(scope="session")
def llff_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static forward-facing capture in the LLFF layout (48x32, 12 images, images_2/, sparse/0). Read-only."""
    return make_llff_scene.make_llff_scene(tmp_path_factory.mktemp("llff") / "scene", **LLFF_SCENE_PARAMS)


@pytest.fixture
def llff_scene_copy(llff_scene: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``llff_scene``."""
    return Path(shutil.copytree(llff_scene, tmp_path / "llff"))


@pytest.fixture(scope="session")
def d2rf_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A moving-spheres stereo capture in the D2RF layout (64x32, 6 time steps x left/right). Read-only."""
    return make_d2rf_scene.make_d2rf_scene(tmp_path_factory.mktemp("d2rf") / "scene", **D2RF_SCENE_PARAMS)


@pytest.fixture
def d2rf_scene_copy(d2rf_scene: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``d2rf_scene``."""
    return Path(shutil.copytree(d2rf_scene, tmp_path / "d2rf"))


@pytest.fixture(scope="session")
def eyeful_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fisheye rig capture in the EyefulTower layout (capture folder; 1k = 24x36 and 2k = 48x72). Read-only."""
    return make_eyeful_scene.make_eyeful_scene(tmp_path_factory.mktemp("eyeful") / "scene", **EYEFUL_SCENE_PARAMS)


@pytest.fixture(scope="session")
def dycheck_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DyCheck iPhone sequence (32x24 at 1x, 16x12 at 2x; 2 phone frames train, 4 static-camera frames val;
    depth for the phone frames, covisible masks for the val frames). Read-only."""
    return make_dycheck_scene.make_dycheck_scene(tmp_path_factory.mktemp("dycheck") / "seq", **DYCHECK_SCENE_PARAMS)


@pytest.fixture
def eyeful_scene_copy(eyeful_scene: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``eyeful_scene``."""
    return Path(shutil.copytree(eyeful_scene, tmp_path / "eyeful"))


# ----------------------------------------------------------------------------------------------------------------------
# One `ns-train dynsplat-4dgs ... <parser> --data X` per parser, all in one subprocess (one nerfstudio import)
# ----------------------------------------------------------------------------------------------------------------------

#: Runs nerfstudio's own ns-train CLI parsing (tyro over AnnotatedBaseConfigUnion, entry points included) and
#: ``nerfstudio.scripts.train.main`` for each ``name=args`` JSON entry; records each run's outcome in status.json.
#: nerfstudio's event writers are module globals, so they are closed and cleared between runs (else a later run's
#: scalars land in an earlier run's tensorboard file).
TRAIN_DRIVER = r"""
import json, sys, traceback
import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from nerfstudio.scripts.train import main
from nerfstudio.utils import writer
runs, status_path = json.loads(sys.argv[1]), sys.argv[2]
status = {}
for name, args in runs.items():
    try:
        main(tyro.cli(AnnotatedBaseConfigUnion, args=args))
        status[name] = "ok"
    except BaseException:  # noqa: B036 - report every failure (tyro exits with SystemExit on bad flags)
        status[name] = traceback.format_exc()
    for event_writer in writer.EVENT_WRITERS:
        if hasattr(event_writer, "tb_writer"):
            event_writer.tb_writer.close()
    writer.EVENT_WRITERS.clear()
    writer.EVENT_STORAGE.clear()
    writer.GLOBAL_BUFFER.clear()
    print(f"--- {name}: {'ok' if status[name] == 'ok' else 'FAILED'}", flush=True)
json.dump(status, open(status_path, "w"))
"""


def ns_train_args(method_args: list[str], out: Path, name: str, steps: int = 5) -> list[str]:
    """ns-train arguments for a few CPU steps of dynsplat-4dgs with a test-split evaluation on the last step."""
    return [
        "dynsplat-4dgs", "--output-dir", str(out), "--experiment-name", "tiny", "--timestamp", name,
        "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", str(steps),
        "--steps-per-save", "1000", "--steps-per-eval-image", str(steps - 1),
        "--steps-per-eval-all-images", str(steps - 1), "--pipeline.model.sh-degree", "1",
        "--pipeline.model.motion.static-warmup-steps", "2", "--pipeline.model.motion.resolution", "8", "8", "8", "6",
        *method_args,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def trained_parsers(tmp_path_factory, llff_scene, d2rf_scene, eyeful_scene) -> dict:
    """Train dynsplat-4dgs for 5 CPU steps on each generated scene via dynsplat-llff / -d2rf / -eyeful.

    Returns:
        ``{"llff" | "d2rf" | "eyeful": {"status": "ok" or a traceback, "run_dir": Path}, "log": str}``.
    """
    import json
    import subprocess
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="nerfstudio.dataparser_configs")}
    if "dynsplat-dnerf" not in names:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    out = tmp_path_factory.mktemp("train")
    scenes = {"llff": llff_scene, "d2rf": d2rf_scene, "eyeful": eyeful_scene}
    runs = {name: ns_train_args([f"dynsplat-{name}", "--data", str(data)], out, name) for name, data in scenes.items()}
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    status_path = out / "status.json"
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN_DRIVER, json.dumps(runs), str(status_path)],
        cwd=out, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout[-4000:] + proc.stderr[-6000:]
    status = json.loads(status_path.read_text()) if status_path.is_file() else {}
    result: dict = {"log": log}
    for name in scenes:
        run_dir = out / "tiny" / "dynsplat-4dgs" / name
        result[name] = {
            "status": status.get(name, f"driver exited with {proc.returncode}:\n{log}"),
            "run_dir": run_dir,
            "registered": f"dynsplat-{name}" in names,
            "scalars": _last_scalars(run_dir),
        }
    return result


def _last_scalars(run_dir: Path) -> dict[str, float]:
    """Last value of every scalar in a run's tensorboard event files (``{}`` when there are none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, float] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out[tag] = float(acc.Scalars(tag)[-1].value)
    return out
