"""Motion models: small swappable components that move canonical Gaussians to time t (identity at init)."""

from dynsplat_ns.motion.base import MotionModel, MotionModelConfig
from dynsplat_ns.motion.hexplane import HexPlaneMotion, HexPlaneMotionConfig
from dynsplat_ns.motion.marbles import MarblesMotion, MarblesMotionConfig
from dynsplat_ns.motion.som import ShapeOfMotion, ShapeOfMotionConfig
from dynsplat_ns.motion.static import StaticMotion, StaticMotionConfig

__all__ = [
    "MotionModel",
    "MotionModelConfig",
    "StaticMotion",
    "StaticMotionConfig",
    "HexPlaneMotion",
    "HexPlaneMotionConfig",
    "ShapeOfMotion",
    "ShapeOfMotionConfig",
    "MarblesMotion",
    "MarblesMotionConfig",
]
