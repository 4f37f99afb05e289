"""Monocular video with priors as users have them (issue 27): ``dynsplat-som`` on generated DyCheck-layout captures.

Each scene (``dynsplat-make-scene dycheck``) is a phone sweeping an arc past moving spheres (30 training frames) and
two static cameras (20 test frames, scored on their covisible pixels as DyCheck does). The spheres' positions,
motions and colours come from the scene seed (``--scene-seed``): ``--scenes tune`` (1, 2, 3) for choosing settings,
``report`` (11, 12, 13) for quoted numbers. The depth has an iPhone LiDAR's errors (``--depth lidar``: low
resolution, per-frame scale, smooth error, noise, holes at edges) and the seed points, on static structure only, are
noisy (``--point-noise``): what a user's DyCheck capture ships, not the renderer's exact values.

Every configuration is a real ``ns-train dynsplat-som ... dynsplat-dycheck`` + ``ns-eval`` at each step budget
(300 and 3000 by default: the full image must not get worse with training). A finished run (its eval.json) is not
run again.

Usage:
    python benchmarks/monocular_dycheck.py [--scenes tune|report|1,2] [--configs som,som-no-priors] [--steps 300,3000]
        [--size 128 96] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: Scene seeds for tuning, and the disjoint ones quoted numbers come from.
SCENE_SEEDS = {"tune": (1, 2, 3), "report": (11, 12, 13)}
#: ns-train arguments of each configuration (after the method).
CONFIGS = {
    "som": (),  # the defaults: the data's depth and the motion masks derived from it
    "som-no-priors": ("--pipeline.model.depth-loss-weight", "0", "--pipeline.model.static-background", "False"),
    "som-depth-only": ("--pipeline.model.static-background", "False"),
    "som-masks-only": ("--pipeline.model.depth-loss-weight", "0"),
}
#: Configurations run without --configs.
DEFAULT_CONFIGS = ("som", "som-no-priors")
#: Metrics of each run, as ns-eval names them.
METRICS = ("psnr", "covisible_psnr", "covisible_ssim")
#: Training seed of every run (``--machine.seed``).
TRAIN_SEED = 42


def tool(name: str) -> str:
    """A console script next to this interpreter (else the bare name, found on PATH)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else name


def make_scene(seed: int, root: Path, size: tuple[int, int], n_times: int, point_noise: float) -> Path:
    """The capture of scene seed ``seed`` under ``root`` (generated once)."""
    scene = root / f"dycheck-s{seed}"
    if not (scene / "dataset.json").is_file():
        cmd = [tool("dynsplat-make-scene"), "dycheck", str(scene), "--width", str(size[0]), "--height", str(size[1]),
               "--n-times", str(n_times), "--val-every", "3", "--scene-seed", str(seed), "--seed", str(seed),
               "--depth", "lidar", "--point-noise", str(point_noise), "--overwrite"]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
    return scene


def run(config: str, scene: Path, steps: int, out: Path) -> dict:
    """ns-train + ns-eval of one configuration at one step budget (skipped when its eval.json exists)."""
    name = f"{scene.name}-{config}-{steps}"
    run_dir = out / "runs" / name / "dynsplat-som" / "run"
    eval_json = run_dir / "eval.json"
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    seconds = None
    if not eval_json.is_file():
        start = time.perf_counter()
        cmd = [tool("ns-train"), "dynsplat-som", "--machine.device-type", "cpu", "--vis", "tensorboard",
               "--max-num-iterations", str(steps), "--steps-per-eval-image", str(10 * steps),
               "--steps-per-eval-all-images", str(10 * steps), "--output-dir", str(out / "runs"),
               "--experiment-name", name, "--timestamp", "run", "--machine.seed", str(TRAIN_SEED),
               *CONFIGS[config], "dynsplat-dycheck", "--data", str(scene)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"ns-train failed for {name}:\n{proc.stderr[-2000:]}")
        seconds = time.perf_counter() - start
        proc = subprocess.run([tool("ns-eval"), "--load-config", str(run_dir / "config.yml"), "--output-path",
                               str(eval_json)], capture_output=True, text=True, env=env)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"ns-eval failed for {name}:\n{proc.stderr[-2000:]}")
    results = json.loads(eval_json.read_text())["results"]
    return {"config": config, "seed": int(scene.name.split("-s")[-1]), "steps": steps, "seconds": seconds,
            **{m: results.get(m) for m in METRICS}}  # fmt: skip


def mask_quality(scene: Path) -> dict:
    """Recall, precision and IoU of the motion masks ``dynsplat-som`` derives for ``scene`` (the datamanager's cached,
    undistorted training images and depth) against the generator's ground truth (``motion_gt/``, undistorted the same
    way), over all training pixels."""
    import numpy as np
    import torch
    from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image
    from PIL import Image

    from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
    from dynsplat_ns.priors.derived_masks import derived_motion_seeding
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    manager = DynsplatDatamanagerConfig(dataparser=DycheckDataParserConfig(data=scene)).setup(device="cpu")
    outputs = manager.train_dataparser_outputs
    seeding = derived_motion_seeding(manager.train_dataset.cameras, manager.cached_train)
    tp = fp = fn = 0
    for k, (path, mask) in enumerate(zip(outputs.image_filenames, seeding["masks"], strict=True)):
        truth = np.asarray(Image.open(scene / "motion_gt" / Path(path).parent.name / Path(path).name), np.float32)
        camera = outputs.cameras[k]
        distortion = camera.distortion_params.reshape(-1).numpy()
        if np.any(distortion != 0):
            K = camera.get_intrinsics_matrices().reshape(3, 3).numpy()
            _, truth, _ = _undistort_image(camera.reshape(()), distortion, {}, truth, K)
        truth = torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None]
        truth = torch.nn.functional.interpolate(truth, size=tuple(mask.shape), mode="nearest")[0, 0] > 127
        tp += int((mask & truth).sum())
        fp += int((mask & ~truth).sum())
        fn += int((~mask & truth).sum())
    return {"seed": int(scene.name.split("-s")[-1]), "recall": tp / max(tp + fn, 1),
            "precision": tp / max(tp + fp, 1), "iou": tp / max(tp + fp + fn, 1)}  # fmt: skip


def summary(rows: list[dict]) -> list[dict]:
    """One row per (configuration, steps): the metrics per scene seed (in seed order) and their means."""
    out = []
    for key in dict.fromkeys((r["config"], r["steps"]) for r in rows):
        of = sorted((r for r in rows if (r["config"], r["steps"]) == key), key=lambda r: r["seed"])
        row = {"config": key[0], "steps": key[1], "seeds": [r["seed"] for r in of]}
        for m in METRICS:
            values = [r[m] for r in of]
            row[m] = values
            row[f"{m}_mean"] = sum(values) / len(values) if all(v is not None for v in values) else None
        out.append(row)
    return out


def print_table(rows: list[dict], size: tuple[int, int]) -> None:
    print(f"\ndynsplat-som on generated DyCheck captures ({size[0]}x{size[1]} at 1x, rgb/2x trained; LiDAR-like "
          "depth, noisy static seed points), CPU; per scene seed, then the mean")  # fmt: skip
    print("| configuration | steps | scene seeds | full PSNR | covisible PSNR | covisible SSIM |")
    print("|---|---|---|---|---|---|")
    for r in summary(rows):
        cells = [" / ".join("–" if v is None else f"{v:.2f}" for v in r[m]) + (
            f" (**{r[m + '_mean']:.2f}**)" if r[m + "_mean"] is not None else "") for m in METRICS]  # fmt: skip
        print(f"| {r['config']} | {r['steps']} | {', '.join(map(str, r['seeds']))} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default="tune", help="scene seeds: tune (1,2,3), report (11,12,13) or a list")
    choices, defaults = ",".join(CONFIGS), ",".join(DEFAULT_CONFIGS)
    ap.add_argument("--configs", default=defaults, help=f"comma-separated subset of {choices} (default {defaults})")
    ap.add_argument("--steps", default="300,3000", help="step budgets (default 300,3000)")
    ap.add_argument("--size", type=int, nargs=2, default=(128, 96), help="1x image W H (default 128 96)")
    ap.add_argument("--n-times", type=int, default=30, help="phone frames (default 30)")
    ap.add_argument("--point-noise", type=float, default=0.02, help="seed point noise, dataset units (default 0.02)")
    ap.add_argument("--out", type=Path, default=Path("monocular_dycheck"), help="scenes and runs (resumable)")
    args = ap.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    if any(c not in CONFIGS for c in configs):
        ap.error(f"--configs: choose from {','.join(CONFIGS)}")
    seeds = list(SCENE_SEEDS.get(args.scenes, ())) or [int(x) for x in args.scenes.split(",") if x]
    budgets = [int(x) for x in args.steps.split(",") if x]
    rows, masks = [], []
    for seed in seeds:
        scene = make_scene(seed, args.out / "scenes", tuple(args.size), args.n_times, args.point_noise)
        masks.append(mask_quality(scene))
        print(json.dumps(masks[-1]), file=sys.stderr, flush=True)
        for config in configs:
            for steps in budgets:
                rows.append(run(config, scene, steps, args.out))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print_table(rows, tuple(args.size))
    print("\nDerived motion masks against the generator's ground truth (all training pixels)")
    print("| scene seed | recall | precision | IoU |")
    print("|---|---|---|---|")
    for m in masks:
        print(f"| {m['seed']} | {m['recall']:.2f} | {m['precision']:.2f} | {m['iou']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
