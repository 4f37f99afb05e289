"""What a trained dynamic run's motion looks like: Gaussians, basis use, coefficient entropy, worst test times.

Reads a run folder (or its config.yml) written by ``ns-train`` (e.g. a ``dynsplat-sweep`` cell's ``ns/.../run``) and,
when an ``eval.json`` from ``ns-eval`` is given or found two folders up (a sweep cell), its per-time PSNR.

* every method: Gaussian count, opacity quantiles, scale quantiles (world units);
* ``som``: per basis, the share of Gaussians whose largest weight is that basis, the total weight, how far the basis
  travels (translation range) and turns (largest rotation angle from its mean); mean coefficient entropy in bits
  (0: each Gaussian follows one basis; log2 K: all bases alike) and mean largest weight;
* ``marbles``: offset magnitudes; ``hexplane``: Δmean magnitudes at a few times.

Usage:
    python benchmarks/motion_diagnostics.py RUN_DIR [--eval-json EVAL.json] [--worst 5]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch


def quantiles(x: torch.Tensor, qs=(0.1, 0.5, 0.9)) -> str:
    """'q10 / q50 / q90' of a 1D tensor."""
    x = x.reshape(-1).float()
    return " / ".join(f"{float(torch.quantile(x, q)):.3g}" for q in qs)


def som_report(model) -> list[str]:
    """Basis use and coefficient statistics of a Shape-of-Motion model."""
    motion = model.motion
    weights = torch.softmax(model.gauss_params["motion_coefs"].detach(), dim=-1)  # [N, K]
    k = weights.shape[1]
    entropy = -(weights.clamp_min(1e-12) * weights.clamp_min(1e-12).log2()).sum(-1)
    arg = weights.argmax(-1)
    from dynsplat_ns.rotations import rot6d_to_matrix

    rots = rot6d_to_matrix(motion.rots.detach())  # [K, T, 3, 3]
    mean_rot = rot6d_to_matrix(motion.rots.detach().mean(1))  # [K, 3, 3]
    rel = mean_rot[:, None].transpose(-1, -2) @ rots
    angles = torch.rad2deg(torch.arccos(((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)))
    transl = motion.transls.detach()
    lines = [
        f"coefficient entropy (bits, max {math.log2(k):.2f}): mean {float(entropy.mean()):.2f}; "
        f"largest weight q10/q50/q90 {quantiles(weights.max(-1).values)}",
        "basis | argmax share | weight share | translation range | max turn (deg)",
    ]
    for j in range(k):
        span = (transl[j].max(0).values - transl[j].min(0).values).norm()
        lines.append(
            f"{j:5d} | {float((arg == j).float().mean()):.3f} | {float(weights[:, j].mean()):.3f} | "
            f"{float(span):.3f} | {float(angles[j].max()):.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--eval-json", type=Path, default=None)
    parser.add_argument("--worst", type=int, default=5)
    args = parser.parse_args()

    from dynsplat_ns.tools.runs import load_pipeline

    _, pipeline, _, step = load_pipeline(args.run)
    model = pipeline.model
    g = model.gauss_params
    print(f"step {step}: {model.num_points} Gaussians; motion {type(model.motion).__name__}")
    print(f"opacity q10/q50/q90 {quantiles(torch.sigmoid(g['opacities'].detach()))}")
    print(f"largest scale q10/q50/q90 {quantiles(torch.exp(g['scales'].detach()).max(-1).values)}")
    if "motion_coefs" in g:
        print("\n".join(som_report(model)))
    if "marble_offsets" in g:
        offsets = g["marble_offsets"].detach()
        print(f"offset magnitude q10/q50/q90 {quantiles(offsets.norm(dim=-1))}")
    eval_json = args.eval_json
    if eval_json is None:
        run_dir = args.run if args.run.is_dir() else args.run.parent
        candidates = [p / "eval.json" for p in run_dir.parents][:6]
        eval_json = next((p for p in candidates if p.is_file()), None)
    if eval_json is not None:
        per_time = json.loads(eval_json.read_text())["results"].get("per_time", {})
        worst = sorted(per_time.items(), key=lambda kv: kv[1].get("psnr", 0.0))[: args.worst]
        print(f"worst test times ({eval_json}): " + ", ".join(f"t={t} {v['psnr']:.2f} dB" for t, v in worst))
        values = [v["psnr"] for v in per_time.values() if "psnr" in v]
        if values:
            print(f"per-time PSNR min/median/max {min(values):.2f} / {sorted(values)[len(values) // 2]:.2f} / "
                  f"{max(values):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
