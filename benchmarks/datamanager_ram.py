"""Peak RSS and images/s of the datamanager: full image cache vs ``--pipeline.datamanager.cache-bytes``.

For each frame count, an EyefulTower-layout capture is generated (``dynsplat_ns.scenes.eyeful``, a 10-camera fisheye
rig, one ``images-jpeg-1k`` folder at EyefulTower's 1k size, 684x1024 portrait). Each frame is ray-cast at
``1/--upscale`` of that size and enlarged to it (``--upscale 4``: ~0.05 s per frame here against ~0.85 s ray-cast at
full size, so 2000 frames take minutes, not half an hour): distinct files in a 1k capture's layout and pixel size,
whose decoded images weigh what real ones do, but smoother pictures (~22 KB JPEGs) that decode faster than photos.
This is a RAM/throughput benchmark, not a quality one. Then for each mode a *fresh* Python process sets up
``DynsplatDatamanager`` as ``ns-train`` does (every image decoded and undistorted at setup in the full mode), draws
``--steps`` training batches with ``next_train`` (nerfstudio's random camera order), runs the full-split eval loop
once (``fixed_indices_eval_dataloader``, what ``ns-eval`` iterates) and reports setup time, train and eval images/s
and peak RSS (``ru_maxrss``) above the RSS after imports. With the bounded cache (train and eval images share it) the
peak must stay near the bound plus a fixed overhead instead of growing with the number of frames.

The full mode needs about H*W*3*4 bytes per image (float32; ~8 MiB at 1k): where that would exceed half of the
machine's available memory it is not run, and the figure predicted from the smaller captures is printed instead.

Usage::

    python benchmarks/datamanager_ram.py                                  # 200 and 2000 frames, 684x1024, 256 MiB
    python benchmarks/datamanager_ram.py --size 171 256 --frames 200 --cache-mib 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def _available_bytes() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(data: Path, cache_bytes: int, steps: int) -> dict:
    """Child process: set up the datamanager on ``data``, draw ``steps`` training batches, run the eval loop once."""
    from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig  # imports nerfstudio, torch
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    rss_before = _rss_kib()
    start = time.perf_counter()
    config = DynsplatDatamanagerConfig(dataparser=EyefulDataParserConfig(data=data), stereo_seeds=0,
                                       cache_bytes=cache_bytes)  # fmt: skip
    manager = config.setup(device="cpu")
    setup_s = time.perf_counter() - start
    setup_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    image_bytes = 0
    for step in range(steps):
        _, batch = manager.next_train(step)
        image_bytes = batch["image"].numel() * batch["image"].element_size()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    eval_bytes = 0
    for _, batch in manager.fixed_indices_eval_dataloader:  # the ns-eval loop, without rendering
        eval_bytes += batch["image"].numel() * batch["image"].element_size()
    eval_s = time.perf_counter() - start
    cache = manager.cached_train
    result = {
        "train": len(manager.train_dataset), "eval": len(manager.eval_dataset), "setup_s": setup_s,
        "images_per_s": steps / train_s, "eval_images_per_s": len(manager.eval_dataset) / eval_s,
        "rss_before_kib": rss_before, "setup_peak_kib": setup_kib,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "image_mib": image_bytes / 2**20,
        "eval_mib": eval_bytes / 2**20, "cache_peak_mib": getattr(cache, "peak_bytes", 0) / 2**20,
    }  # fmt: skip
    for images in (manager.cached_train, manager.cached_eval):
        if hasattr(images, "close"):
            images.close()
    return result


def generate(out: Path, frames: int, size: tuple[int, int], upscale: int) -> Path:
    """An EyefulTower capture with ``frames`` fisheye images of ``size`` (width, height) in ``images-jpeg-1k``."""
    from dynsplat_ns.scenes import eyeful as make_eyeful_scene

    return make_eyeful_scene.make_eyeful_scene(
        out, n_positions=max(1, frames // CAMERAS), n_cameras=CAMERAS, resolutions={"images-jpeg-1k": size},
        test_every=8, supersample=1, upscale=upscale, overwrite=True,
    )  # fmt: skip


def _report(mode: str, r: dict) -> None:
    added = (r["peak_kib"] - r["rss_before_kib"]) / 1024
    print(
        f"  {mode:>22}: {r['train']} train / {r['eval']} eval, setup {r['setup_s']:.1f} s, "
        f"{r['images_per_s']:.0f} train images/s, {r['eval_images_per_s']:.0f} eval images/s, "
        f"peak RSS {r['peak_kib'] / 1024:.0f} MiB (+{added:.0f} MiB over imports, "
        f"+{(r['setup_peak_kib'] - r['rss_before_kib']) / 1024:.0f} MiB after setup; "
        f"{r['image_mib']:.1f} MiB per decoded image, bounded cache peak {r['cache_peak_mib']:.1f} MiB)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 2000], help="capture sizes (default 200 2000)")
    parser.add_argument("--size", type=int, nargs=2, default=[684, 1024], help="image width height (default 684 1024)")
    parser.add_argument("--upscale", type=int, default=4, help="ray-cast at 1/N of --size and enlarge (default 4)")
    parser.add_argument("--cache-mib", type=float, default=256.0, help="cache bound of the bounded mode (MiB)")
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
    fixed_mib = per_image_mib = None  # from the last full-mode run: overhead and MiB per decoded image
    try:
        for frames in args.frames:
            start = time.perf_counter()
            data = generate(root / f"capture_{frames}", frames, size, args.upscale)
            print(
                f"{frames} frames at {size[0]}x{size[1]}: generated in {time.perf_counter() - start:.0f} s", flush=True
            )
            for cache_bytes in (0, int(args.cache_mib * 2**20)):
                mode = "full cache" if cache_bytes == 0 else f"cache-bytes {args.cache_mib:g} MiB"
                need = frames * size[0] * size[1] * 3 * 4 * 1.1
                if cache_bytes == 0 and need > 0.5 * _available_bytes():
                    free = _available_bytes() / 2**30
                    line = f"  {mode:>22}: not run (needs ~{need / 2**30:.1f} GiB, {free:.1f} GiB available)"
                    if per_image_mib is not None:
                        line += f"; predicted peak +{fixed_mib + frames * per_image_mib:.0f} MiB over imports"
                    print(line, flush=True)
                    continue
                command = [sys.executable, __file__, "--measure", str(data), str(cache_bytes), str(args.steps)]
                child = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                r = json.loads(child.stdout.strip().splitlines()[-1])
                _report(mode, r)
                if cache_bytes == 0:
                    per_image_mib = r["image_mib"]
                    fixed_mib = (r["peak_kib"] - r["rss_before_kib"]) / 1024 - frames * per_image_mib
            if args.keep is None:
                shutil.rmtree(data, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
