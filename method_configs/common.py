"""Trainer, optimizer and datamanager defaults shared by every dynsplat method.

Nothing here is derived from another flag: the motion model's optimizer groups and every "auto" (None) step value are
derived from the final config when the run starts (:mod:`dynsplat_ns.training.trainer`).
"""

from __future__ import annotations

from typing import Any

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.schedules import DEFAULT_MAX_STEPS, RunLengthExponentialDecaySchedulerConfig
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig
from dynsplat_ns.training.pipeline import DynsplatPipelineConfig
from dynsplat_ns.training.trainer import DynsplatTrainerConfig

__all__ = ["DEFAULT_MAX_STEPS", "MEANS_LR", "DynsplatTrainerConfig", "dynsplat_trainer_config", "gaussian_optimizers"]

# Initial learning rate of the means. Splatfacto uses 1.6e-4 for SfM-initialised, unit-scaled scenes; 3DGS scales it
# by the scene extent (~5 for D-NeRF). Dynamic scenes start from random points, and short CPU schedules need the
# Gaussians to travel: measured on the generated 64 px scene (800 steps, static), 1.6e-4 → 22.9 dB, 1.6e-3 → 30.3 dB.
MEANS_LR = 1.6e-3


def gaussian_optimizers(max_steps: int | None = None) -> dict[str, dict[str, Any]]:
    """Splatfacto's per-Gaussian optimizers (3DGS rates; means see MEANS_LR), camera and bilateral grid.

    Args:
        max_steps: horizon of the learning-rate decays; None ("auto") lets the trainer use the run length.
    """

    def decay(lr_final: float, **kw: Any) -> RunLengthExponentialDecaySchedulerConfig:
        return RunLengthExponentialDecaySchedulerConfig(lr_final=lr_final, max_steps=max_steps, **kw)

    return {
        "means": {"optimizer": AdamOptimizerConfig(lr=MEANS_LR, eps=1e-15), "scheduler": decay(MEANS_LR * 0.01)},
        "features_dc": {"optimizer": AdamOptimizerConfig(lr=0.0025, eps=1e-15), "scheduler": None},
        "features_rest": {"optimizer": AdamOptimizerConfig(lr=0.0025 / 20, eps=1e-15), "scheduler": None},
        "opacities": {"optimizer": AdamOptimizerConfig(lr=0.05, eps=1e-15), "scheduler": None},
        "scales": {"optimizer": AdamOptimizerConfig(lr=0.005, eps=1e-15), "scheduler": None},
        "quats": {"optimizer": AdamOptimizerConfig(lr=0.001, eps=1e-15), "scheduler": None},
        "camera_opt": {
            "optimizer": AdamOptimizerConfig(lr=1e-4, eps=1e-15),
            "scheduler": decay(5e-7, warmup_steps=1000, lr_pre_warmup=0),
        },
        "bilateral_grid": {
            "optimizer": AdamOptimizerConfig(lr=2e-3, eps=1e-15),
            "scheduler": decay(1e-4, warmup_steps=1000, lr_pre_warmup=0),
        },
    }


def dynsplat_trainer_config(
    method_name: str, model: DynamicSplatModelConfig, max_steps: int = DEFAULT_MAX_STEPS
) -> DynsplatTrainerConfig:
    """A TrainerConfig for a dynsplat method: full-image datamanager over D-NeRF data by default, splatfacto's
    optimizer groups (the motion model's are added by the trainer, from the motion flags)."""
    return DynsplatTrainerConfig(
        method_name=method_name,
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=2000,
        steps_per_eval_all_images=1000,
        max_num_iterations=max_steps,
        mixed_precision=False,
        pipeline=DynsplatPipelineConfig(
            datamanager=DynsplatDatamanagerConfig(dataparser=DNeRFDataParserConfig(), cache_images_type="uint8"),
            model=model,
        ),
        optimizers=gaussian_optimizers(),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15, websocket_host="127.0.0.1"),
        vis="viewer",
    )
