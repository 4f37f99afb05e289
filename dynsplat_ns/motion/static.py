"""The static 'motion' model: canonical Gaussians at every time (a splatfacto baseline inside our model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dynsplat_ns.motion.base import MotionModel, MotionModelConfig


@dataclass
class StaticMotionConfig(MotionModelConfig):
    """No motion: every time renders the canonical Gaussians."""

    _target: type = field(default_factory=lambda: StaticMotion)
    """Motion model class to instantiate."""
    choice_name: ClassVar[str] = "static"


class StaticMotion(MotionModel):
    """Identity motion model."""

    config: StaticMotionConfig
