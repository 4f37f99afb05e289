"""Tables and pictures of a sweep's cell results: results.csv, results.md, psnr.png, strips/<scene>.png."""

from __future__ import annotations

import csv
from pathlib import Path

from dynsplat_ns.tools.figures import plot_metric, render_strip

#: Columns of results.csv / results.md, in order (metric columns no cell has are left out).
COLUMNS = (
    "scene", "method", "variant", "steps", "status", "psnr", "ssim", "lpips", "masked_psnr", "masked_ssim",
    "covisible_psnr", "covisible_ssim", "train_s", "eval_s", "gaussian_count", "peak_rss_mb", "error",
)  # fmt: skip
ALWAYS = ("scene", "method", "variant", "steps", "status")


def columns_for(rows: list[dict]) -> list[str]:
    """The always-shown columns and those at least one row has a value for."""
    return [c for c in COLUMNS if c in ALWAYS or any(r.get(c) not in (None, "") for r in rows)]


def fmt(value) -> str:
    """A table cell: floats to 2 decimals (SSIM/LPIPS to 3), None as —."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1.0 else f"{value:.2f}"
    return str(value)


def results_table(rows: list[dict]) -> str:
    """Markdown table of every cell."""
    columns = columns_for(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def psnr_pivot(rows: list[dict], reference_label: str | None, reference: dict[str, float]) -> str:
    """Per (variant, steps): scenes × methods PSNR (with a mean row and the reference column when given)."""
    out = []
    for variant, steps in dict.fromkeys((r["variant"], r["steps"]) for r in rows):
        members = [r for r in rows if r["variant"] == variant and r["steps"] == steps]
        methods = list(dict.fromkeys(r["method"] for r in members))
        scenes = list(dict.fromkeys(r["scene"] for r in members))
        ref = [reference_label] if reference_label and reference else []
        header = ["scene", *methods, *ref]
        lines = [f"PSNR, {variant}, {steps} steps", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]  # fmt: skip
        cells = {(r["scene"], r["method"]): r for r in members}
        for scene in scenes:
            values = []
            for m in methods:
                r = cells.get((scene, m))
                values.append(fmt(r.get("psnr")) if r and r.get("status") == "ok" else (r or {}).get("status", "—"))
            if ref:
                values.append(fmt(reference.get(scene)))
            lines.append("| " + " | ".join([scene, *values]) + " |")
        means = []
        for m in methods:
            vals = [cells[(s, m)].get("psnr") for s in scenes if (s, m) in cells]
            ok = all(isinstance(v, (int, float)) for v in vals) and vals
            means.append(fmt(sum(vals) / len(vals)) if ok else "—")
        if len(scenes) > 1:
            ref_vals = [reference.get(s) for s in scenes]
            ref_mean = [fmt(sum(ref_vals) / len(ref_vals)) if ref and all(v is not None for v in ref_vals) else "—"]
            lines.append("| " + " | ".join(["**mean**", *means, *(ref_mean if ref else [])]) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def write_tables(rows: list[dict], out_dir: Path, reference_label: str | None, reference: dict[str, float]) -> str:
    """Write results.csv and results.md; returns the markdown."""
    columns = columns_for(rows)
    with (out_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    markdown = psnr_pivot([r for r in rows if r.get("status")], reference_label, reference)
    markdown += "\nEvery cell\n\n" + results_table(rows)
    (out_dir / "results.md").write_text(markdown)
    return markdown


def write_pictures(rows: list[dict], cell_dirs: dict[str, Path], out_dir: Path, worst: int = 3) -> list[Path]:
    """psnr.png (lines over steps when steps vary, bars otherwise; a panel per scene) and per scene a strip of
    ground truth | each method at its worst test views (the largest step budget of each method and variant)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    written = []
    plot_rows = [{**r, "step": r["steps"], "series": _series(r, rows)} for r in ok]
    path = plot_metric(plot_rows, "psnr", out_dir / "psnr.png", series_keys=("series",), panel_key="scene")
    if path is not None:
        written.append(path)
    strips = out_dir / "strips"
    for scene in dict.fromkeys(r["scene"] for r in ok):
        best: dict[str, dict] = {}
        for r in ok:
            label = _series(r, rows)
            if r["scene"] == scene and (label not in best or r["steps"] > best[label]["steps"]):
                best[label] = r
        dirs = {label: cell_dirs[r["key"]] / "renders" for label, r in best.items()}
        dirs = {label: d for label, d in dirs.items() if d.is_dir()}
        if not dirs:
            continue
        strips.mkdir(exist_ok=True)
        path = render_strip(dirs, strips / f"{scene}.png", count=worst, title=scene)
        if path is not None:
            written.append(path)
    return written


def _series(row: dict, rows: list[dict]) -> str:
    """Method label, with the variant when the sweep has several."""
    several = len({r["variant"] for r in rows}) > 1
    return f"{row['method']} · {row['variant']}" if several else row["method"]
