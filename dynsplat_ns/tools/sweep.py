"""``dynsplat-sweep``: methods × scenes × flag grids × step budgets, each a real ``ns-train`` + ``ns-eval``.

Reads a spec (YAML/JSON, see :mod:`dynsplat_ns.tools.sweep_spec`), runs every cell that has not finished yet one
after the other (a finished cell is never re-run, so a killed or interrupted sweep resumes where it stopped; a
failed cell is reported, and tried again on the next call unless ``--skip-failed``), and after each cell rewrites
``results.csv`` and ``results.md`` (PSNR per scene × method, every cell's PSNR, SSIM, masked/covisible metrics where
the data has them, train seconds, Gaussian count, peak memory). At the end: ``psnr.png`` (bars per method and scene;
lines over steps when the step budget varies) and ``strips/<scene>.png`` (ground truth | each method at the scene's
worst test views).

Example::

    dynsplat-sweep benchmarks/sweeps/dnerf.yaml --profile quick            # → sweeps/dnerf-quick/
    dynsplat-sweep my_spec.yaml --output-dir sweeps/mine --only som --dry-run
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

from dynsplat_ns.tools.runs import ToolError, run_tool
from dynsplat_ns.tools.sweep_report import write_pictures, write_tables
from dynsplat_ns.tools.sweep_run import read_result, run_cell, train_command
from dynsplat_ns.tools.sweep_spec import Cell, SweepSpec, load_spec_file, parse_spec


@dataclass
class Sweep:
    """Run a sweep spec's cells (resumable) and write results.csv, results.md, psnr.png and strips/."""

    spec: tyro.conf.Positional[Path]
    """The sweep spec (YAML or JSON): methods, scenes, grid, steps (see the README)."""
    output_dir: Path | None = None
    """Folder of the sweep (cells/, results.*). Default: sweeps/<spec name>[-<profile>]."""
    profile: str | None = None
    """A profile of the spec (its values replace the top-level ones), e.g. quick."""
    data_root: Path | None = None
    """Folder the scenes' relative paths start from (replaces the spec's data_root)."""
    only: tuple[str, ...] = ()
    """Run only cells whose folder name (scene__method__variant__steps) contains one of these texts."""
    dry_run: bool = False
    """List the cells and their ns-train commands; run nothing."""
    skip_failed: bool = False
    """Do not try failed cells again (by default they are, e.g. after fixing a flag)."""
    cell_timeout: float | None = None
    """Minutes one ns-train (or ns-eval) may run before it is stopped and the cell reported failed."""
    worst_views: int = 3
    """Test views per scene in the render strips (those where the methods do worst)."""

    def main(self) -> None:
        """Run the sweep."""
        spec = parse_spec(load_spec_file(self.spec), Path(self.spec).resolve(), self.profile, self.data_root)
        out = self.output_dir if self.output_dir is not None else Path("sweeps") / spec.name
        cells = [c for c in spec.cells if not self.only or any(text in c.key for text in self.only)]
        if not cells:
            raise ToolError(f"{self.spec}: no cell matches --only {' '.join(self.only)}")
        if self.dry_run:
            for i, cell in enumerate(cells, 1):
                command = train_command(cell, out / "cells" / cell.key / "ns")
                print(f"[{i}/{len(cells)}] {cell.key}\n    {shlex.join(command)}")
            return
        for cell in cells:
            if not cell.data.is_dir():
                raise ToolError(f"{self.spec}: scene {cell.scene!r}: no such folder {cell.data}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(
            json.dumps({"spec": str(Path(self.spec).resolve()), "profile": self.profile, "split": spec.split}, indent=2)
        )
        self._run(spec, cells, out)

    def _run(self, spec: SweepSpec, cells: list[Cell], out: Path) -> None:
        timeout = None if self.cell_timeout is None else 60.0 * self.cell_timeout
        dirs = {c.key: out / "cells" / c.key for c in cells}
        todo = []
        for cell in cells:
            done = read_result(dirs[cell.key])
            if done is None or (done["status"] == "failed" and not self.skip_failed):
                todo.append(cell)
        print(f"dynsplat-sweep {spec.name}: {len(cells)} cells ({len(cells) - len(todo)} finished, {len(todo)} to run);"
              f" scores the {spec.split} split; output {out}", flush=True)  # fmt: skip
        started = time.perf_counter()
        for i, cell in enumerate(todo, 1):
            eta = ""
            if i > 1:
                per_cell = (time.perf_counter() - started) / (i - 1)
                eta = f", about {per_cell * (len(todo) - i + 1) / 60:.0f} min left"
            print(f"[{i}/{len(todo)}] {cell.scene} · {cell.method} · {cell.variant} · {cell.steps} steps{eta} ...",
                  flush=True)  # fmt: skip
            result = run_cell(cell, dirs[cell.key], timeout)
            if result["status"] == "ok":
                print(f"    psnr {result.get('psnr', float('nan')):.2f}  ssim {result.get('ssim', float('nan')):.3f}  "
                      f"{result['train_s']:.0f} s  {result.get('gaussian_count', '?')} Gaussians  "
                      f"{result['peak_rss_mb'] / 1024:.1f} GB", flush=True)  # fmt: skip
            else:
                print(f"    FAILED ({result['stage']}): {result['error']}  (log: {dirs[cell.key]})", flush=True)
            self._report(spec, cells, dirs, out, pictures=False)
        markdown = self._report(spec, cells, dirs, out, pictures=True)
        print(markdown)
        failed = [c.key for c in cells if (read_result(dirs[c.key]) or {}).get("status") == "failed"]
        print(
            f"wrote {out / 'results.csv'}, results.md, psnr.png, strips/"
            + (f"; {len(failed)} failed cell(s): {', '.join(failed)}" if failed else ""),
            flush=True,
        )

    def _report(self, spec: SweepSpec, cells: list[Cell], dirs: dict[str, Path], out: Path, pictures: bool) -> str:
        rows = []
        for cell in cells:
            result = read_result(dirs[cell.key]) or {
                "scene": cell.scene, "method": cell.method, "variant": cell.variant, "steps": cell.steps,
                "status": "pending",
            }  # fmt: skip
            rows.append({**result, "key": cell.key})
        markdown = write_tables(rows, out, spec.reference_label, spec.reference_psnr)
        if pictures:
            write_pictures(rows, dirs, out, self.worst_views)
        return markdown


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``dynsplat-sweep``)."""
    cmd = tyro.cli(Sweep, args=argv, description=__doc__.split("\n\n")[0])
    return run_tool(cmd.main)


def entrypoint() -> None:
    """``dynsplat-sweep`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
