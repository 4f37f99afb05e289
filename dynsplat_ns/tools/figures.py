"""Pictures of results shared by ``dynsplat-compare`` and ``dynsplat-sweep``.

* :func:`plot_metric`: one panel per scene; lines over training steps when a run's steps vary, bars per method
  otherwise (one step count drawn as a line would be a single point).
* :func:`render_strip`: ground truth | each method's render at the test views where the methods do worst.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def steps_vary(rows: list[dict], group_keys: tuple[str, ...]) -> bool:
    """Whether any group of rows (same values of ``group_keys``) holds more than one step count."""
    groups: dict[tuple, set] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in group_keys), set()).add(r.get("step"))
    return any(len(s) > 1 for s in groups.values())


def _label(row: dict, keys: tuple[str, ...]) -> str:
    return " · ".join(str(row.get(k)) for k in keys)


def draw_metric(ax, rows: list[dict], metric: str, series: list[str], series_keys: tuple[str, ...], lines: bool):
    """Draw ``metric`` of ``rows`` on ``ax``: a line over ``step`` per series, or a bar per series (its value at
    its largest step)."""
    import matplotlib

    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(series):
        pts = sorted((float(r.get("step") or 0), float(r[metric])) for r in rows if _label(r, series_keys) == name)
        if not pts:
            continue
        colour = colours[i % len(colours)]
        if lines:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, "o-", color=colour, label=name)
        else:
            value = pts[-1][1]
            ax.bar(i, value, color=colour, label=name)
            ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize=7)
    if lines:
        ax.set_xlabel("training steps")
        ax.legend(fontsize=7)
    else:
        ax.set_xticks(range(len(series)))
        ax.set_xticklabels(series, rotation=30, ha="right", fontsize=7)
        values = [float(r[metric]) for r in rows]
        low, high = min(values), max(values)
        pad = 0.15 * (high - low) + 0.05 * max(abs(high), 1e-6)
        ax.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="both" if lines else "y")


def plot_metric(
    rows: list[dict], metric: str, path: Path, series_keys: tuple[str, ...] = ("method",), panel_key: str | None = None
) -> Path | None:
    """Draw ``metric`` of ``rows`` to ``path``; returns it, or None when no row has the metric.

    Args:
        rows: Dicts with ``step``, ``metric`` and the keys named below.
        metric: The value drawn (e.g. ``psnr``).
        path: PNG to write.
        series_keys: Keys whose values name a series (a line, or a bar).
        panel_key: Key whose values get a panel each (e.g. ``scene``); one panel without it.
    """
    rows = [r for r in rows if isinstance(r.get(metric), (int, float))]
    if not rows:
        return None
    plt = pyplot()
    panels = list(dict.fromkeys(r.get(panel_key) for r in rows)) if panel_key else [None]
    series = list(dict.fromkeys(_label(r, series_keys) for r in rows))
    lines = steps_vary(rows, (*series_keys, *((panel_key,) if panel_key else ())))
    width = 4.8 if lines else max(3.5, 1.2 + 0.7 * len(series))
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        members = [r for r in rows if panel_key is None or r.get(panel_key) == panel]
        draw_metric(ax, members, metric, series, series_keys, lines)
        if panel is not None:
            ax.set_title(str(panel), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def split_render(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, render) halves of an ns-eval side-by-side image ``eval_img_XXXX.png`` (float in [0, 1])."""
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    width = image.shape[1] // 2
    return image[:, :width], image[:, width : 2 * width]


def image_psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float(np.mean((gt - pred) ** 2))
    return float(10.0 * np.log10(1.0 / max(mse, 1e-10)))


def worst_views(render_dirs: dict[str, Path], count: int) -> list[tuple[int, float]]:
    """Indices of the ``count`` test images with the lowest PSNR averaged over the methods (with that mean).

    Args:
        render_dirs: Method label → folder of ``eval_img_XXXX.png`` (the same eval images in the same order).
    """
    scores: dict[int, list[float]] = {}
    for folder in render_dirs.values():
        for path in sorted(Path(folder).glob("eval_img_*.png")):
            idx = int(path.stem.split("_")[-1])
            scores.setdefault(idx, []).append(image_psnr(*split_render(path)))
    means = sorted((float(np.mean(v)), idx) for idx, v in scores.items() if len(v) == len(render_dirs))
    return [(idx, value) for value, idx in means[:count]]


def render_strip(render_dirs: dict[str, Path], path: Path, count: int = 3, title: str = "") -> Path | None:
    """ground truth | each method's render, one row per worst test view (see :func:`worst_views`).

    Returns:
        ``path``, or None when there are no renders to draw.
    """
    rows = worst_views(render_dirs, count)
    if not rows:
        return None
    plt = pyplot()
    labels = ["ground truth", *render_dirs]
    fig, axes = plt.subplots(len(rows), len(labels), figsize=(2.2 * len(labels), 2.3 * len(rows)), squeeze=False)
    for r, (idx, mean) in enumerate(rows):
        gt = None
        for c, label in enumerate(labels):
            ax = axes[r][c]
            ax.axis("off")
            if c == 0:
                gt, _ = split_render(Path(render_dirs[labels[1]]) / f"eval_img_{idx:04d}.png")
                ax.imshow(gt)
                ax.set_title(f"view {idx} (mean {mean:.1f} dB)", fontsize=7)
                continue
            _, pred = split_render(Path(render_dirs[label]) / f"eval_img_{idx:04d}.png")
            ax.imshow(pred)
            ax.set_title(f"{label}: {image_psnr(gt, pred):.1f} dB", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
