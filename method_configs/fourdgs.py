"""``dynsplat-4dgs``: 4D Gaussian splatting (HexPlane + MLP deformation) as a nerfstudio method."""

from __future__ import annotations

from nerfstudio.plugins.types import MethodSpecification

from dynsplat_ns.method_configs.common import dynsplat_trainer_config
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion.hexplane import HexPlaneMotionConfig

fourdgs_method = MethodSpecification(
    config=dynsplat_trainer_config("dynsplat-4dgs", DynamicSplatModelConfig(motion=HexPlaneMotionConfig())),
    description="4D Gaussian splatting: HexPlane space-time features + MLP deformation (CPU and CUDA).",
)
