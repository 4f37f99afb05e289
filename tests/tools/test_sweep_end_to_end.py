"""dynsplat-sweep end to end on a tiny generated D-NeRF scene: real ns-train + ns-eval per cell, a failed cell
reported while the rest runs, a killed sweep resumed without re-running its finished cells, tables and pictures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dynsplat_ns.tools import sweep

pytestmark = pytest.mark.slow

FAST = ["--machine.device-type", "cpu", "--steps-per-eval-all-images", 100000, "--steps-per-eval-image", 100000,
        "--steps-per-save", 100000, "--pipeline.model.sh-degree", 0]  # fmt: skip


def _spec(scene: Path, path: Path) -> Path:
    spec = {
        "name": "tiny",
        "args": FAST,
        "methods": {
            "broken": {"method": "dynsplat-som", "args": ["--pipeline.model.no-such-flag", 1]},
            "som": "dynsplat-som",
            "static": {"method": "dynsplat-4dgs", "args": ["--pipeline.model.disable-motion", True]},
        },
        "scenes": {"tiny": str(scene)},
        "grid": {"--pipeline.model.opacity-reg": [0.0, 0.01]},
        "steps": 40,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _alive_under(folder: Path) -> list[int]:
    """PIDs of processes whose command line names ``folder``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_killed_sweep_resumes_and_reports_failed_cells(dnerf_scene, tmp_path, capsys):
    spec = _spec(dnerf_scene, tmp_path / "spec.yaml")
    out = tmp_path / "out"
    first = out / "cells" / "tiny__som__opacity-reg=0.0__40" / "result.json"
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dynsplat_ns.tools.sweep", str(spec), "--output-dir", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[0].decode()[-3000:] if proc.poll() is not None else "no result in 300 s"
    proc.send_signal(signal.SIGKILL)  # killed mid-sweep (it may have started the next cell)
    proc.wait()
    time.sleep(1.0)
    if sys.platform.startswith("linux"):
        assert not _alive_under(out), "ns-train outlived the killed sweep"
    finished_at = first.stat().st_mtime_ns
    broken = json.loads((out / "cells" / "tiny__broken__opacity-reg=0.0__40" / "result.json").read_text())
    assert broken["status"] == "failed" and "no-such-flag" in broken["error"]

    assert sweep.main([str(spec), "--output-dir", str(out), "--skip-failed"]) == 0
    printed = capsys.readouterr().out
    assert "6 cells (3 finished, 3 to run)" in printed and "FAILED" not in printed  # failed ones kept, not re-run
    assert first.stat().st_mtime_ns == finished_at  # the finished cell was not run again
    rows = {(r["method"], r["variant"]): r for r in yaml.safe_load(json.dumps(_csv(out / "results.csv")))}
    assert len(rows) == 6
    for method in ("som", "static"):
        for variant in ("opacity-reg=0.0", "opacity-reg=0.01"):
            row = rows[(method, variant)]
            assert row["status"] == "ok" and float(row["psnr"]) > 14.0, row
            assert int(row["gaussian_count"]) > 100 and float(row["peak_rss_mb"]) > 100 and float(row["train_s"]) > 0
    assert rows[("broken", "opacity-reg=0.01")]["status"] == "failed"
    evaluation = json.loads((out / "cells" / "tiny__static__opacity-reg=0.01__40" / "eval.json").read_text())
    assert abs(evaluation["results"]["psnr"] - float(rows[("static", "opacity-reg=0.01")]["psnr"])) < 1e-6
    markdown = (out / "results.md").read_text()
    assert "| scene | broken | som | static |" in markdown and "no-such-flag" in markdown
    assert (out / "psnr.png").stat().st_size > 1000 and (out / "strips" / "tiny.png").stat().st_size > 1000


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))
