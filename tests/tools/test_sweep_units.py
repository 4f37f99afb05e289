"""dynsplat-sweep without training: spec parsing (grids, profiles, val split, errors), tables and picture choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.tools import sweep
from dynsplat_ns.tools.figures import render_strip, steps_vary, worst_views
from dynsplat_ns.tools.runs import ToolError
from dynsplat_ns.tools.sweep_report import psnr_pivot, write_tables
from dynsplat_ns.tools.sweep_spec import parse_spec

SPEC = {
    "args": ["--machine.device-type", "cpu"],
    "methods": {
        "som": {"method": "dynsplat-som", "grid": {"--pipeline.model.motion.num-bases": [5, 10]}},
        "static": {"method": "dynsplat-4dgs", "args": ["--pipeline.model.disable-motion", True]},
    },
    "scenes": {"a": "scene_a", "b": {"data": "/abs/b", "dataparser": "dynsplat-llff", "args": ["--x", 1]}},
    "grid": {"--pipeline.model.sh-degree": [0, 1]},
    "steps": [10, 20],
    "profiles": {"fast": {"steps": 5, "split": "val", "scene_args": ["--downscale-factor", 4]}},
}


def test_cells_are_the_full_product_with_labelled_grid_points(tmp_path):
    spec = parse_spec(SPEC, tmp_path / "s.yaml")
    # som: 2 global × 2 own grid points; static: 2 global; × 2 scenes × 2 step budgets
    assert len(spec.cells) == (4 + 2) * 2 * 2
    keys = {c.key for c in spec.cells}
    assert "a__som__sh-degree=0,num-bases=5__10" in keys and "b__static__sh-degree=1__20" in keys
    cell = next(c for c in spec.cells if c.key == "a__som__sh-degree=1,num-bases=10__20")
    assert cell.train_args == ("--machine.device-type", "cpu", "--pipeline.model.sh-degree", "1",
                               "--pipeline.model.motion.num-bases", "10")  # fmt: skip
    assert cell.data == (tmp_path / "scene_a").resolve() and cell.dataparser == "dynsplat-dnerf"
    static = next(c for c in spec.cells if c.method == "static" and c.scene == "b")
    assert static.train_args[2:4] == ("--pipeline.model.disable-motion", "True")
    assert static.dataparser == "dynsplat-llff" and static.dataparser_args == ("--x", "1")
    assert spec.split == "test" and all("--eval-split" not in c.dataparser_args for c in spec.cells)


def test_profile_overrides_and_val_split(tmp_path):
    spec = parse_spec(SPEC, tmp_path / "s.yaml", profile="fast", data_root=Path("/data"))
    assert spec.name == "s-fast" and spec.split == "val"
    assert {c.steps for c in spec.cells} == {5}
    a = next(c for c in spec.cells if c.scene == "a")
    assert a.data == Path("/data/scene_a")
    assert a.dataparser_args == ("--downscale-factor", "4", "--eval-split", "val")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stepz": 3}, "unknown key"),
        ({"steps": [0]}, "steps"),
        ({"split": "train"}, "split"),
        ({"methods": {}}, "methods"),
        ({"scenes": {"a": 3}}, "scene 'a'"),
        ({"grid": {"sh-degree": [1]}}, "not a flag"),
        ({"args": "--x 1"}, "args must be a list"),
    ],
)
def test_bad_specs_are_one_clear_error(tmp_path, change, message):
    with pytest.raises(ToolError, match=message):
        parse_spec({**SPEC, **change}, tmp_path / "s.yaml")
    with pytest.raises(ToolError, match="no profile 'slow'"):
        parse_spec(SPEC, tmp_path / "s.yaml", profile="slow")


def test_cli_errors_and_dry_run(tmp_path, capsys):
    assert sweep.main([str(tmp_path / "missing.yaml")]) == 2
    assert "no such sweep spec" in capsys.readouterr().err
    (tmp_path / "s.json").write_text(json.dumps(SPEC))
    assert sweep.main([str(tmp_path / "s.json"), "--only", "a__static", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("ns-train dynsplat-4dgs") == 4 and "--max-num-iterations 20" in out and "som" not in out
    assert sweep.main([str(tmp_path / "s.json")]) == 2  # the scene folders do not exist
    assert "no such folder" in capsys.readouterr().err


def test_tables_pivot_with_reference_and_failed_cells(tmp_path):
    rows = [
        {"scene": "a", "method": "som", "variant": "default", "steps": 10, "status": "ok", "psnr": 30.0, "ssim": 0.9},
        {"scene": "b", "method": "som", "variant": "default", "steps": 10, "status": "ok", "psnr": 20.0, "ssim": 0.8},
        {"scene": "a", "method": "x", "variant": "default", "steps": 10, "status": "failed", "error": "bad flag"},
        {"scene": "b", "method": "x", "variant": "default", "steps": 10, "status": "pending"},
    ]
    pivot = psnr_pivot(rows, "paper", {"a": 31.0, "b": 21.0})
    assert "| scene | som | x | paper |" in pivot
    assert "| a | 30.00 | failed | 31.00 |" in pivot and "| **mean** | 25.00 | — | 26.00 |" in pivot
    markdown = write_tables(rows, tmp_path, None, {})
    assert "bad flag" in markdown and (tmp_path / "results.csv").read_text().splitlines()[0].startswith("scene,")


def test_lines_only_when_steps_vary():
    rows = [{"method": "a", "step": 10}, {"method": "b", "step": 10}]
    assert not steps_vary(rows, ("method",))
    assert steps_vary([*rows, {"method": "a", "step": 20}], ("method",))


def _side_by_side(path: Path, gt: np.ndarray, pred: np.ndarray) -> None:
    Image.fromarray((np.concatenate([gt, pred], axis=1) * 255).astype(np.uint8)).save(path)


def test_strip_picks_the_views_the_methods_get_worst(tmp_path):
    rng = np.random.default_rng(0)
    gt = [rng.random((16, 16, 3)) for _ in range(4)]
    noise = {"m1": [0.01, 0.3, 0.02, 0.2], "m2": [0.02, 0.25, 0.01, 0.3]}
    dirs = {}
    for name, levels in noise.items():
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        for i, level in enumerate(levels):
            pred = np.clip(gt[i] + level * rng.standard_normal(gt[i].shape), 0, 1)
            _side_by_side(dirs[name] / f"eval_img_{i:04d}.png", gt[i], pred)
    assert [idx for idx, _ in worst_views(dirs, 2)] == [1, 3]
    path = render_strip(dirs, tmp_path / "strip.png", count=2)
    assert path is not None and Image.open(path).size[0] > 300


def test_cell_timeout_stops_the_run_and_reaches_each_cell(tmp_path, monkeypatch):
    import time

    from dynsplat_ns.tools import sweep_run

    start = time.perf_counter()
    code, seconds, rss = sweep_run.run_measured(["sleep", "30"], tmp_path / "log", timeout_s=0.5)
    assert code == 124 and seconds < 10 and time.perf_counter() - start < 10 and rss >= 0

    (tmp_path / "scene_a").mkdir()
    spec = {**SPEC, "scenes": {"a": "scene_a"}, "methods": {"static": "dynsplat-4dgs"}, "grid": {}, "steps": 5}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    seen = []

    def fake_run_cell(cell, cell_dir, timeout):
        seen.append(timeout)
        cell_dir.mkdir(parents=True)
        result = {"scene": cell.scene, "method": cell.method, "variant": cell.variant, "steps": cell.steps,
                  "status": "failed", "stage": "train", "error": "timed out", "train_s": 0.0, "peak_rss_mb": 0.0}
        (cell_dir / "result.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(sweep, "run_cell", fake_run_cell)
    args = [str(tmp_path / "s.json"), "--output-dir", str(tmp_path / "out"), "--cell-timeout", "2"]
    assert sweep.main(args) == 0
    assert seen == [120.0] and "timed out" in (tmp_path / "out" / "results.md").read_text()
