"""``dynsplat-compare``: several runs' ``ns-eval`` results side by side (CSV, markdown table, PNG plot).

Each argument is a run folder (its ns-eval JSON is found inside: ``eval*.json`` or any JSON with ``results``) or an
ns-eval JSON file (its run is found from the checkpoint it names). Steps come from the checkpoint, training time from
the run's tensorboard events (``Train Total (time)``, else the sum of ``Train Iter (time)``), else from file times.

Example::

    ns-eval --load-config RUN_A/config.yml --output-path RUN_A/eval.json
    dynsplat-compare RUN_A RUN_B other/eval.json --output-dir comparison/
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from dynsplat_ns.tools.runs import ToolError, checkpoint_step, run_tool

#: Columns of the table, in order (metrics that no run has are left out).
COLUMNS = (
    "run",
    "method",
    "experiment",
    "step",
    "train_seconds",
    "psnr",
    "ssim",
    "lpips",
    "masked_psnr",
    "masked_ssim",
    "gaussian_count",
    "fps",
    "num_rays_per_sec",
)
INFO_COLUMNS = ("run", "method", "experiment", "step", "train_seconds")


def find_eval_json(run_dir: Path) -> Path | None:
    """The newest ns-eval JSON in ``run_dir`` (``eval*.json`` first, then any JSON with ``results``)."""
    candidates = sorted(run_dir.glob("eval*.json")) + sorted(p for p in run_dir.glob("*.json") if p.name[:4] != "eval")
    found = [p for p in candidates if _is_eval_json(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _is_eval_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("results"), dict)


def train_seconds(run_dir: Path | None) -> float | None:
    """Training wall time of a run from its tensorboard events (or config.yml → last checkpoint file times)."""
    if run_dir is None or not run_dir.is_dir():
        return None
    if list(run_dir.glob("events.out.tfevents.*")):
        try:
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

            acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
            acc.Reload()
            tags = acc.Tags().get("scalars", [])
            if "Train Total (time)" in tags:
                return float(sum(e.value for e in acc.Scalars("Train Total (time)")))
            if "Train Iter (time)" in tags:
                return float(sum(e.value for e in acc.Scalars("Train Iter (time)")))
        except Exception:  # a broken or foreign events file: fall back to file times
            pass
    config, ckpts = run_dir / "config.yml", sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    if config.is_file() and ckpts:
        return max(0.0, ckpts[-1].stat().st_mtime - config.stat().st_mtime)
    return None


def load_entry(arg: Path) -> dict:
    """One table row from a run folder or an ns-eval JSON.

    Raises:
        ToolError: Unknown path, a run folder without eval JSON, or a JSON that is not ns-eval output.
    """
    arg = Path(arg).expanduser()
    if not arg.exists():
        raise ToolError(f"{arg}: no such run folder or eval JSON")
    if arg.is_dir():
        path = find_eval_json(arg)
        if path is None:
            raise ToolError(
                f"{arg}: no ns-eval JSON in this run folder; run "
                f"`ns-eval --load-config {arg / 'config.yml'} --output-path {arg / 'eval.json'}` first"
            )
    else:
        path = arg
        if not _is_eval_json(path):
            raise ToolError(f"{path}: not an ns-eval JSON (it needs a 'results' object)")
    data = json.loads(path.read_text())
    ckpt = data.get("checkpoint")
    run_dir = arg if arg.is_dir() else (Path(ckpt).parent.parent if ckpt else None)
    row = {
        "run": (run_dir.name if run_dir is not None else path.stem),
        "method": data.get("method_name"),
        "experiment": data.get("experiment_name"),
        "step": checkpoint_step(ckpt) if ckpt else None,
        "train_seconds": train_seconds(run_dir),
        "eval_json": str(path),
    }
    for key, value in data["results"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = value
        elif value is None:
            row.setdefault(key, None)
    return row


def columns_for(rows: list[dict]) -> list[str]:
    """Info columns plus the metric columns that at least one row has a value for."""
    metrics = [c for c in COLUMNS if c not in INFO_COLUMNS and any(r.get(c) is not None for r in rows)]
    return list(INFO_COLUMNS) + metrics


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], metrics: list[str], x: str, path: Path) -> None:
    """One panel per metric: lines against ``x`` (step or train_seconds) for the runs of one method/experiment when
    their steps vary, otherwise a bar per run (a single step count is not a line)."""
    from dynsplat_ns.tools.figures import draw_metric, pyplot, steps_vary

    plt = pyplot()
    metrics = [m for m in metrics if any(isinstance(r.get(m), (int, float)) for r in rows)] or ["psnr"]
    lines = steps_vary(rows, ("method", "experiment"))
    keys = ("method", "experiment") if lines else ("run",)
    points = [{**r, "step": r.get(x)} for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        members = [r for r in points if isinstance(r.get(metric), (int, float))]
        series = list(dict.fromkeys(" · ".join(str(r.get(k)) for k in keys) for r in members))
        if members:
            draw_metric(ax, members, metric, series, keys, lines)
        if lines:
            ax.set_xlabel("training steps" if x == "step" else "training time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class Compare:
    """Aggregate several runs' ns-eval results into compare.csv, compare.md and compare.png."""

    runs: tyro.conf.Positional[tuple[Path, ...]]
    """Run folders (holding an ns-eval JSON) and/or ns-eval JSON files."""
    output_dir: Path = Path("comparison")
    """Folder for compare.csv, compare.md and compare.png."""
    metrics: tuple[str, ...] = ("psnr", "ssim", "lpips")
    """Metrics to plot (one panel each; those no run has are skipped)."""
    x: Literal["step", "train_seconds"] = "step"
    """X axis of the plot: training steps or training time in seconds."""

    def main(self) -> None:
        """Read every run, write the three files."""
        if not self.runs:
            raise ToolError("give at least one run folder or ns-eval JSON")
        rows = [load_entry(r) for r in self.runs]
        columns = columns_for(rows)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / "compare.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns + ["eval_json"], extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns + ["eval_json"]})
        table = markdown_table(rows, columns)
        (self.output_dir / "compare.md").write_text(table)
        plot(rows, list(self.metrics), self.x, self.output_dir / "compare.png")
        print(table)
        print(f"wrote {self.output_dir / 'compare.csv'}, compare.md, compare.png")


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``dynsplat-compare``)."""
    cmd = tyro.cli(Compare, args=argv, description=__doc__.split("\n\n")[0])
    return run_tool(cmd.main)


def entrypoint() -> None:
    """``dynsplat-compare`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
