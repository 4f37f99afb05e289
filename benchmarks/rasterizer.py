"""CPU benchmark of the torch rasterizer backend against the naive dense reference.

Prints a markdown table: for each (N Gaussians, image size) the forward+backward time of the torch backend (median
of a few runs after a warm-up), its work counts and composited (Gaussian, pixel) pairs/s, its peak RSS, and the same
for the compiled CPU backend (``backend="cpp"``, same pair counts; its ratio to the torch backend) and the dense
reference with the speed-up. Every (config, renderer) runs in a fresh subprocess, so peak RSS is per
config (``import torch`` alone accounts for ~0.5 GB of it on this machine; the table also shows the increase over
that).

Counts: ``grid cells`` are the (pixel, slot) grid cells the torch backend evaluated, ``skipped`` the (block, Gaussian)
intersections it never evaluated because every pixel of the block had already stopped, ``composited pairs`` the
(Gaussian, pixel) pairs that get weight (alpha >= 1/255, in front of the early stop at T <= 1e-4; a property of the
scene, not of the implementation). ``pairs/s`` = composited pairs / fwd+bwd wall seconds. ``CPU s`` is the process CPU
time of the same runs (all threads): on a shared, busy machine it is the steadier number (with ``--threads 1`` it is
what the wall time would be on an idle core). The dense reference evaluates every visible Gaussian against every
pixel; when that would take too long it is timed on a subset of the pixels and extrapolated linearly (marked in the
table).

Usage::

    python benchmarks/rasterizer.py            # full sweep: N in {1k, 10k, 50k} x {64^2, 128^2}
    python benchmarks/rasterizer.py --quick    # smaller sweep
    python benchmarks/rasterizer.py --threads 1  # one torch thread per worker (robust on a busy machine)
    python benchmarks/rasterizer.py --quick --no-dense --block-size 4 --chunk-size 32  # other BlockOptions
    python benchmarks/rasterizer.py --no-cpp   # without the compiled CPU backend's columns (backend="cpp")
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

FULL = [(1_000, 64), (1_000, 128), (10_000, 64), (10_000, 128), (50_000, 64), (50_000, 128)]
QUICK = [(1_000, 64), (10_000, 64), (10_000, 128)]
DENSE_CELL_BUDGET = 60_000_000  # Gaussians x pixels the dense reference runs in full; beyond, a pixel subset


def make_scene(n: int, size: int, seed: int = 0):
    """Random Gaussians filling the frustum of one camera at depths 2..5, ~1 px screen std (radius ~4 px)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    focal = float(size)  # 53 degree field of view
    depth = torch.rand(n, generator=gen) * 3.0 + 2.0
    x = (torch.rand(n, generator=gen) - 0.5) * depth * size / focal
    y = (torch.rand(n, generator=gen) - 0.5) * depth * size / focal
    means = torch.stack([x, y, depth], dim=-1)
    scales = (torch.rand(n, 3, generator=gen) * 0.8 + 0.6) * depth[:, None] / focal  # 0.6..1.4 px per axis
    quats = torch.randn(n, 4, generator=gen)
    opacities = torch.rand(n, generator=gen) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=gen)
    viewmats = torch.eye(4)[None]
    ks = torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]])
    return [means, quats, scales, opacities, colors], viewmats, ks


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(renderer: str, n: int, size: int, repeats: int, threads: int | None, options: dict | None = None) -> dict:
    """Time fwd+bwd of one renderer on one config (runs inside its own subprocess).

    ``options`` are :class:`dynsplat_ns.render.BlockOptions` fields for the torch backend (defaults where absent).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)

    from dynsplat_ns.render import BlockOptions, RasterSettings, rasterize
    from dynsplat_ns.render.dense_reference import dense_composite_pixels
    from dynsplat_ns.render.projection import project_gaussians
    from dynsplat_ns.render.torch_backend import rasterize_torch

    baseline_mb = _peak_rss_mb()  # after importing torch (which alone maps ~0.5 GB here)
    params, viewmats, ks = make_scene(n, size)
    params = [p.requires_grad_(True) for p in params]
    n_pix = size * size
    out: dict = {"renderer": renderer, "n": n, "size": size, "threads": torch.get_num_threads()}

    if renderer == "cpp":  # the compiled CPU backend (built on first use; the build is not timed)
        from dynsplat_ns.kernels.cpu import load_cpu_kernels

        if load_cpu_kernels() is None:
            raise RuntimeError("compiled CPU kernels unavailable")

        def step():
            render, alpha, _ = rasterize(*params, viewmats, ks, size, size, backend="cpp")
            (render.sum() + alpha.sum()).backward()

        scale = 1.0
    elif renderer == "torch":
        torch_options = BlockOptions(**(options or {}))
        stats: dict = {}
        settings = RasterSettings(width=size, height=size, backend="torch", torch_options=torch_options)
        rasterize_torch(*params, viewmats, ks, settings=settings, stats=stats)
        out.update(stats)

        def step():
            render, alpha, _ = rasterize(
                *params, viewmats, ks, size, size, backend="torch", torch_options=torch_options
            )
            (render.sum() + alpha.sum()).backward()

        scale = 1.0
    else:
        chunk = max(16, 1_000_000 // n)  # pixels per checkpointed chunk: ~1M grid cells at a time
        n_sub = n_pix if n * n_pix <= DENSE_CELL_BUDGET else max(chunk, DENSE_CELL_BUDGET // n // chunk * chunk)
        n_sub = min(n_sub, n_pix)
        scale = n_pix / n_sub
        out.update(dense_pixels=n_sub, dense_cells=n * n_pix)

        def step():
            # Dense, chunked over pixels: each chunk runs forward and backward at once into detached screen-space
            # leaves (so memory holds one [Gaussians, chunk] grid), then one backward through the projection.
            means, quats, scales, opacities, colors = params
            proj = project_gaussians(means, quats, scales, viewmats, ks, size, size)
            means2d = proj.means2d[0].detach().requires_grad_(True)
            conics = proj.conics[0].detach().requires_grad_(True)
            for start in range(0, n_sub, chunk):
                ids = torch.arange(start, min(start + chunk, n_sub))
                colour, trans = dense_composite_pixels(
                    means2d, conics, opacities, colors, proj.depths[0], proj.radii[0], size, ids
                )
                (colour.sum() + (1.0 - trans).sum()).backward()
            torch.autograd.backward([proj.means2d[0], proj.conics[0]], [means2d.grad, conics.grad])

    step()  # warm-up
    times, cpu_times = [], []
    for _ in range(repeats):
        for p in params:
            p.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    out.update(
        seconds=statistics.median(times) * scale,
        cpu_seconds=statistics.median(cpu_times) * scale,
        runs=repeats,
        peak_rss_mb=_peak_rss_mb(),
        base_mb=baseline_mb,
    )
    return out


def run_in_subprocess(
    renderer: str, n: int, size: int, repeats: int, threads: int | None, options: dict | None = None
) -> dict:
    cmd = [sys.executable, __file__, "--worker", renderer, "--n", str(n), "--size", str(size)]
    cmd += ["--repeats", str(repeats)] + (["--threads", str(threads)] if threads else [])
    cmd += ["--options-json", json.dumps(options or {})]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({renderer}, N={n}, {size}^2):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_count(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def _fmt_rss(result: dict) -> str:
    return f"{result['peak_rss_mb']:.0f} (+{result['peak_rss_mb'] - result['base_mb']:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweep")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per config (median)")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense reference")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's)")
    parser.add_argument("--block-size", type=int, default=None, help="BlockOptions.block_size of the torch backend")
    parser.add_argument("--chunk-size", type=int, default=None, help="BlockOptions.chunk_size of the torch backend")
    parser.add_argument("--cell-budget", type=int, default=None, help="BlockOptions.cell_budget of the torch backend")
    parser.add_argument("--options-json", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--no-cpp", action="store_true", help="skip the compiled CPU backend (backend='cpp')")
    parser.add_argument("--worker", choices=["torch", "dense", "cpp"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        options = json.loads(args.options_json)
        print(json.dumps(worker(args.worker, args.n, args.size, args.repeats, args.threads, options)))
        return

    chosen = {"block_size": args.block_size, "chunk_size": args.chunk_size, "cell_budget": args.cell_budget}
    options = {key: value for key, value in chosen.items() if value is not None}

    configs = QUICK if args.quick else FULL
    repeats = args.repeats or (3 if args.quick else 5)
    load = os.getloadavg()[0]
    print(f"# Rasterizer benchmark (CPU, fwd+bwd, median of {repeats} runs after a warm-up)")
    print(f"load average at start: {load:.2f}; python {sys.version.split()[0]}")
    print(f"torch backend options: {options or 'defaults'}\n")
    use_cpp = not args.no_cpp
    if use_cpp:  # build (or load) the compiled kernels once, outside the timed workers
        from dynsplat_ns.kernels.cpu import load_cpu_kernels

        use_cpp = load_cpu_kernels() is not None
    header = (
        "| N | image | grid cells | skipped | composited pairs | torch fwd+bwd wall s | torch CPU s "
        "| pairs/s (wall) | torch peak RSS MB (+ over import) | cpp fwd+bwd wall s | cpp CPU s | cpp pairs/s (wall) "
        "| cpp peak RSS MB (+ over import) | cpp vs torch wall / CPU "
        "| dense fwd+bwd wall s | dense CPU s | dense peak RSS MB | speed-up wall / CPU |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for n, size in configs:
        t = run_in_subprocess("torch", n, size, repeats, args.threads, options)
        cpp_cols = ["-"] * 5
        if use_cpp:
            c = run_in_subprocess("cpp", n, size, repeats, args.threads)
            cpp_cols = [
                f"{c['seconds']:.3f}",
                f"{c['cpu_seconds']:.3f}",
                f"{t['n_composited'] / c['seconds'] / 1e6:.1f} M",
                _fmt_rss(c),
                f"{t['seconds'] / c['seconds']:.1f}x / {t['cpu_seconds'] / c['cpu_seconds']:.1f}x",
            ]
        dense_cols = ["-", "-", "-", "-"]
        if not args.no_dense:
            d = run_in_subprocess("dense", n, size, max(1, min(repeats, 3)), args.threads)
            partial = d["dense_pixels"] < size * size
            note = f" (extrapolated from {d['dense_pixels']} of {size * size} px)" if partial else ""
            dense_cols = [
                f"{d['seconds']:.3f}{note}",
                f"{d['cpu_seconds']:.3f}",
                _fmt_rss(d),
                f"{d['seconds'] / t['seconds']:.0f}x / {d['cpu_seconds'] / t['cpu_seconds']:.0f}x",
            ]
        row = [
            f"{n:,}",
            f"{size}x{size}",
            _fmt_count(t["n_cells"]),
            f"{t['n_skipped']:,}",
            _fmt_count(t["n_composited"]),
            f"{t['seconds']:.3f}",
            f"{t['cpu_seconds']:.3f}",
            f"{t['n_composited'] / t['seconds'] / 1e6:.1f} M",
            _fmt_rss(t),
            *cpp_cols,
            *dense_cols,
        ]
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"\nthreads per worker: {t['threads']}; load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
