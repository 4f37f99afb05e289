"""Running one sweep cell: a real ``ns-train`` then ``ns-eval`` in subprocesses, measured, with a result file.

A cell is finished when its ``result.json`` exists (written last, atomically); a cell folder without one is what a
killed sweep left and is trained again from the start. Per cell folder::

    command.txt      the two commands, shell-quoted
    train.log        ns-train's output;  eval.log: ns-eval's
    ns/              the ns-train run (config.yml, checkpoints, tensorboard events)
    eval.json        ns-eval's output (with per_time)
    renders/         ns-eval's side-by-side images (ground truth | render), eval_img_XXXX.png
    result.json      status (ok / failed), the metrics, seconds, Gaussian count, peak memory
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dynsplat_ns.tools.runs import ToolError
from dynsplat_ns.tools.sweep_spec import Cell

#: Metrics copied from ns-eval's results into the cell result (those present).
METRICS = (
    "psnr", "ssim", "lpips", "masked_psnr", "masked_ssim", "covisible_psnr", "covisible_ssim", "gaussian_count",
)  # fmt: skip


def ns_tool(name: str) -> str:
    """Path of an ``ns-*`` console script: next to this Python first, then on PATH.

    Raises:
        ToolError: Not installed.
    """
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} not found (install nerfstudio in this environment: make install)")
    return found


def train_command(cell: Cell, run_root: Path) -> list[str]:
    """The ``ns-train`` command of ``cell``, writing its run to ``run_root/<scene>/<method>/run``."""
    args = list(cell.train_args)
    if "--vis" not in args:
        args += ["--vis", "tensorboard"]  # the viewer would wait for a browser
    return [
        ns_tool("ns-train"), cell.ns_method, *args,
        "--max-num-iterations", str(cell.steps),
        "--output-dir", str(run_root), "--experiment-name", cell.scene, "--timestamp", "run",
        cell.dataparser, "--data", str(cell.data), *cell.dataparser_args,
    ]  # fmt: skip


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the sweep dies (a killed sweep leaves no training behind)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_measured(cmd: list[str], log: Path, timeout_s: float | None) -> tuple[int, float, float]:
    """Run ``cmd`` with its output in ``log``.

    Returns:
        (exit status, wall seconds, peak resident memory of the process in MB); exit status 124 when it ran past
        ``timeout_s`` and was killed.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TORCHDYNAMO_DISABLE", "1")  # nerfstudio's torch_compile needs a compiler on CPU
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )  # fmt: skip
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if timeout_s is not None and time.perf_counter() - start > timeout_s and not timed_out:
                    proc.kill()
                    timed_out = True
                time.sleep(0.2)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return (124 if timed_out else proc.returncode), seconds, usage.ru_maxrss / 1024.0


def last_error_line(log: Path) -> str:
    """The line of ``log`` that says what went wrong (``dynsplat error:``, tyro's unrecognised options, a Python
    exception line, else the last line), without the box drawing of tyro's messages."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    lines = [ln.strip(" │╭╰╮╯─┃━\t") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    for marker in ("dynsplat error:", "Unrecognized options", "Error:", "error:"):
        hits = [ln for ln in lines if marker in ln]
        if hits:
            return hits[-1][:300]
    return lines[-1][:300] if lines else "no output"


def read_result(cell_dir: Path) -> dict | None:
    """The cell's ``result.json``, or None when the cell has not finished."""
    path = cell_dir / "result.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("status") in ("ok", "failed") else None


def write_result(cell_dir: Path, result: dict) -> None:
    """Write ``result.json`` atomically (a kill leaves either no result or the whole one)."""
    tmp = cell_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(cell_dir / "result.json")


def run_cell(cell: Cell, cell_dir: Path, timeout_s: float | None = None) -> dict:
    """Train and evaluate ``cell`` into ``cell_dir`` (anything a killed run left there is replaced).

    Returns:
        The result written to ``cell_dir/result.json``: cell fields, ``status`` and, when ok, the metrics.
    """
    for leftover in ("ns", "renders", "eval.json", "result.json"):
        path = cell_dir / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    cell_dir.mkdir(parents=True, exist_ok=True)
    run_root = cell_dir / "ns"
    config = run_root / cell.scene / cell.ns_method / "run" / "config.yml"
    train = train_command(cell, run_root)
    evaluate = [
        ns_tool("ns-eval"), "--load-config", str(config), "--output-path", str(cell_dir / "eval.json"),
        "--render-output-path", str(cell_dir / "renders"),
    ]  # fmt: skip
    (cell_dir / "command.txt").write_text(shlex.join(train) + "\n" + shlex.join(evaluate) + "\n")
    result: dict = {
        "scene": cell.scene, "method": cell.method, "variant": cell.variant, "steps": cell.steps,
        "ns_method": cell.ns_method, "data": str(cell.data),
    }  # fmt: skip
    code, seconds, rss = run_measured(train, cell_dir / "train.log", timeout_s)
    result.update(train_s=round(seconds, 1), peak_rss_mb=round(rss, 1))
    if code != 0:
        why = f"timed out after {timeout_s:.0f} s" if code == 124 else last_error_line(cell_dir / "train.log")
        result.update(status="failed", stage="train", error=why)
        write_result(cell_dir, result)
        return result
    code, seconds, _ = run_measured(evaluate, cell_dir / "eval.log", timeout_s)
    result["eval_s"] = round(seconds, 1)
    if code != 0:
        result.update(status="failed", stage="eval", error=last_error_line(cell_dir / "eval.log"))
        write_result(cell_dir, result)
        return result
    evaluation = json.loads((cell_dir / "eval.json").read_text()).get("results", {})
    for key in METRICS:
        if isinstance(evaluation.get(key), (int, float)):
            result[key] = evaluation[key]
    if isinstance(evaluation.get("per_time"), dict):
        result["per_time_psnr"] = {t: v.get("psnr") for t, v in evaluation["per_time"].items()}
    result["status"] = "ok"
    write_result(cell_dir, result)
    return result
