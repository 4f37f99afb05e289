"""Scene seeds: the standard scenes with their spheres drawn from a seed, so settings are tuned on some scenes and
reported on others."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .synthetic import Scene


def vary_scene(scene: Scene, seed: int) -> Scene:
    """``scene`` with its spheres drawn from ``seed`` (scene seeds for tuning and reporting on different scenes): each
    sphere's rest position moves by up to ±0.15 in x and y, its motion gets a random phase and 0.7–1.2× its
    amplitudes, and its colour moves by up to ±0.1 per channel. The box and lighting stay; every sphere stays inside
    ``[-1.5, 1.5]^3`` for spheres of the default scenes."""
    rng = np.random.default_rng([seed, 7])
    spheres = []
    for sphere in scene.spheres:
        base = np.asarray(sphere.base) + np.array([*rng.uniform(-0.15, 0.15, 2), 0.0])
        gain = rng.uniform(0.7, 1.2)
        color = np.clip(np.asarray(sphere.color) + rng.uniform(-0.1, 0.1, 3), 0.05, 1.0)
        spheres.append(replace(
            sphere, base=tuple(base.tolist()), phase=float(sphere.phase + rng.uniform(0.0, 2.0 * math.pi)),
            amp_cos=tuple((gain * np.asarray(sphere.amp_cos)).tolist()),
            amp_sin=tuple((gain * np.asarray(sphere.amp_sin)).tolist()), color=tuple(color.tolist()),
        ))  # fmt: skip
    return replace(scene, spheres=tuple(spheres))
