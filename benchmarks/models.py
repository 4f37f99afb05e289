"""Compare static, dynsplat-4dgs, dynsplat-som and dynsplat-marbles on one generated moving scene and budget.

Each method trains in its own subprocess (so peak RSS is its own) with its registered method config as
``ns-train <method> --max-num-iterations STEPS`` would build it (step schedules fitted to the run length, motion
optimizers included), then is scored on the test split. Prints a markdown table, PSNR per test time and, with
``--diagnose``, whether the Gaussians carry the spheres' motion and the static slab stays put.

The default scene is issue 11's kind (``--scene-kind bounce``): a ball bouncing about two of its diameters high next
to a box making a quarter turn and a static pillar, 160 px, full motion amplitude, 60 training views at uniform
times, 20 test views at held-out times, 3000 steps. ``--scene-kind spheres`` is the three-sphere test scene, whose
spheres travel several of their diameters per clip.

Usage:
    python benchmarks/models.py [--scene-kind bounce|spheres] [--size 160] [--steps 3000] [--n-train 60]
        [--n-test 20] [--motion-scale 1]
        [--methods static,4dgs,som,marbles] [--diagnose] [--set som:motion.num_bases=6 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "static": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "4dgs": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "som": "dynsplat_ns.method_configs.som:som_method",
    "marbles": "dynsplat_ns.method_configs.marbles:marbles_method",
}


def _apply_overrides(config, overrides: list[str]) -> None:
    """``path.to.field=value`` (relative to the model config) set on the trainer config in place."""
    import ast

    for item in overrides:
        path, value = item.split("=", 1)
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        obj = config.pipeline.model
        *parents, leaf = path.split(".")
        for name in parents:
            obj = getattr(obj, name)
        if not hasattr(obj, leaf):
            raise AttributeError(f"--set {item}: {type(obj).__name__} has no field {leaf!r}")
        setattr(obj, leaf, parsed)


def _diagnose(model, scene_meta: dict, times: list[float]) -> dict:
    """Motion diagnostics against the generator's analytic scene (world units, the dataparser keeps them).

    * per sphere: Gaussians inside the sphere at the first training time (t=0) are followed; their opacity-weighted
      centre at each test time is compared with the true centre (``track_err``), and the recovered share of the true
      displacement since t=0 is reported (``recovered`` = projection of the tracked displacement on the true one).
    * ``static_drift``: mean distance an opaque Gaussian on the static slab moves between t=0 and the test times.
    """
    import numpy as np
    import torch

    from dynsplat_ns.scenes.synthetic import SCENES

    scene = SCENES[scene_meta["scene"]](motion=True, motion_scale=scene_meta["motion_scale"])
    out: dict = {"spheres": []}
    with torch.no_grad():
        g0 = model.gaussians_at(0.0)
        opa = torch.sigmoid(g0["opacities"]).reshape(-1)
        pos = {t: model.gaussians_at(t)["means"] for t in times}
        for sphere in scene.spheres:
            c0 = torch.tensor(sphere.center(0.0), dtype=torch.float32)
            inside = ((g0["means"] - c0).norm(dim=-1) < sphere.radius) & (opa > 0.3)
            errs, fracs = [], []
            for t in times:
                ct = torch.tensor(sphere.center(t), dtype=torch.float32)
                if not inside.any():
                    break
                w = opa[inside][:, None]
                est = (pos[t][inside] * w).sum(0) / w.sum()
                errs.append(float((est - ct).norm()))
                true_d = ct - c0
                if true_d.norm() > 0.5 * sphere.radius:
                    est0 = (g0["means"][inside] * w).sum(0) / w.sum()
                    fracs.append(float(((est - est0) @ true_d) / true_d.square().sum()))
            out["spheres"].append(
                {
                    "n": int(inside.sum()),
                    "track_err": float(np.mean(errs)) if errs else float("nan"),
                    "recovered": float(np.mean(fracs)) if fracs else float("nan"),
                }
            )
        box = scene.box
        lo, hi = torch.tensor(box.lo) - 0.05, torch.tensor(box.hi) + 0.05
        on_slab = ((g0["means"] > lo) & (g0["means"] < hi)).all(-1) & (opa > 0.3)
        drift = [float((pos[t][on_slab] - g0["means"][on_slab]).norm(dim=-1).mean()) for t in times]
        out["static_drift"] = float(np.mean(drift)) if on_slab.any() else float("nan")
        out["n_slab"] = int(on_slab.sum())
    return out


def run_one(name: str, scene: Path, steps: int, overrides: list[str], diagnose: bool, meta_in: dict) -> dict:
    """Train and evaluate one method in this process; returns its row."""
    import copy
    import dataclasses
    import importlib

    import torch
    from nerfstudio.data.datasets.base_dataset import InputDataset
    from pytorch_msssim import SSIM
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/quick_train.py
    from quick_train import quick_train

    from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig

    module, attr = METHODS[name].split(":")
    spec = getattr(importlib.import_module(module), attr)
    from dynsplat_ns.training.trainer import resolve_run_schedules

    config = copy.deepcopy(dataclasses.replace(spec.config, max_num_iterations=steps))
    if name == "static":
        config.pipeline.model.disable_motion = True
    _apply_overrides(config, overrides)
    # As `ns-train METHOD --max-num-iterations STEPS` runs it: "auto" schedules resolved, motion groups added.
    config, _ = resolve_run_schedules(config)
    cfg, optimizers = config.pipeline.model, config.optimizers
    # The datamanager ns-train builds: it replaces the parser's random seed points by stereo estimates.
    datamanager = dataclasses.replace(config.pipeline.datamanager, dataparser=DNeRFDataParserConfig(data=scene))
    manager = datamanager.setup(device="cpu")
    splits = {}
    for split in ("train", "test"):
        out = manager.train_dataparser_outputs if split == "train" else manager.dataparser.get_dataparser_outputs(split)
        ds = InputDataset(out)
        splits[split] = (out, [ds.get_image_float32(i)[..., :3] for i in range(len(ds))])
    train_out, train_imgs = splits["train"]
    meta = train_out.metadata
    torch.manual_seed(0)
    model = cfg.setup(
        scene_box=train_out.scene_box, num_train_data=len(train_imgs), metadata=meta, device="cpu",
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )
    start = time.perf_counter()
    losses = quick_train(model, train_out.cameras, train_imgs, steps, optimizers)
    seconds = time.perf_counter() - start
    test_out, test_imgs = splits["test"]
    ssim = SSIM(data_range=1.0, size_average=True, channel=3)
    psnrs, ssims, times = [], [], []
    with torch.no_grad():
        for i, gt in enumerate(test_imgs):
            cam = test_out.cameras[i : i + 1]
            pred = model.get_outputs_for_camera(cam)["rgb"]
            psnrs.append(float(-10 * torch.log10((pred - gt).square().mean())))
            ssims.append(float(ssim(gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None])))
            times.append(float(cam.times.reshape(-1)[0]))
    row = {
        "method": name,
        "psnr": sum(psnrs) / len(psnrs),
        "ssim": sum(ssims) / len(ssims),
        "train_s": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gaussians": model.num_points,
        "per_time": sorted(zip(times, psnrs, strict=True)),
        "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
    }
    if diagnose:
        row["diag"] = _diagnose(model, meta_in, times)
    return row


def _print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nscene: {args.scene_kind}, {args.size}px, motion scale {args.motion_scale}, "
        f"{args.n_train} train / {args.n_test} test frames; "
        f"{args.steps} steps each; CPU ({os.environ.get('OMP_NUM_THREADS', 'all')} threads)"
    )
    print("| method | test PSNR (dB) | test SSIM | train s | peak RSS (MB) | Gaussians |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['train_s']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {r['gaussians']} |"
        )
    print("\nPSNR (dB) per test time:\n")
    print("| t | " + " | ".join(r["method"] for r in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for i, (t, _) in enumerate(rows[0]["per_time"]):
        print(f"| {t:.3f} | " + " | ".join(f"{r['per_time'][i][1]:.2f}" for r in rows) + " |")
    if any("diag" in r for r in rows):
        print("\nmotion diagnostics (world units; sphere radii 0.30 / 0.25 / 0.22):\n")
        print("| method | sphere: tracking error / recovered share of the true displacement | static slab drift |")
        print("|---|---|---|")
        for r in rows:
            d = r.get("diag")
            if d is None:
                continue
            spheres = ", ".join(f"{s['track_err']:.3f} / {s['recovered']:.2f} (n={s['n']})" for s in d["spheres"])
            print(f"| {r['method']} | {spheres} | {d['static_drift']:.4f} (n={d['n_slab']}) |")


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=160, help="image size in pixels (default 160)")
    ap.add_argument("--steps", type=int, default=3000, help="training steps per method (default 3000)")
    ap.add_argument("--n-train", type=int, default=60, help="training frames (default 60)")
    ap.add_argument("--n-test", type=int, default=20, help="test frames (default 20)")
    ap.add_argument("--motion-scale", type=float, default=1.0, help="scene motion amplitude scale (default 1)")
    ap.add_argument("--methods", default="static,4dgs,som,marbles", help="comma-separated subset")
    ap.add_argument("--diagnose", action="store_true", help="also report sphere tracking and static drift")
    ap.add_argument(
        "--set", action="append", default=[], metavar="METHOD:FIELD=VALUE",
        help="override a model config field for one method, e.g. som:motion.num_bases=6 (repeatable)",
    )
    ap.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument(
        "--scene-kind", default="bounce", choices=("bounce", "spheres"),
        help="bounce: issue 11's kind of scene, a ball bouncing two diameters next to a turning box and a static "
        "pillar (default); spheres: three spheres on long paths (harder: every method loses them at full amplitude)",
    )  # fmt: skip
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        overrides = [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == args.run]
        meta = {"motion_scale": args.motion_scale, "scene": args.scene_kind}
        print(json.dumps(run_one(args.run, args.scene, args.steps, overrides, args.diagnose, meta)))
        return 0
    from dynsplat_ns.scenes.dnerf import make_dnerf_scene
    from dynsplat_ns.scenes.synthetic import SCENES

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_dnerf_scene(
            Path(tmp) / "scene", size=args.size, n_train=args.n_train, n_val=2, n_test=args.n_test,
            motion_scale=args.motion_scale,
            scene=SCENES[args.scene_kind](motion=True, motion_scale=args.motion_scale),
        )
        for name in args.methods.split(","):
            env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
            cmd = [
                sys.executable, __file__, "--run", name, "--scene", str(scene), "--steps", str(args.steps),
                "--motion-scale", str(args.motion_scale), "--scene-kind", args.scene_kind,
                *[f"--set={s}" for s in args.set],
            ]
            if args.diagnose:
                cmd.append("--diagnose")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"done {name}: {r['psnr']:.2f} dB, {r['train_s']:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    _print_tables(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
