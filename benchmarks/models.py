"""Compare static, dynsplat-4dgs, dynsplat-som and dynsplat-marbles on one generated moving scene and budget.

Each method trains in its own subprocess (so peak RSS is its own) with its registered method config (model settings
and optimizers), for the same number of steps, then is scored on the test split. Prints a markdown table.

Usage:
    python benchmarks/models.py [--size 64] [--steps 1500] [--n-train 40] [--motion-scale 0.5] [--methods ...]
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

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "static": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "4dgs": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "som": "dynsplat_ns.method_configs.som:som_method",
    "marbles": "dynsplat_ns.method_configs.marbles:marbles_method",
}


def run_one(name: str, scene: Path, steps: int) -> dict:
    """Train and evaluate one method in this process; returns its row."""
    import importlib

    import torch
    from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
    from nerfstudio.data.datasets.base_dataset import InputDataset
    from pytorch_msssim import SSIM

    from dynsplat_ns.models.quick_train import quick_train

    module, attr = METHODS[name].split(":")
    spec = getattr(importlib.import_module(module), attr)
    cfg = spec.config.pipeline.model
    if name == "static":
        cfg.disable_motion = True
    if name in ("static", "4dgs"):
        cfg.motion.static_warmup_steps = steps // 10
    parser = DNeRFDataParserConfig(data=scene).setup()
    splits = {}
    for split in ("train", "test"):
        out = parser.get_dataparser_outputs(split)
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
    quick_train(model, train_out.cameras, train_imgs, steps, spec.config.optimizers)
    seconds = time.perf_counter() - start
    test_out, test_imgs = splits["test"]
    ssim = SSIM(data_range=1.0, size_average=True, channel=3)
    psnrs, ssims = [], []
    with torch.no_grad():
        for i, gt in enumerate(test_imgs):
            pred = model.get_outputs_for_camera(test_out.cameras[i : i + 1])["rgb"]
            psnrs.append(float(-10 * torch.log10((pred - gt).square().mean())))
            ssims.append(float(ssim(gt.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None])))
    return {
        "method": name,
        "psnr": sum(psnrs) / len(psnrs),
        "ssim": sum(ssims) / len(ssims),
        "train_s": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gaussians": model.num_points,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per method (default 1500)")
    ap.add_argument("--n-train", type=int, default=40, help="training frames (default 40)")
    ap.add_argument("--motion-scale", type=float, default=0.5, help="scene motion amplitude scale (default 0.5)")
    ap.add_argument("--methods", default="static,4dgs,som,marbles", help="comma-separated subset")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run, args.scene, args.steps)))
        return 0
    sys.path.insert(0, str(ROOT / "examples"))
    from make_dnerf_scene import make_dnerf_scene

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_dnerf_scene(
            Path(tmp) / "scene", size=args.size, n_train=args.n_train, n_val=4, n_test=10,
            motion_scale=args.motion_scale,
        )
        for name in args.methods.split(","):
            env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
            cmd = [sys.executable, __file__, "--run", name, "--scene", str(scene), "--steps", str(args.steps)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"done {name}", file=sys.stderr, flush=True)
    print(
        f"\nscene: {args.size}px, motion scale {args.motion_scale}, {args.n_train} train / 10 test frames; "
        f"{args.steps} steps each; CPU"
    )
    print("| method | test PSNR (dB) | test SSIM | train s | peak RSS (MB) | Gaussians |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['train_s']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {r['gaussians']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
