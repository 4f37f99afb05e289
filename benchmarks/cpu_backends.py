"""CPU rasterizer backends end to end: the pure-torch backend vs the compiled one (``backend="cpp"``).

Two measurements, each backend in its own subprocess (so peak RSS is its own):

* ``viewer``: frames/s of inference-only renders at viewer size (512 x 512, 50k Gaussians of
  ``benchmarks/rasterizer.py``'s random scene, RGB, no gradients), median over a few frames after a warm-up.
* ``train-step``: seconds per training step of ``dynsplat-4dgs``, ``-som`` and ``-marbles`` (``--methods``; motion
  on from the first step) on a generated 160 px moving scene, pure torch (``DYNSPLAT_CPU_KERNELS=0``: torch
  rasterizer and HexPlane) vs the compiled kernels (rasterizer and HexPlane lookup), with its seed points replicated
  to about ``--gaussians`` Gaussians (default 30k) and densification off, so both backends train the same number of
  Gaussians; median wall and process CPU time of the timed steps after a warm-up. Also reports the ``rasterize``
  forward per step (its backward is inside ``loss.backward``).

Wall times on a shared machine are pessimistic (other processes take the cores); CPU times are the work done by
this process (with several threads: summed over them).

Usage::

    python benchmarks/cpu_backends.py viewer [--threads 1]
    python benchmarks/cpu_backends.py train-step [--threads 1] [--steps 20] [--gaussians 30000]
        [--methods 4dgs,som,marbles]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).parent))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def viewer_worker(backend: str, n: int, size: int, frames: int) -> dict:
    """Inference renders of one backend (in its own process)."""
    import torch
    from rasterizer import make_scene

    from dynsplat_ns.render import rasterize

    params, viewmats, ks = make_scene(n, size)
    times, cpu = [], []
    with torch.no_grad():
        rasterize(*params, viewmats, ks, size, size, backend=backend)  # warm-up (and the kernels' load)
        for _ in range(frames):
            t0, c0 = time.perf_counter(), time.process_time()
            rasterize(*params, viewmats, ks, size, size, backend=backend)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    wall = statistics.median(times)
    return {"backend": backend, "fps": 1.0 / wall, "wall_s": wall, "cpu_s": statistics.median(cpu),
            "peak_rss_mb": _peak_rss_mb()}


#: Methods of the train-step benchmark: their registered method configs.
METHODS = {
    "4dgs": "dynsplat_ns.method_configs.fourdgs:fourdgs_method",
    "som": "dynsplat_ns.method_configs.som:som_method",
    "marbles": "dynsplat_ns.method_configs.marbles:marbles_method",
}


def train_worker(backend: str, method: str, scene: Path, steps: int, warmup: int, gaussians: int) -> dict:
    """Training steps of one method with one backend (in its own process)."""
    import copy
    import dataclasses
    import importlib

    import torch
    from nerfstudio.data.datasets.base_dataset import InputDataset
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/quick_train.py
    from quick_train import quick_train

    import dynsplat_ns.models.dynamic_splat as dynamic_splat
    from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
    from dynsplat_ns.training.trainer import resolve_run_schedules

    total = warmup + steps
    module, name = METHODS[method].split(":")
    spec = getattr(importlib.import_module(module), name)
    config = copy.deepcopy(dataclasses.replace(spec.config, max_num_iterations=3000))
    cfg = config.pipeline.model
    cfg.rasterizer_backend = backend
    if hasattr(cfg.motion, "static_warmup_steps"):
        cfg.motion.static_warmup_steps = 0  # the motion model runs from the first step
    config, _ = resolve_run_schedules(config)
    cfg = config.pipeline.model
    cfg.stop_split_at = 0  # no densification: the same Gaussians for both backends
    parser = DNeRFDataParserConfig(data=scene).setup()
    out = parser.get_dataparser_outputs("train")
    dataset = InputDataset(out)
    images = [dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]
    xyz, rgb = out.metadata["points3D_xyz"], out.metadata["points3D_rgb"]
    gen = torch.Generator().manual_seed(0)
    reps = -(-gaussians // len(xyz))
    spread = (xyz.amax(0) - xyz.amin(0)).clamp(min=1e-3) * 0.01
    xyz = (xyz.repeat(reps, 1) + torch.randn(reps * len(xyz), 3, generator=gen) * spread)[:gaussians]
    rgb = rgb.repeat(reps, 1)[:gaussians]
    torch.manual_seed(0)
    model = cfg.setup(
        scene_box=out.scene_box, num_train_data=len(images), metadata=out.metadata, device="cpu",
        seed_points=(xyz, rgb),
    )
    raster_s = []
    original = dynamic_splat.rasterize

    def timed_rasterize(*args, **kwargs):
        t0 = time.perf_counter()
        result = original(*args, **kwargs)
        raster_s.append(time.perf_counter() - t0)
        return result

    dynamic_splat.rasterize = timed_rasterize
    stamps, cpu_stamps = [time.perf_counter()], [time.process_time()]

    def on_step(*_):
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    quick_train(model, out.cameras, images, total, config.optimizers, on_step=on_step)
    step_s = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)][warmup:]
    step_cpu = [b - a for a, b in zip(cpu_stamps[:-1], cpu_stamps[1:], strict=True)][warmup:]
    return {
        "backend": backend,
        "method": method,
        "step_s": statistics.median(step_s),
        "step_cpu_s": statistics.median(step_cpu),
        "raster_fwd_s": statistics.median(raster_s[warmup:]),
        "gaussians": model.num_points,
        "size": int(out.cameras.width[0]),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _subprocess(args: list[str], backend: str) -> dict:
    """One worker; the "torch" rows run with DYNSPLAT_CPU_KERNELS=0, i.e. without any compiled kernel (also not
    the compiled HexPlane lookup, which the "cpp" rows use whenever the kernels are available)."""
    env = {**os.environ, "DYNSPLAT_CPU_KERNELS": "0"} if backend == "torch" else None
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["viewer", "train-step"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's)")
    parser.add_argument("--backends", default="torch,cpp", help="comma-separated backends")
    parser.add_argument("--frames", type=int, default=5, help="viewer: timed frames")
    parser.add_argument("--steps", type=int, default=20, help="train-step: timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="train-step: untimed first steps")
    parser.add_argument("--gaussians", type=int, default=30_000, help="train-step: Gaussians trained")
    parser.add_argument("--methods", default="4dgs", help=f"train-step: comma-separated of {', '.join(METHODS)}")
    parser.add_argument("--size", type=int, default=None, help="image size (viewer 512, train-step 160)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.what == "viewer":
            result = viewer_worker(args.worker, 50_000, args.size or 512, args.frames)
        else:
            result = train_worker(args.worker, args.methods, args.scene, args.steps, args.warmup, args.gaussians)
        print(json.dumps({**result, "threads": torch.get_num_threads()}))
        return

    common = ["--threads", str(args.threads)] if args.threads else []
    print(f"# {args.what}: load average at start {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    if args.what == "viewer":
        print("| backend | frames/s | wall s / frame | CPU s / frame | peak RSS MB | threads |")
        print("|---|---|---|---|---|---|")
        for backend in args.backends.split(","):
            r = _subprocess([args.what, "--worker", backend, "--frames", str(args.frames), *common], backend)
            print(f"| {backend} | {r['fps']:.2f} | {r['wall_s']:.3f} | {r['cpu_s']:.3f} | {r['peak_rss_mb']:.0f} "
                  f"| {r['threads']} |", flush=True)
    else:
        from dynsplat_ns.scenes.dnerf import make_dnerf_scene

        with tempfile.TemporaryDirectory() as tmp:
            scene = make_dnerf_scene(Path(tmp) / "scene", size=args.size or 160, n_train=30, n_val=2, n_test=2)
            print("| method | backend | s / step (wall) | CPU s / step | rasterize fwd wall s / step | Gaussians | "
                  "image | peak RSS MB | threads | speed-up wall / CPU |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for method in args.methods.split(","):
                base = None
                for backend in args.backends.split(","):
                    r = _subprocess([
                        args.what, "--worker", backend, "--methods", method, "--scene", str(scene), "--steps",
                        str(args.steps), "--warmup", str(args.warmup), "--gaussians", str(args.gaussians), *common,
                    ], backend)
                    base = base or r
                    speed = f"{base['step_s'] / r['step_s']:.2f}x / {base['step_cpu_s'] / r['step_cpu_s']:.2f}x"
                    print(f"| {method} | {backend} | {r['step_s']:.3f} | {r['step_cpu_s']:.3f} | "
                          f"{r['raster_fwd_s']:.3f} | {r['gaussians']} | {r['size']} px | {r['peak_rss_mb']:.0f} | "
                          f"{r['threads']} | {speed} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
