"""Monocular priors (issue 14): depth loss and static background on a generated D2RF-layout scene.

The scene is a stereo rig sweeping sideways past three moving spheres (``dynsplat_ns.scenes.d2rf``): each method
trains on the LEFT views only (sharp images, ``--image-source sharp``: a monocular video) and is scored on the RIGHT
views (novel viewpoints at the training times). Every configuration gets the same step budget and runs in its own
subprocess (one thread), as ``ns-train METHOD --max-num-iterations STEPS dynsplat-d2rf`` builds it (schedules fitted
to the run length, the datamanager's batches, which carry the depth prior). Reported per configuration: test PSNR,
masked PSNR (the D2RF motion masks of the test views: the dynamic region), SSIM, training seconds, Gaussians and the
share of them flagged static.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/monocular.py [--width 80] [--n-times 12] [--steps 1500]
        [--configs som,som+depth,som+static,som+priors,4dgs,4dgs+priors,marbles,marbles+priors] [--depth-weight 0.1]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "som": "dynsplat_ns.method_configs.som:som_method",
    "4dgs": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "marbles": "dynsplat_ns.method_configs.marbles:marbles_method",
}
#: Prior options of a configuration name's suffix.
PRIORS = {"": (False, False), "depth": (True, False), "static": (False, True), "priors": (True, True)}


def run_one(
    name: str, scene: Path, steps: int, depth_weight: float, overrides: list[str] | None = None, seed: int = 0
) -> dict:
    """Train and evaluate one configuration (``METHOD[+depth|+static|+priors]``) in this process; returns its row.

    ``overrides``: ``FIELD=VALUE`` settings of the model config (e.g. ``depth_loss_decay_steps=750``), as Python
    literals, applied after the configuration's own."""
    import copy
    import dataclasses
    import importlib

    import numpy as np
    import torch
    from nerfstudio.data.datasets.base_dataset import InputDataset
    from pytorch_msssim import SSIM
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/quick_train.py
    from quick_train import train_steps

    from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
    from dynsplat_ns.priors.depth import read_mask_file
    from dynsplat_ns.training.trainer import resolve_run_schedules

    method, _, suffix = name.partition("+")
    depth, static = PRIORS[suffix]
    module, attr = METHODS[method].split(":")
    spec = getattr(importlib.import_module(module), attr)
    config = copy.deepcopy(dataclasses.replace(spec.config, max_num_iterations=steps))
    config.pipeline.model.depth_loss_weight = depth_weight if depth else 0.0
    config.pipeline.model.static_background = static
    for item in overrides or []:
        key, _, value = item.partition("=")
        if not hasattr(config.pipeline.model, key):
            raise SystemExit(f"--set {item}: the model config has no field {key!r}")
        setattr(config.pipeline.model, key, ast.literal_eval(value))
    config, _ = resolve_run_schedules(config)
    parser = D2RFDataParserConfig(data=scene, image_source="sharp", eval_image_source="sharp")
    manager = dataclasses.replace(config.pipeline.datamanager, dataparser=parser).setup(device="cpu")
    meta = manager.train_dataparser_outputs.metadata
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = config.pipeline.model.setup(
        scene_box=manager.train_dataset.scene_box, num_train_data=len(manager.train_dataset), device="cpu",
        metadata=manager.train_dataset.metadata, seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )  # fmt: skip
    start = time.perf_counter()
    train_steps(model, manager.next_train, steps, config.optimizers)
    seconds = time.perf_counter() - start

    test = manager.dataparser.get_dataparser_outputs("test")
    dataset = InputDataset(test)
    ssim = SSIM(data_range=1.0, size_average=True, channel=3)
    psnrs, masked, ssims = [], [], []
    model.eval()
    with torch.no_grad():
        for i in range(len(dataset)):
            gt = dataset.get_image_float32(i)[..., :3]
            pred = model.get_outputs_for_camera(test.cameras[i : i + 1])["rgb"]
            err = (pred - gt).square().mean(dim=-1)
            mask = read_mask_file(test.metadata["motion_mask_filenames"][i])[None, None].float()
            mask = torch.nn.functional.interpolate(mask, size=tuple(gt.shape[:2]), mode="nearest")[0, 0] > 0.5
            psnrs.append(float(-10 * torch.log10(err.mean())))
            masked.append(float(-10 * torch.log10(err[mask].mean())) if mask.any() else float("nan"))
            ssims.append(float(ssim(gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None])))
    static = model.gauss_params["static"].mean().item() if "static" in model.gauss_params else 0.0
    valid = [m for m in masked if m == m]
    return {
        "config": name, "psnr": sum(psnrs) / len(psnrs), "masked_psnr": sum(valid) / max(len(valid), 1),
        "ssim": sum(ssims) / len(ssims), "train_s": seconds, "gaussians": model.num_points, "static_share": static,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=80, help="image width in pixels, even (height = width / 2)")
    ap.add_argument("--n-times", type=int, default=12, help="time steps (one left = train, one right = test view)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per configuration")
    ap.add_argument("--configs", default="som,som+depth,som+static,som+priors,4dgs,4dgs+priors,marbles,marbles+priors")
    ap.add_argument("--depth-weight", type=float, default=0.1, help="--pipeline.model.depth-loss-weight with depth")
    ap.add_argument(
        "--static-points-only", action="store_true",
        help="SfM points on the static box only, as on a real video (default: on the moving spheres too)",
    )  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="model config override")
    ap.add_argument("--seed", type=int, default=0, help="random seed of every run (camera order, model init)")
    ap.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run, args.scene, args.steps, args.depth_weight, args.set, args.seed)))
        return 0
    from dynsplat_ns.scenes.d2rf import make_d2rf_scene

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_d2rf_scene(
            Path(tmp) / "scene", width=args.width, height=args.width // 2, n_times=args.n_times,
            static_points_only=args.static_points_only,
        )  # fmt: skip
        for name in args.configs.split(","):
            env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
            cmd = [sys.executable, __file__, "--run", name, "--scene", str(scene), "--steps", str(args.steps),
                   "--depth-weight", str(args.depth_weight), "--seed", str(args.seed)]
            cmd += [f"--set={item}" for item in args.set]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"done {name}: {r['psnr']:.2f} dB, {r['train_s']:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\nD2RF-layout scene {args.width}x{args.width // 2}, {args.n_times} times (left views train, right views "
          f"test); {args.steps} steps each; depth weight {args.depth_weight}; CPU "
          f"({os.environ.get('OMP_NUM_THREADS', 'all')} threads)")  # fmt: skip
    print("| config | test PSNR (dB) | masked PSNR (dB) | SSIM | train s | Gaussians | static share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['psnr']:.2f} | {r['masked_psnr']:.2f} | {r['ssim']:.3f} | {r['train_s']:.0f} "
              f"| {r['gaussians']} | {r['static_share']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
