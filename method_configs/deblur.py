"""``dynsplat-deblur``: dynamic Gaussian splatting from motion-blurred video (camera shake and object motion during
the exposure; Shape-of-Motion bases, as Deblur4DGS) as a nerfstudio method."""

from __future__ import annotations

from nerfstudio.plugins.types import MethodSpecification

from dynsplat_ns.deblur.model import DeblurSplatModelConfig
from dynsplat_ns.method_configs.common import dynsplat_trainer_config
from dynsplat_ns.motion.som import ShapeOfMotionConfig

deblur_method = MethodSpecification(
    config=dynsplat_trainer_config("dynsplat-deblur", DeblurSplatModelConfig(motion=ShapeOfMotionConfig())),
    description="Deblurring dynamic splats: per-image exposure trajectories and per-frame exposure times over "
    "Shape-of-Motion bases; renders sharp (CPU and CUDA).",
)
