"""``dynsplat-som``: Shape-of-Motion SE(3) motion bases as a nerfstudio method."""

from __future__ import annotations

from nerfstudio.plugins.types import MethodSpecification

from dynsplat_ns.method_configs.common import dynsplat_trainer_config
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion.som import ShapeOfMotionConfig

som_method = MethodSpecification(
    config=dynsplat_trainer_config("dynsplat-som", DynamicSplatModelConfig(motion=ShapeOfMotionConfig())),
    description="Shape of Motion: K global SE(3) motion bases blended per Gaussian (CPU and CUDA).",
)
