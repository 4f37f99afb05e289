"""Rays of the camera models the dataparsers read (pinhole, OpenCV radial-tangential, fisheye), for the generators.

The generators render through the same distortion the dataset's camera files describe, so a parser that maps the
distortion wrongly puts known points in the wrong pixels (tests/dataparsers/).
"""

from __future__ import annotations

import numpy as np


def _pixel_grid(width: int, height: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates ``(u, v)`` each ``[H, W, k*k]`` (pixel centres at +0.5, nerfstudio's cx, cy)."""
    k = int(supersample)
    offs = (np.arange(k) + 0.5) / k
    u = (np.arange(width)[:, None] + offs[None, :]).reshape(-1)
    v = (np.arange(height)[:, None] + offs[None, :]).reshape(-1)
    uu, vv = np.meshgrid(u, v, indexing="xy")
    shape = (height, k, width, k)
    return tuple(a.reshape(shape).transpose(0, 2, 1, 3).reshape(height, width, k * k) for a in (uu, vv))


def _undistort_fisheye(xd: np.ndarray, yd: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV fisheye: distorted normalised coordinates → unit ray directions in OpenCV camera axes (x, y, z)."""
    theta_d = np.hypot(xd, yd)
    theta = theta_d.copy()
    for _ in range(30):  # Newton on theta * (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸) = theta_d
        t2 = theta * theta
        poly = 1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))
        dpoly = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
        theta = theta - (theta * poly - theta_d) / dpoly
    scale = np.where(theta_d > 1e-12, np.sin(theta) / np.maximum(theta_d, 1e-12), 1.0)
    return np.stack([xd * scale, yd * scale, np.cos(theta)], axis=-1), theta


def _undistort_brown(xd: np.ndarray, yd: np.ndarray, k: np.ndarray) -> np.ndarray:
    """OpenCV radial-tangential (k1, k2, p1, p2, k3): distorted normalised coords → unit rays ``[..., 3]``."""
    k1, k2, p1, p2, k3 = k
    x, y = xd.copy(), yd.copy()
    for _ in range(40):  # fixed point: x = (xd - tangential) / radial
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    dirs = np.stack([x, y, np.ones_like(x)], axis=-1)
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def model_rays(
    c2w: np.ndarray, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
    model: str = "PINHOLE", params: tuple[float, ...] = (), supersample: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """World rays of a camera with nerfstudio-style intrinsics and an OpenCV lens model.

    Args:
        c2w: OpenGL camera-to-world ``[4, 4]`` (or ``[3, 4]``).
        width: Image width in pixels.
        height: Image height in pixels.
        fx: Focal length x in pixels.
        fy: Focal length y in pixels.
        cx: Principal point x (nerfstudio convention: the image centre is ``width / 2``).
        cy: Principal point y.
        model: ``"PINHOLE"``, ``"OPENCV"`` (params k1, k2, p1, p2[, k3]) or ``"OPENCV_FISHEYE"`` (k1..k4).
        params: Distortion parameters of ``model``.
        supersample: ``k`` → ``k×k`` samples per pixel.

    Returns:
        ``(origin [3], directions [H, W, k*k, 3], valid [H, W, k*k])``; ``valid`` is False where a fisheye ray
        would point behind the camera.
    """
    u, v = _pixel_grid(width, height, supersample)
    xd, yd = (u - cx) / fx, (v - cy) / fy
    valid = np.ones(xd.shape, dtype=bool)
    if model == "OPENCV_FISHEYE":
        dirs_cv, theta = _undistort_fisheye(xd, yd, np.asarray(list(params) + [0.0] * 4, dtype=np.float64)[:4])
        valid = theta < np.pi / 2 - 1e-3
    elif model == "OPENCV":
        dirs_cv = _undistort_brown(xd, yd, np.asarray(list(params) + [0.0] * 5, dtype=np.float64)[:5])
    elif model == "PINHOLE":
        dirs_cv = np.stack([xd, yd, np.ones_like(xd)], axis=-1)
        dirs_cv /= np.linalg.norm(dirs_cv, axis=-1, keepdims=True)
    else:
        raise ValueError(f"unknown camera model {model!r}")
    c2w = np.asarray(c2w, dtype=np.float64)
    rot_cv = c2w[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # OpenGL camera axes → OpenCV camera axes
    return c2w[:3, 3].copy(), dirs_cv @ rot_cv.T, valid
