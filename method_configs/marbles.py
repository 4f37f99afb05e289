"""``dynsplat-marbles``: Dynamic Gaussian Marbles (isotropic, per-frame translation) as a nerfstudio method."""

from __future__ import annotations

from nerfstudio.plugins.types import MethodSpecification

from dynsplat_ns.method_configs.common import dynsplat_trainer_config
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion.marbles import MarblesMotionConfig

marbles_method = MethodSpecification(
    # View-independent colour (SH degree 0), as the reference implementation: a frame is seen from one view only, and
    # higher SH bands let each view's colour absorb what its offsets get wrong. Issue 11's scene (160 px, 3000 steps):
    # test PSNR 27.26 dB at SH degree 3 → 28.27 at 0 (velocity weight 200), 29.29 with velocity weight 1000.
    config=dynsplat_trainer_config(
        "dynsplat-marbles", DynamicSplatModelConfig(motion=MarblesMotionConfig(), sh_degree=0)
    ),
    description="Dynamic Gaussian Marbles: isotropic Gaussians with per-frame translations (CPU and CUDA).",
)
