"""Deblurring: a dynamic splat model trained on motion-blurred images (camera trajectories, exposure times)."""

from dynsplat_ns.deblur.exposure import ExposureTimes
from dynsplat_ns.deblur.model import DeblurSplatModel, DeblurSplatModelConfig
from dynsplat_ns.deblur.trajectory import ExposureTrajectory

__all__ = ["DeblurSplatModel", "DeblurSplatModelConfig", "ExposureTimes", "ExposureTrajectory"]
