"""``dynsplat-deblur-inspect``: what a ``dynsplat-deblur`` run thinks the blur of each training image was.

For each training image a PNG strip ``input | re-blurred prediction | sharp render`` (the re-blurred prediction is
what a training step compares with the input: the mean of the K virtual views, defocused when the run learned
defocus; the sharp render is the image's pose at its frame time, as evaluation renders), and one CSV row: image
name, time, exposure fraction of the frame interval, translation and rotation between the start and the end of the
exposure trajectory, focus distance and aperture (``c = aperture · |1/z − 1/focus|`` pixels), and the PSNR of the
re-blurred and of the sharp render against the input.

Example::

    dynsplat-deblur-inspect --load-config outputs/scene/dynsplat-deblur/RUN/config.yml --output-dir inspect/
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from dynsplat_ns.tools.runs import ToolError, load_config, load_pipeline, run_tool

#: Columns of ``blur.csv``.
COLUMNS = (
    "image",
    "index",
    "time",
    "exposure_fraction",
    "trajectory_translation",
    "trajectory_rotation_deg",
    "focus",
    "aperture",
    "reblurred_psnr",
    "sharp_psnr",
)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two images in [0, 1]."""
    mse = float((a - b).square().mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def blur_row(model, index: int, time: float) -> dict[str, float | str]:
    """The learned blur of training image ``index`` (at ``time``): exposure, trajectory extent, focus, aperture."""
    cfg = model.config
    row: dict[str, float | str] = {"exposure_fraction": "", "focus": "", "aperture": ""}
    if cfg.object_blur and not cfg.disable_motion and model.exposure.num_frames > 1:
        row["exposure_fraction"] = float(model.exposure.fraction(model.exposure.frame_index(time)).detach())
    start, end = model.trajectory.endpoints(index)
    delta = (end - start).detach()
    row["trajectory_translation"] = float(delta[:3].norm())
    row["trajectory_rotation_deg"] = math.degrees(float(delta[3:].norm()))
    if model.defocus is not None:
        row["focus"] = float(model.defocus.focus(index))
        row["aperture"] = float(model.defocus.aperture(index))
    return row


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.detach().clamp(0.0, 1.0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


@dataclass
class DeblurInspect:
    """Write, for each training image of a dynsplat-deblur run, input | re-blurred | sharp (PNG) and its learned blur
    (blur.csv)."""

    load_config: Path
    """Trained dynsplat-deblur run: its folder or its config.yml."""
    output_dir: Path = Path("deblur_inspect")
    """Folder for the PNG strips (one per training image) and blur.csv."""
    max_images: int | None = None
    """Only the first N training images (default: all)."""

    def check_run(self) -> None:
        """A clear error for a run that is not a deblur run (before the slow load)."""
        from dynsplat_ns.deblur.model import DeblurSplatModelConfig

        config = load_config(self.load_config)
        if not isinstance(config.pipeline.model, DeblurSplatModelConfig):
            raise ToolError(
                f"{self.load_config}: a {config.method_name} run, not dynsplat-deblur: it learned no blur to inspect "
                "(train with ns-train dynsplat-deblur)"
            )
        if self.max_images is not None and self.max_images < 1:
            raise ToolError(f"--max-images {self.max_images}: must be ≥ 1")

    def main(self) -> None:
        """Load the run, render every training image blurred and sharp, write the strips and the CSV."""
        from nerfstudio.data.datasets.base_dataset import InputDataset
        from PIL import Image

        from dynsplat_ns.training.pipeline import image_key

        self.check_run()
        _, pipeline, ckpt, step = load_pipeline(self.load_config, test_mode="inference")
        model = pipeline.model
        outputs = pipeline.datamanager.train_dataparser_outputs
        dataset = InputDataset(outputs)
        cameras = outputs.cameras.to(model.device)
        count = len(dataset) if self.max_images is None else min(len(dataset), self.max_images)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            camera = cameras[i : i + 1]
            camera.metadata = {"cam_idx": i}
            time = 0.0 if camera.times is None else float(camera.times.reshape(-1)[0])
            blurred = model.blurred_outputs(camera)["rgb"]
            with torch.no_grad():
                sharp_out = model.get_outputs(camera)
            sharp = sharp_out["rgb"]
            image = model.get_gt_img(dataset.get_image_float32(i))
            image = model.composite_with_background(image, sharp_out["background"])[..., :3]
            if image.shape[:2] != sharp.shape[:2]:
                raise ToolError(f"{outputs.image_filenames[i]}: image {tuple(image.shape[:2])} does not match the "
                                f"render {tuple(sharp.shape[:2])}")  # fmt: skip
            name = image_key(outputs.image_filenames[i])
            strip = torch.cat([image.to(sharp), blurred.to(sharp), sharp], dim=1)
            png = self.output_dir / f"{i:04d}_{name.replace('/', '_')}.png"
            Image.fromarray(to_uint8(strip)).save(png)
            row = {"image": name, "index": i, "time": time, **blur_row(model, i, time)}
            row["reblurred_psnr"] = psnr(blurred.to(image), image)
            row["sharp_psnr"] = psnr(sharp.to(image), image)
            rows.append(row)
        csv_path = self.output_dir / "blur.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        print(f"wrote {count} strips (input | re-blurred | sharp) and {csv_path} from {ckpt} (step {step})")


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``dynsplat-deblur-inspect``)."""
    cmd = tyro.cli(DeblurInspect, args=argv, description=__doc__.split("\n\n")[0])
    return run_tool(cmd.main)


def entrypoint() -> None:
    """``dynsplat-deblur-inspect`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
