"""Pipeline that reports what dynsplat evaluations need (LPIPS as null when unavailable, Gaussian count)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Type

from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig

from dynsplat_ns.compat import allow_nerfstudio_checkpoints
from dynsplat_ns.video import ensure_ffmpeg

# ns-eval/ns-render/ns-export import this module (through config.yml) before loading a checkpoint or writing video.
allow_nerfstudio_checkpoints()
ensure_ffmpeg()


@dataclass
class DynsplatPipelineConfig(VanillaPipelineConfig):
    """nerfstudio's vanilla pipeline with dynsplat's evaluation summary."""

    _target: Type = field(default_factory=lambda: DynsplatPipeline)
    """Pipeline class to instantiate."""


class DynsplatPipeline(VanillaPipeline):
    """VanillaPipeline whose averaged eval metrics always carry ``lpips`` (null without weights) and the Gaussian
    count, so ``ns-eval`` JSON has one shape on every machine."""

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ):
        metrics = super().get_average_eval_image_metrics(step=step, output_path=output_path, get_std=get_std)
        lpips = getattr(self.model, "lpips", None)
        if "lpips" not in metrics:
            metrics["lpips"] = None
            hint = getattr(lpips, "hint", None)
            if hint:
                metrics["lpips_hint"] = hint
        if hasattr(self.model, "num_points"):
            metrics["gaussian_count"] = int(self.model.num_points)
        return metrics
