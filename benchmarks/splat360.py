"""Static base splat on a generated 360° ring capture and on a forward-facing capture of the same objects.

Trains ``ns-train dynsplat-4dgs --pipeline.model.disable-motion True`` (defaults otherwise, CPU, tensorboard) on

* ``ring``: ``dynsplat-make-scene ring360`` (EyefulTower layout, 30 views around a ball, a box and a pillar on a
  checkerboard floor under a white sky; 24 train / 6 test by ``splits.json``), read by ``dynsplat-eyeful``;
* ``forward``: the same objects from 20 forward-facing views (LLFF layout, every 8th a test view), ``dynsplat-llff``;

then runs ``ns-eval`` (test PSNR, as a user would) and renders the training views of the final checkpoint for the
train PSNR. Prints a markdown table: train / test PSNR, the gap, the Gaussian count at 0, 25, 50, 75 and 100 % of the
steps (from tensorboard) and the seconds ``ns-train`` took. No per-scene settings: both scenes get the same command.

Usage:
    python benchmarks/splat360.py [--steps 2000] [--ring-size 200 150] [--forward-size 256 144] [--scenes ring,forward]
    python benchmarks/splat360.py --steps 1000 --ring-size 100 75 --forward-size 128 72 --out /tmp/b360

``--extra`` appends ns-train arguments (e.g. ``--pipeline.model.sh-degree 0``) for investigations only; the rows it
prints are then not the defaults' and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARSERS = {"ring": "dynsplat-eyeful", "forward": "dynsplat-llff"}


def make_scene(kind: str, folder: Path, size: tuple[int, int]) -> Path:
    """Generate (or reuse) the scene ``kind`` at ``size`` under ``folder``."""
    from dynsplat_ns.scenes.ring360 import make_forward_scene, make_ring360_scene

    path = folder / f"{kind}_{size[0]}x{size[1]}"
    if (path / ".complete").is_file():
        return path
    if kind == "ring":
        make_ring360_scene(path, width=size[0], height=size[1], overwrite=True)
    else:
        make_forward_scene(path, width=size[0], height=size[1], overwrite=True)
    (path / ".complete").write_text("")
    return path


def tool(name: str) -> list[str]:
    """Command prefix of a nerfstudio console script next to this interpreter (else on PATH)."""
    local = Path(sys.executable).parent / name
    return [str(local)] if local.is_file() else [shutil.which(name) or name]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every tensorboard scalar of a run: tag → [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, []).extend((e.step, float(e.value)) for e in acc.Scalars(tag))
    return out


def split_psnr(config: Path) -> dict[str, float]:
    """Mean PSNR of the final checkpoint on the train and test splits (the model's own metric, as ns-eval)."""
    import torch
    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(config, test_mode="test")
    dm, model = pipeline.datamanager, pipeline.model
    out = {}
    with torch.no_grad():
        for split, dataset, cache in (("train", dm.train_dataset, dm.cached_train), ("test", dm.eval_dataset,
                                                                                     dm.cached_eval)):  # fmt: skip
            values = []
            for i in range(len(dataset)):
                outputs = model.get_outputs_for_camera(dataset.cameras[i : i + 1].to(model.device))
                metrics, _ = model.get_image_metrics_and_images(outputs, cache[i])
                values.append(metrics["psnr"])
            out[split] = sum(values) / len(values)
    return out


def run_scene(kind: str, scene: Path, steps: int, out: Path, extra: list[str]) -> dict:
    """ns-train + ns-eval + train-view PSNR of one scene; returns its row."""
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    name = f"{kind}-{steps}"
    cmd = tool("ns-train") + [
        "dynsplat-4dgs", "--pipeline.model.disable-motion", "True", "--machine.device-type", "cpu",
        "--vis", "tensorboard", "--max-num-iterations", str(steps), "--output-dir", str(out),
        "--experiment-name", "splat360", "--timestamp", name, *extra, PARSERS[kind], "--data", str(scene),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ns-train failed on {kind}:\n{proc.stderr[-3000:]}")
    run_dir = out / "splat360" / "dynsplat-4dgs" / name
    eval_json = run_dir / "eval.json"
    proc = subprocess.run(tool("ns-eval") + ["--load-config", str(run_dir / "config.yml"), "--output-path",
                                            str(eval_json)], capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ns-eval failed on {kind}:\n{proc.stderr[-3000:]}")
    test_psnr = float(json.loads(eval_json.read_text())["results"]["psnr"])
    probe = [sys.executable, __file__, "--split-psnr", str(run_dir / "config.yml")]
    proc = subprocess.run(probe, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"train-view PSNR failed on {kind}:\n{proc.stderr[-3000:]}")
    psnr = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = dict(scalars(run_dir).get("Train Metrics Dict/gaussian_count", []))
    marks = []
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        step = min(counts, key=lambda s: abs(s - frac * steps)) if counts else None
        marks.append(f"{counts[step] / 1000:.1f}k" if step is not None else "?")
    return {"scene": kind, "steps": steps, "train_psnr": psnr["train"], "test_psnr": test_psnr,
            "counts": marks, "seconds": seconds, "run_dir": str(run_dir)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    ap.add_argument("--ring-size", type=int, nargs=2, default=(200, 150), help="ring image WxH (default 200 150)")
    ap.add_argument("--forward-size", type=int, nargs=2, default=(256, 144), help="forward WxH (default 256 144)")
    ap.add_argument("--scenes", default="ring,forward", help="comma-separated subset of ring,forward")
    ap.add_argument("--out", type=Path, help="keep scenes and runs here (default: a temporary folder)")
    ap.add_argument("--extra", default="", help="extra ns-train arguments (investigations only; not the defaults)")
    ap.add_argument("--split-psnr", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.split_psnr:
        print(json.dumps(split_psnr(args.split_psnr)))
        return 0
    kinds = [k for k in args.scenes.split(",") if k]
    if any(k not in PARSERS for k in kinds):
        ap.error(f"--scenes: choose from {sorted(PARSERS)}")
    extra = shlex.split(args.extra)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        rows = []
        for kind in kinds:
            size = tuple(args.ring_size if kind == "ring" else args.forward_size)
            scene = make_scene(kind, root / "scenes", size)
            rows.append({**run_scene(kind, scene, args.steps, root / "runs", extra), "size": size})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    settings = f"extra ns-train arguments: {args.extra}" if extra else "defaults"
    print(f"\nstatic base splat (dynsplat-4dgs, motion off), {settings}, CPU, {os.cpu_count()} cores visible")
    print("| scene | size | steps | train PSNR | test PSNR | gap | Gaussians at 0/25/50/75/100 % | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scene']} | {r['size'][0]}x{r['size'][1]} | {r['steps']} | {r['train_psnr']:.2f} | "
              f"{r['test_psnr']:.2f} | {r['train_psnr'] - r['test_psnr']:.2f} | {' / '.join(r['counts'])} | "
              f"{r['seconds']:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
