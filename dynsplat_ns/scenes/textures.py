"""Albedo textures of the synthetic scenes: a checkerboard on the slab and a longitude/latitude checker on spheres."""

from __future__ import annotations

import numpy as np


def slab_checker(contrast: float, period: float, points: np.ndarray) -> np.ndarray:
    """Albedo factor ``[..., 1]`` of a checkerboard of ``period``-wide squares at ``points`` ``[..., 3]`` (x, y):
    1 or ``1 - contrast``."""
    cells = np.floor(points[..., 0] / period) + np.floor(points[..., 1] / period)
    dark = np.mod(cells, 2.0) == 1.0
    return np.where(dark, 1.0 - contrast, 1.0)[..., None]


def sphere_checker(contrast: float, normal: np.ndarray) -> np.ndarray:
    """Albedo factor ``[..., 1]`` of an 8 × 4 longitude/latitude checker at unit ``normal`` ``[..., 3]``."""
    lon = np.floor((np.arctan2(normal[..., 1], normal[..., 0]) + np.pi) / (np.pi / 4))
    lat = np.floor((np.arcsin(np.clip(normal[..., 2], -1.0, 1.0)) + np.pi / 2) / (np.pi / 4))
    return np.where(np.mod(lon + lat, 2.0) == 1.0, 1.0 - contrast, 1.0)[..., None]
