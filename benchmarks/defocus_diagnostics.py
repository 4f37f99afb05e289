"""Does a ``dynsplat-deblur`` run learn the lens its defocused training views were made with?

For a run on a generated D2RF scene (``dynsplat-make-scene d2rf --blur defocus``; its ``blur_gt.json`` holds each left
view's focus distance and the aperture), in the run's units (the dataparser's scale):

* the learned aperture against the true one and against its Gaussian equivalent: the generator blurs by a disc of
  radius ``r = aperture · |1/z − 1/focus|``, the model by a Gaussian of standard deviation ``c``; the Gaussian that
  matches a disc best has ``c ≈ 0.6 r`` (image-space check on these scenes: 46 dB against the disc), so a model that
  found the lens learns about 0.6 × the true aperture;
* the learned focus distance of each training view against the true one, and the error as pixels of circle of
  confusion at the true aperture;
* with ``--sharp-run`` (a ``dynsplat-som`` run on the same scene's sharp views): the representation ceiling, i.e. how
  well the sharp Gaussians grown by the *true* lens reproduce the defocused training images, against the sharp render
  itself and the deblur run's own fit.

Usage:
    python benchmarks/defocus_diagnostics.py RUN_DIR [--scene SCENE_DIR] [--sharp-run SOM_SHARP_RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

#: Standard deviation of the Gaussian that best matches a disc blur of radius 1 (see the module docstring).
DISC_TO_GAUSSIAN = 0.6


def lens_report(state: dict[str, torch.Tensor], truth: dict, names: list[str], scale: float) -> dict:
    """Learned against true lens of a run.

    Args:
        state: the run's model state (``_model.defocus.{focus_rel, ref_depth, coc_sq}``).
        truth: the scene's ``blur_gt.json``.
        names: training image names (``000000_left``, ...) in the run's image order.
        scale: the dataparser's scale (world units → run units).

    Returns:
        ``aperture`` (learned, pixel·depth in run units), ``aperture_true``, ``aperture_ratio`` (learned / true; a
        found lens is near :data:`DISC_TO_GAUSSIAN`), ``focus`` / ``focus_true`` per view, ``focus_corr`` and the mean
        / max focus error as circle-of-confusion pixels at the true aperture.
    """
    prefix = "_model.defocus."
    q, z0 = state[prefix + "focus_rel"].float(), state[prefix + "ref_depth"].float()
    b = state[prefix + "coc_sq"].float().clamp(min=0.0).sqrt()
    focus = z0 / q
    focus_true = torch.tensor([truth["views"][n]["focus_distance"] for n in names]) * scale
    aperture_true = float(truth["settings"]["aperture"]) * scale
    aperture = float((b * z0).mean())
    coc_error = (1.0 / focus - 1.0 / focus_true).abs() * aperture_true
    corr = torch.corrcoef(torch.stack([1.0 / focus, 1.0 / focus_true]))[0, 1] if len(names) > 1 else torch.tensor(1.0)
    return {
        "aperture": aperture, "aperture_true": aperture_true, "aperture_ratio": aperture / aperture_true,
        "focus": focus.tolist(), "focus_true": focus_true.tolist(), "focus_corr": float(corr),
        "coc_error_mean_px": float(coc_error.mean()), "coc_error_max_px": float(coc_error.max()),
    }  # fmt: skip


def load_run(run: Path) -> tuple[dict[str, torch.Tensor], float]:
    """(model state of the last checkpoint, dataparser scale) of an ns-train run folder."""
    ckpt = sorted((run / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["pipeline"]
    scale = json.loads((run / "dataparser_transforms.json").read_text())["scale"]
    return state, float(scale)


def run_data(run: Path) -> Path:
    """The ``--data`` folder a run was trained on (from its config.yml)."""
    import yaml

    datamanager = yaml.load((run / "config.yml").read_text(), Loader=yaml.Loader).pipeline.datamanager
    return Path(datamanager.data or datamanager.dataparser.data)


def ceiling(sharp_run: Path, scene: Path, deblur_run: Path | None, views: int = 6) -> list[str]:
    """PSNR against the defocused training images of: the sharp run's render, the same Gaussians grown by the true
    lens (``DISC_TO_GAUSSIAN`` × the true circle of confusion, capped as the generator caps it) and, with
    ``deblur_run``, the deblur run's own training prediction."""
    import numpy as np
    from nerfstudio.utils.eval_utils import eval_setup
    from PIL import Image

    from dynsplat_ns.deblur.growth import grow_in_view

    truth = json.loads((scene / "blur_gt.json").read_text())
    cap = float(truth["settings"].get("max_coc_px", math.inf))
    _, pipe, _, _ = eval_setup(sharp_run / "config.yml", test_mode="val")
    model, dataset = pipe.model, pipe.datamanager.train_dataset
    scale = json.loads((sharp_run / "dataparser_transforms.json").read_text())["scale"]
    names = [Path(f).stem for f in dataset._dataparser_outputs.image_filenames]
    deblur = None
    if deblur_run is not None:
        _, deblur_pipe, _, _ = eval_setup(deblur_run / "config.yml", test_mode="val")
        deblur = deblur_pipe.model
    rasterize_call = type(model)._rasterize_call
    lines = []
    for i in torch.linspace(0, len(names) - 1, views).round().long().tolist():
        view = truth["views"][names[i]]
        focus, aperture = view["focus_distance"] * scale, view["aperture"] * scale
        image = np.asarray(Image.open(scene / "images_bokeh" / f"{names[i]}.jpg"), dtype=np.float32) / 255.0
        target = torch.from_numpy(image)[..., :3]
        camera = dataset.cameras[i : i + 1].to(model.device)

        def variance(z: torch.Tensor, fx: torch.Tensor, aperture=aperture, focus=focus) -> torch.Tensor:
            zs = z.clamp(min=1e-2)
            radius = (aperture * (1.0 / zs - 1.0 / focus).abs()).clamp(max=cap)
            return (DISC_TO_GAUSSIAN * radius * zs / fx) ** 2

        def grown_call(self, g, scales, opacities, viewmats, Ks, W, H, *rest, variance=variance):
            s, o = grow_in_view(g["means"], g["quats"], g["scales"], opacities, viewmats[0], Ks[0], W, H,
                                lambda z: variance(z, Ks[0, 0, 0]))  # fmt: skip
            return rasterize_call(self, g, s, o, viewmats, Ks, W, H, *rest)

        with torch.no_grad():
            sharp = model.get_outputs(camera)["rgb"]
            model._rasterize_call = grown_call.__get__(model)
            try:
                grown = model.get_outputs(camera)["rgb"]
            finally:
                del model._rasterize_call
        row = f"  {names[i]}: sharp render {psnr(sharp, target):.2f}, grown by the true lens {psnr(grown, target):.2f}"
        if deblur is not None:
            cam = dataset.cameras[i : i + 1].to(deblur.device)
            cam.metadata = {"cam_idx": i}
            row += f", deblur run's training prediction {psnr(deblur.blurred_outputs(cam)['rgb'], target):.2f}"
        lines.append(row)
    return lines


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10.0 * torch.log10(((a.clamp(0, 1) - b.to(a)) ** 2).mean()))


def main(argv: list[str] | None = None) -> int:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="dynsplat-deblur run folder (holds config.yml)")
    ap.add_argument("--scene", type=Path, help="the generated scene (default: the run's --data)")
    ap.add_argument("--sharp-run", type=Path, help="dynsplat-som run on the scene's sharp views (ceiling check)")
    args = ap.parse_args(argv)
    scene = args.scene or run_data(args.run)
    truth_file = scene / "blur_gt.json"
    if not truth_file.is_file():
        print(f"error: {truth_file} not found: the diagnostics need a generated scene's ground truth", file=sys.stderr)
        return 2
    truth = json.loads(truth_file.read_text())
    state, scale = load_run(args.run)
    names = sorted(n for n in truth["views"] if n.endswith("_left"))
    if "_model.defocus.focus_rel" not in state:
        print(f"error: {args.run} was trained without defocus (no _model.defocus.* in its checkpoint)", file=sys.stderr)
        return 2
    r = lens_report(state, truth, names, scale)
    print(f"{args.run} (run units: world × {scale:.3f})")
    print(
        f"  aperture: learned {r['aperture']:.2f}, true {r['aperture_true']:.2f} pixel·depth "
        f"(ratio {r['aperture_ratio']:.2f}; a found lens is near {DISC_TO_GAUSSIAN}, the Gaussian match of a disc)"
    )
    print(f"  focus: correlation of 1/focus with the truth {r['focus_corr']:.3f}; error at the true aperture "
          f"{r['coc_error_mean_px']:.2f} px mean, {r['coc_error_max_px']:.2f} px max")  # fmt: skip
    print("  focus learned / true per view: "
          + " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(r["focus"], r["focus_true"], strict=True)))  # fmt: skip
    if args.sharp_run:
        print("  against the defocused training images:")
        for line in ceiling(args.sharp_run, scene, args.run):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
