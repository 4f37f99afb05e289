"""``dynsplat-marbles``: Dynamic Gaussian Marbles (isotropic, per-frame translation) as a nerfstudio method."""

from __future__ import annotations

from dynsplat_ns.method_configs.common import dynsplat_trainer_config
from nerfstudio.plugins.types import MethodSpecification

from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion.marbles import MarblesMotionConfig

marbles_method = MethodSpecification(
    config=dynsplat_trainer_config("dynsplat-marbles", DynamicSplatModelConfig(motion=MarblesMotionConfig())),
    description="Dynamic Gaussian Marbles: isotropic Gaussians with per-frame translations (CPU and CUDA).",
)
