"""Peak RSS of the dynsplat-eyeful dataparser on generated EyefulTower captures of growing size.

For each frame count, a capture is generated (``dynsplat_ns.scenes.eyeful``, one ``images-jpeg-1k`` folder at
EyefulTower's real 1k size, 684x1024 JPEGs; rendered small and enlarged so generation stays cheap), then a *fresh*
Python process imports nerfstudio and the parser, records its RSS, parses the train and test splits exactly as
``ns-train`` does (``get_dataparser_outputs``), and records its peak RSS (``ru_maxrss``). The parser reads image
headers only, so the peak must not grow with (frames x decoded image size); the decoded size that *would* be held is
printed for comparison.

Usage::

    python benchmarks/dataparsers_ram.py                 # 100 and 1000 frames
    python benchmarks/dataparsers_ram.py --frames 100 1000 3000 --keep /tmp/eyeful_bench
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
SIZE = (684, 1024)  # EyefulTower's images-jpeg-1k resolution
CAMERAS = 10  # rig cameras; positions = frames / CAMERAS


def _rss_kb() -> int:
    """Current resident set size in KiB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(data: Path) -> dict:
    """Child process: RSS before and after parsing ``data`` (train and test splits)."""
    from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig  # imports nerfstudio, torch

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_before = _rss_kb()
    start = time.perf_counter()
    parser = EyefulDataParserConfig(data=data).setup()
    counts = {split: len(parser.get_dataparser_outputs(split=split).image_filenames) for split in ("train", "test")}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"baseline_peak_kib": baseline, "rss_before_kib": rss_before, "peak_kib": peak,
            "rss_after_kib": _rss_kb(), "seconds": seconds, **counts}  # fmt: skip


def generate(out: Path, frames: int, upscale: int) -> Path:
    """An EyefulTower capture with ``frames`` images in one 684x1024 resolution folder."""
    from dynsplat_ns.scenes import eyeful as make_eyeful_scene

    positions = max(1, frames // CAMERAS)
    return make_eyeful_scene.make_eyeful_scene(
        out, n_positions=positions, n_cameras=CAMERAS, resolutions={"images-jpeg-1k": SIZE}, test_every=8,
        supersample=1, upscale=upscale, overwrite=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000], help="capture sizes (default 100 1000)")
    parser.add_argument("--upscale", type=int, default=16, help="render at 1/N of 684x1024 and enlarge (default 16)")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this folder and keep it")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="eyeful_ram_"))
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    for frames in args.frames:
        start = time.perf_counter()
        data = generate(root / f"capture_{frames}", frames, args.upscale)
        made = time.perf_counter() - start
        child = subprocess.run([sys.executable, __file__, "--measure", str(data)], env=env, capture_output=True,
                               text=True, check=True)  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        n = result["train"] + result["test"]
        decoded_mib = n * SIZE[0] * SIZE[1] * 3 / 2**20
        peak, base = result["peak_kib"] / 1024, result["baseline_peak_kib"] / 1024
        print(
            f"{n:5d} frames ({result['train']} train / {result['test']} test, generated in {made:.0f} s): "
            f"peak RSS {peak:.1f} MiB, after imports {base:.1f} MiB, parsing added {peak - base:.1f} MiB in "
            f"{result['seconds']:.2f} s (all images decoded as uint8 would be {decoded_mib:.0f} MiB)",
            flush=True,
        )
    if args.keep is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
