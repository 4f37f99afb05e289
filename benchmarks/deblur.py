"""Acceptance benchmark of ``dynsplat-deblur``: blurry generated D2RF scenes, deblur against the same motion model
trained on the same blurry views and on the sharp ones, at one step budget, scored on the sharp test views.

For each blur kind (``shake``, ``motion``, ``motion-fast``, ``defocus``) and for no blur, ``dynsplat-make-scene d2rf
--blur KIND --seed S`` writes a scene whose left (training) views are blurred and whose right (test) views are sharp.
Three runs per scene, each ``ns-train`` + ``ns-eval`` (PSNR, PSNR inside the motion masks, SSIM):

* ``dynsplat-deblur`` on the blurry views, with its defaults and only the flags that say which blur the data has not
  (:data:`KIND_DEBLUR_FLAGS`);
* ``dynsplat-som`` (the same motion model without the blur model) on the blurry views;
* ``dynsplat-som`` on the scene's sharp views: the most deblurring could recover at this budget.

Every run of a kind gets the same regularisers (:data:`KIND_COMMON_FLAGS`: what is not part of a blur model is given
to the baseline too) and every kind the same steps. ``recovered`` = (deblur − SoM blurry) / (SoM sharp − SoM blurry),
in the metric where the blur lives: motion-masked PSNR for object motion (the moving objects cover a few % of the
image), whole-image PSNR otherwise; the table names the three runs it is computed from, and marks scenes where the
blur costs SoM less than 2 dB (a fraction of a small cost is noise).

Scene seeds: ``--scenes tune`` (seeds 1, 2, 3) for choosing settings, ``--scenes report`` (11, 12, 13) for the
numbers quoted in the README. Each seed also draws the scene's variation (:func:`scene_variation`): slab texture
contrast, defocus aperture and focus spread, shake size, so a setting tuned on one scene is checked on others.

Usage:
    python benchmarks/deblur.py [--scenes tune|report|1,2] [--kinds none,shake,motion,motion-fast,defocus]
        [--steps 1500] [--size 96 64] [--n-times 24] [--cost-steps 60] [--deblur-extra "..."] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("none", "shake", "motion", "motion-fast", "defocus")
#: dynsplat-make-scene ``--blur`` of each kind.
KIND_BLUR = {"none": "none", "shake": "shake", "motion": "motion", "motion-fast": "motion", "defocus": "defocus"}
#: dynsplat-make-scene arguments of each blur kind's scene (after the common ones, so they win). Object motion: large
#: plain spheres over a plain slab (on textured objects at this size SoM's own tracking error exceeds the blur);
#: ``motion-fast``: the spheres move more than their diameter per frame.
KIND_SCENE_ARGS = {
    "motion": ("--checker", "0", "--sphere-scale", "2", "--sphere-speed", "2", "--motion-scale", "0.5"),
    "motion-fast": ("--checker", "0", "--sphere-scale", "2", "--sphere-speed", "8", "--motion-scale", "0.5"),
}
#: Metric in which each kind's blur lives (the recovered fraction is computed in it).
KIND_METRIC = {"motion": "masked_psnr", "motion-fast": "masked_psnr"}
#: Training steps of every run (one budget for every blur kind).
DEFAULT_STEPS = 1500
#: ns-train arguments of every run of a kind, baseline included (regularisers that are not part of a blur model).
KIND_COMMON_FLAGS = {"defocus": ("--pipeline.model.use-scale-regularization", "True")}
#: dynsplat-deblur arguments of each kind: the blur its data does not have, off. The generator writes every kind's
#: blurred views to ``images_bokeh/``, which real D2RF data holds defocused, so defocus (on by itself for bokeh
#: images) is turned off where the scene has none.
_NO_DEFOCUS = ("--pipeline.model.defocus", "False")
KIND_DEBLUR_FLAGS = {
    "shake": _NO_DEFOCUS,
    "motion": ("--pipeline.model.camera-blur", "False", *_NO_DEFOCUS),
    "motion-fast": ("--pipeline.model.camera-blur", "False", *_NO_DEFOCUS),
    "defocus": ("--pipeline.model.camera-blur", "False", "--pipeline.model.object-blur", "False"),
}
#: Scene seeds for tuning, and the disjoint ones the README's numbers come from.
SCENE_SEEDS = {"tune": (1, 2, 3), "report": (11, 12, 13)}
#: Training seed of every run (``--machine.seed``).
TRAIN_SEED = 42


def scene_variation(kind: str, seed: int) -> tuple[str, ...]:
    """dynsplat-make-scene arguments drawn from the scene seed: slab texture, defocus aperture, shake size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    checker, aperture, shake = rng.uniform(0.4, 0.8), rng.uniform(60.0, 110.0), rng.uniform(3.0, 6.0)
    args = ["--seed", str(seed), "--checker", f"{checker:.2f}"]
    if kind == "defocus":
        args += ["--aperture", f"{aperture:.0f}"]
    if kind == "shake":
        args += ["--shake-rotation-px", f"{shake:.1f}", "--shake-translation-px", f"{shake / 2:.1f}"]
    return tuple(args)


def recovered_fraction(deblur: float | None, blurry: float | None, sharp: float | None) -> float | None:
    """(deblur − SoM blurry) / (SoM sharp − SoM blurry): 1 recovers all the blur costs SoM, 0 nothing, < 0 worse
    than not deblurring. None when a value is missing or the blur costs nothing."""
    if deblur is None or blurry is None or sharp is None or sharp - blurry <= 1e-9:
        return None
    return (deblur - blurry) / (sharp - blurry)


def tool(name: str) -> list[str]:
    """Command prefix of a console script next to this interpreter (else on PATH)."""
    local = Path(sys.executable).parent / name
    return [str(local)] if local.is_file() else [shutil.which(name) or name]


def env() -> dict[str, str]:
    return {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}


def make_scene(
    kind: str, folder: Path, size: tuple[int, int], n_times: int, seed: int, motion_scale: float = 0.25,
    scene_args: tuple[str, ...] = (),
) -> Path:
    """The scene of ``kind`` and scene seed ``seed`` under ``folder`` (generated once)."""
    scene = folder / f"{kind}-s{seed}"
    if not (scene / "blur_gt.json").is_file() and not (scene / "images").is_dir():
        cmd = tool("dynsplat-make-scene") + ["d2rf", str(scene), "--width", str(size[0]), "--height", str(size[1]),
                                             "--n-times", str(n_times), "--blur", KIND_BLUR[kind], "--overwrite",
                                             "--motion-scale", str(motion_scale), *scene_variation(kind, seed),
                                             *KIND_SCENE_ARGS.get(kind, ()), *scene_args]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, env=env())
    return scene


def train_and_eval(
    method: str, scene: Path, kind: str, steps: int, out: Path, extra: list[str], name: str, sharp: bool = False
) -> dict:
    """ns-train + ns-eval of one run; its row (test metrics, seconds, seconds per step). ``sharp`` (or kind
    ``none``): train on the scene's sharp ``images/`` instead of the blurred ``images_bokeh/``."""
    sharp = sharp or kind == "none"
    parser = ["dynsplat-d2rf", "--data", str(scene)] + (["--image-source", "sharp"] if sharp else [])
    cmd = tool("ns-train") + [
        method, "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", str(steps),
        "--steps-per-eval-image", str(10 * steps), "--steps-per-eval-all-images", str(10 * steps),
        "--output-dir", str(out), "--experiment-name", kind, "--timestamp", name, *extra, *parser,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env())
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ns-train {method} failed on {kind}:\n{proc.stderr[-3000:]}")
    per_step = re.search(r"Trainer\.train_iteration:\s*([0-9.]+)", proc.stdout)
    run_dir = out / kind / method / name
    eval_json = run_dir / "eval.json"
    proc = subprocess.run(tool("ns-eval") + ["--load-config", str(run_dir / "config.yml"), "--output-path",
                                            str(eval_json)], capture_output=True, text=True, env=env())  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ns-eval failed on {kind}/{method}:\n{proc.stderr[-3000:]}")
    results = json.loads(eval_json.read_text())["results"]
    return {
        "kind": kind, "method": method, "name": name, "steps": steps, "seconds": seconds,
        "s_per_step": float(per_step.group(1)) if per_step else float("nan"),
        "psnr": results.get("psnr"), "masked_psnr": results.get("masked_psnr"), "ssim": results.get("ssim"),
        "run_dir": str(run_dir),
    }  # fmt: skip


def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def kind_rows(runs: dict[tuple[str, int, str], dict], kinds: list[str], seeds: list[int]) -> list[dict]:
    """One row per (kind, scene seed) with the three runs, the blur's cost to SoM and the recovered fraction."""
    rows = []
    for kind in kinds:
        metric = KIND_METRIC.get(kind, "psnr")
        for seed in seeds:
            deblur, blurry, sharp = (runs.get((kind, seed, m)) for m in ("deblur", "som", "som-sharp"))
            if deblur is None or blurry is None:
                continue
            value = {name: (r or {}).get(metric) for name, r in (("deblur", deblur), ("som", blurry), ("sharp", sharp))}
            cost = None if value["sharp"] is None or value["som"] is None else value["sharp"] - value["som"]
            rows.append({
                "kind": kind, "seed": seed, "metric": metric, **value, "cost": cost,
                "gain": value["deblur"] - value["som"] if value["deblur"] is not None and value["som"] is not None
                else None,
                "gain_psnr": deblur["psnr"] - blurry["psnr"],
                "recovered": recovered_fraction(value["deblur"], value["som"], value["sharp"]),
                "runs": [r["run_dir"] for r in (deblur, blurry, sharp) if r],
            })  # fmt: skip
    return rows


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def print_tables(rows: list[dict], steps: int, size, n_times: int, note: str) -> None:
    print(f"\ndynsplat-deblur vs dynsplat-som on generated D2RF scenes, {size[0]}x{size[1]}, {n_times} times, "
          f"{steps} steps each, CPU{note}; test = sharp right views")  # fmt: skip
    print("| blur | scene seed | metric | SoM sharp | SoM blurry | deblur | blur cost | deblur − SoM | recovered |"
          " whole-image deblur − SoM |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        small = " (cost < 2 dB)" if r["cost"] is not None and r["cost"] < 2.0 else ""
        print(f"| {r['kind']} | {r['seed']} | {r['metric']} | {fmt(r['sharp'])} | {fmt(r['som'])} | "
              f"{fmt(r['deblur'])} | {fmt(r['cost'])} | {fmt(r['gain'])} | {pct(r['recovered'])}{small} | "
              f"{r['gain_psnr']:+.2f} |")  # fmt: skip
    print("\nmeans over scene seeds:")
    print("| blur | metric | blur cost | deblur − SoM | recovered (of the mean cost) |")
    print("|---|---|---|---|---|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        of = [r for r in rows if r["kind"] == kind]
        mean = {k: sum(r[k] for r in of) / len(of) if all(r[k] is not None for r in of) else None
                for k in ("cost", "gain", "sharp", "som", "deblur")}  # fmt: skip
        print(f"| {kind} | {of[0]['metric']} | {fmt(mean['cost'])} | {fmt(mean['gain'])} | "
              f"{pct(recovered_fraction(mean['deblur'], mean['som'], mean['sharp']))} |")  # fmt: skip
    print("\nruns behind each row (deblur, SoM blurry, SoM sharp):")
    for r in rows:
        print(f"  {r['kind']} s{r['seed']}: " + ", ".join(r["runs"]))


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(96, 64), help="image W H (default 96 64)")
    ap.add_argument("--n-times", type=int, default=24, help="time steps of the scene (train = left views; default 24)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"steps of every run (default {DEFAULT_STEPS})")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--scenes", default="tune", help="scene seeds: tune (1,2,3), report (11,12,13) or a list")
    ap.add_argument("--cost-steps", type=int, default=60, help="steps of each cost run (0: no cost table)")
    ap.add_argument("--deblur-extra", default="", help="extra ns-train arguments of dynsplat-deblur (investigations)")
    ap.add_argument("--baseline-extra", default="", help="extra ns-train arguments of the SoM runs (controls)")
    ap.add_argument("--scene-args", default="", help="extra dynsplat-make-scene d2rf arguments (every scene)")
    ap.add_argument("--motion-scale", type=float, default=0.25, help="motion amplitude of the spheres (default 0.25)")
    ap.add_argument("--tag", default="run", help="run name (timestamp folder) of this benchmark's runs")
    ap.add_argument("--out", type=Path, help="keep scenes and runs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        ap.error(f"--kinds: choose from {KINDS}")
    seeds = list(SCENE_SEEDS.get(args.scenes, ())) or [int(x) for x in args.scenes.split(",") if x]
    deblur_extra, baseline_extra = shlex.split(args.deblur_extra), shlex.split(args.baseline_extra)
    runs: dict[tuple[str, int, str], dict] = {}
    cost = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for kind in kinds:
            for seed in seeds:
                scene = make_scene(kind, root / "scenes", tuple(args.size), args.n_times, seed, args.motion_scale,
                                   tuple(shlex.split(args.scene_args)))  # fmt: skip
                common = [*KIND_COMMON_FLAGS.get(kind, ()), "--machine.seed", str(TRAIN_SEED)]
                plan = [("deblur", "dynsplat-deblur", [*KIND_DEBLUR_FLAGS.get(kind, ()), *deblur_extra], False),
                        ("som", "dynsplat-som", baseline_extra, False)]  # fmt: skip
                if kind != "none":
                    plan.append(("som-sharp", "dynsplat-som", baseline_extra, True))
                for label, method, extra, sharp in plan:
                    name = f"{args.tag}-s{seed}" + ("-sharp" if sharp else "")
                    row = train_and_eval(method, scene, kind, args.steps, root / "runs", [*common, *extra], name, sharp)
                    runs[(kind, seed, label)] = row
                    print(json.dumps({"label": label, "seed": seed, **row}), file=sys.stderr, flush=True)
        if args.cost_steps > 0:
            scene = make_scene("shake", root / "scenes", tuple(args.size), args.n_times, seeds[0], args.motion_scale)
            for k in (1, 3, 7):
                extra = ["--pipeline.model.num-virtual-views", str(k)]
                row = train_and_eval("dynsplat-deblur", scene, "shake", args.cost_steps, root / "cost", extra, f"k{k}")
                cost.append({"k": k, **row})
                print(json.dumps(cost[-1]), file=sys.stderr, flush=True)
        note = f" (dynsplat-deblur extra: {args.deblur_extra})" if deblur_extra else ""
        print_tables(kind_rows(runs, kinds, seeds), args.steps, args.size, args.n_times, note)
    if cost:
        print("\n| num-virtual-views | s/step (dynsplat-deblur, shake scene) |")
        print("|---|---|")
        for c in cost:
            print(f"| {c['k']} | {c['s_per_step']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
