"""Peak RSS and images/s of the training datamanager: full image cache vs ``--pipeline.datamanager.cache-bytes``.

For each frame count, an EyefulTower-layout capture is generated (``dynsplat_ns.scenes.eyeful``, fisheye rig, one
``images-jpeg-1k`` folder; by default at a quarter of EyefulTower's 684x1024 so 2000 frames stay cheap here), then for
each mode a *fresh* Python process sets up ``DynsplatDatamanager`` as ``ns-train`` does (train images decoded and
undistorted at setup in the full mode, eval images always), draws ``--steps`` training batches with ``next_train``
(nerfstudio's random camera order) and reports setup time, images/s and peak RSS (``ru_maxrss``) above the RSS after
imports. With the bounded cache the training images' share of the peak must stay near the bound instead of growing
with the number of frames; the eval images (every 8th rig spot here) are still all decoded in both modes.

Usage::

    python benchmarks/datamanager_ram.py                              # 200 and 2000 frames, 171x256, 32 MiB
    python benchmarks/datamanager_ram.py --size 684 1024 --frames 200 --cache-mib 256
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

CAMERAS = 10  # rig cameras; positions = frames / CAMERAS


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(data: Path, cache_bytes: int, steps: int) -> dict:
    """Child process: set up the datamanager on ``data`` and draw ``steps`` training batches."""
    from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig  # imports nerfstudio, torch

    from dynsplat_ns.datamanager import DynsplatDatamanagerConfig

    rss_before = _rss_kib()
    start = time.perf_counter()
    config = DynsplatDatamanagerConfig(dataparser=EyefulDataParserConfig(data=data), stereo_seeds=0,
                                       cache_bytes=cache_bytes)  # fmt: skip
    manager = config.setup(device="cpu")
    setup_s = time.perf_counter() - start
    eval_bytes = sum(item["image"].numel() * item["image"].element_size() for item in manager.cached_eval)
    start = time.perf_counter()
    for step in range(steps):
        manager.next_train(step)
    train_s = time.perf_counter() - start
    cache = manager.cached_train
    result = {
        "train": len(manager.train_dataset), "eval": len(manager.eval_dataset), "setup_s": setup_s,
        "images_per_s": steps / train_s, "rss_before_kib": rss_before,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "eval_mib": eval_bytes / 2**20,
        "cache_peak_mib": getattr(cache, "peak_bytes", 0) / 2**20,
    }  # fmt: skip
    if hasattr(cache, "close"):
        cache.close()
    return result


def generate(out: Path, frames: int, size: tuple[int, int], upscale: int) -> Path:
    """An EyefulTower capture with ``frames`` fisheye images of ``size`` (h, w) in ``images-jpeg-1k``."""
    from dynsplat_ns.scenes import eyeful as make_eyeful_scene

    return make_eyeful_scene.make_eyeful_scene(
        out, n_positions=max(1, frames // CAMERAS), n_cameras=CAMERAS, resolutions={"images-jpeg-1k": size},
        test_every=8, supersample=1, upscale=upscale, overwrite=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 2000], help="capture sizes (default 200 2000)")
    parser.add_argument("--size", type=int, nargs=2, default=[171, 256], help="image height width (default 171 256)")
    parser.add_argument("--upscale", type=int, default=4, help="render at 1/N of --size and enlarge (default 4)")
    parser.add_argument("--cache-mib", type=float, default=32.0, help="cache bound of the bounded mode (MiB)")
    parser.add_argument("--steps", type=int, default=400, help="training batches drawn per run (default 400)")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this folder and keep it")
    parser.add_argument("--measure", nargs=3, default=None, help=argparse.SUPPRESS)  # child: DATA CACHE_BYTES STEPS
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]), int(args.measure[2]))))
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="eyeful_dm_ram_"))
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    size = (args.size[0], args.size[1])
    for frames in args.frames:
        start = time.perf_counter()
        data = generate(root / f"capture_{frames}", frames, size, args.upscale)
        print(f"{frames} frames at {size[1]}x{size[0]}: generated in {time.perf_counter() - start:.0f} s", flush=True)
        for cache_bytes in (0, int(args.cache_mib * 2**20)):
            command = [sys.executable, __file__, "--measure", str(data), str(cache_bytes), str(args.steps)]
            child = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            r = json.loads(child.stdout.strip().splitlines()[-1])
            mode = "full cache" if cache_bytes == 0 else f"cache-bytes {args.cache_mib:g} MiB"
            added = (r["peak_kib"] - r["rss_before_kib"]) / 1024
            print(
                f"  {mode:>22}: {r['train']} train / {r['eval']} eval, setup {r['setup_s']:.1f} s, "
                f"{r['images_per_s']:.0f} images/s, peak RSS {r['peak_kib'] / 1024:.0f} MiB "
                f"(+{added:.0f} MiB over imports; eval images {r['eval_mib']:.0f} MiB, "
                f"bounded cache peak {r['cache_peak_mib']:.1f} MiB)",
                flush=True,
            )
    if args.keep is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
