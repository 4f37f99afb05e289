"""Runs written by earlier code (before the issue-28 redesign moved modules) still load in ns-eval, ns-render and
ns-viewer: their config.yml files name the old module paths (``dynsplat_ns.trainer``, ``dynsplat_ns.models.pipeline``,
...) and their checkpoints hold the old parameter names. ``tests/fixtures/legacy_runs/make.sh`` made them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import free_port, wait_until_listening

from dynsplat_ns.scenes.d2rf import make_d2rf_scene
from dynsplat_ns.scenes.dnerf import make_dnerf_scene

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).parent / "fixtures" / "legacy_runs"
ENV = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
#: experiment / method of each checked-in run (timestamp "legacy").
RUNS = {"dynsplat-4dgs": "m4dgs", "dynsplat-som": "msom", "dynsplat-marbles": "mmarbles", "dynsplat-deblur": "mdeblur"}


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Path:
    """A folder as make.sh left it: data/ (regenerated with the same settings) and runs/ (copied)."""
    root = tmp_path_factory.mktemp("legacy")
    make_dnerf_scene(root / "data" / "dnerf", size=32, n_train=12, n_val=4, n_test=4, seed=0, motion=True,
                     supersample=2)  # fmt: skip
    make_d2rf_scene(root / "data" / "d2rf", width=64, height=32, n_times=6, seed=0)
    shutil.copytree(FIXTURES, root / "runs", ignore=shutil.ignore_patterns("make.sh"))
    return root


def config_of(method: str) -> Path:
    return Path("runs") / RUNS[method] / method / "legacy" / "config.yml"


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.mark.parametrize("method", sorted(RUNS))
def test_an_earlier_run_evaluates_and_renders(legacy, method):
    config = config_of(method)
    assert "dynsplat_ns.models.pipeline.DynsplatPipelineConfig" in (legacy / config).read_text()  # an old path
    out = legacy / f"{method}.json"
    run([str(BIN / "ns-eval"), "--load-config", str(config), "--output-path", str(out)], legacy)
    results = json.loads(out.read_text())["results"]
    assert results["psnr"] > 8.0 and results["gaussian_count"] > 0, results

    path = legacy / f"{method}_path.json"
    run([str(BIN / "dynsplat-camera-path"), "orbit", "--load-config", str(config), "--output-path", str(path),
         "--frames", "2"], legacy)  # fmt: skip
    video = legacy / f"{method}.mp4"
    run([str(BIN / "ns-render"), "camera-path", "--load-config", str(config), "--camera-path-filename", str(path),
         "--output-path", str(video)], legacy)  # fmt: skip
    assert video.is_file() and video.stat().st_size > 500


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("method", sorted(RUNS))
def test_an_earlier_run_opens_in_ns_viewer(legacy, method, tmp_path):
    port = free_port()
    log_path = tmp_path / "ns-viewer.log"
    with log_path.open("w") as log:
        viewer = subprocess.Popen(
            [str(BIN / "ns-viewer"), "--load-config", str(config_of(method)), "--viewer.websocket-port", str(port),
             "--viewer.websocket-host", "127.0.0.1", "--viewer.max-num-display-images", "0"],
            cwd=legacy, env=ENV, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_listening(viewer, port, log_path, listening)
        finally:
            viewer.kill()
            viewer.wait(timeout=60)
