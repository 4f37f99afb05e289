"""Deblurring: a dynamic splat model trained on blurry images, each blur type a component behind one interface
(:mod:`dynsplat_ns.deblur.base`): camera shake (trajectories), object motion (exposure times), defocus."""

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, ViewCamera, VirtualViews
from dynsplat_ns.deblur.defocus import DefocusBlur, DefocusBlurConfig
from dynsplat_ns.deblur.exposure import ExposureTimes, ExposureTimesConfig
from dynsplat_ns.deblur.model import DeblurSplatModel, DeblurSplatModelConfig
from dynsplat_ns.deblur.trajectory import ExposureTrajectory, ExposureTrajectoryConfig

__all__ = [
    "BlurComponent",
    "BlurComponentConfig",
    "BlurStep",
    "DeblurSplatModel",
    "DeblurSplatModelConfig",
    "DefocusBlur",
    "DefocusBlurConfig",
    "ExposureTimes",
    "ExposureTimesConfig",
    "ExposureTrajectory",
    "ExposureTrajectoryConfig",
    "ViewCamera",
    "VirtualViews",
]
