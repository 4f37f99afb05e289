"""What a dataset format hands to the shared base: :class:`SceneFrames`, plus the geometry helpers the base applies.

A format reader (LLFF, D2RF, EyefulTower, ...) only says how to read its files: it returns every frame of the capture
(image, camera-to-world, intrinsics for a declared image size, optional time, bounds, masks, depth) and the split the
dataset's authors intended. :mod:`.outputs` turns that into nerfstudio's ``DataparserOutputs`` once for all formats:
camera axes to OpenGL, nerfstudio's orientation/centering, scale, split policy, image checks, seed points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from nerfstudio.cameras.cameras import CameraType

#: Split names nerfstudio asks a dataparser for.
SPLITS = ("train", "val", "test")
#: Flip of the camera y and z axes: OpenCV (x right, y down, z forward) <-> OpenGL (x right, y up, z back).
CV_TO_GL = np.diag([1.0, -1.0, -1.0])


@dataclass
class SceneFrames:
    """Every frame of one capture, as its format reads it (dataset units and world, before any split is taken).

    Per-frame arrays have length ``N`` (the number of frames, in the format's own order). Intrinsics refer to an image
    of the declared ``width`` x ``height``; the base rescales them to the size the image files really have (e.g.
    LLFF's ``poses_bounds.npy`` describes the full-resolution photos while ``images_4/`` holds quarter-size ones).
    """

    image_filenames: list[Path]
    """Image file of each frame (``[N]``)."""
    c2w: np.ndarray
    """Camera-to-world matrices ``[N, 3, 4]`` (or ``[N, 4, 4]``) in dataset units, in ``convention``."""
    fx: np.ndarray
    """Focal lengths in pixels ``[N]`` (for the declared size)."""
    fy: np.ndarray
    """Focal lengths in pixels ``[N]``."""
    cx: np.ndarray
    """Principal points in pixels ``[N]``."""
    cy: np.ndarray
    """Principal points in pixels ``[N]``."""
    width: np.ndarray
    """Declared image widths ``[N]`` (the size the intrinsics refer to)."""
    height: np.ndarray
    """Declared image heights ``[N]``."""
    splits: dict[str, list[int]]
    """The format's own split: frame indices for ``train`` and ``test`` (``val`` optional; it defaults to test)."""
    split_source: Path
    """File or folder that defines the split (named when a split is empty)."""
    pose_source: Path
    """File the poses come from (named in pose and size errors)."""
    convention: Literal["opengl", "opencv"] = "opengl"
    """Camera axes of ``c2w``: OpenGL (x right, y up, z back) or OpenCV/COLMAP (x right, y down, z forward)."""
    camera_type: CameraType = CameraType.PERSPECTIVE
    """nerfstudio camera type of every frame (FISHEYE for OPENCV_FISHEYE)."""
    fov_x: np.ndarray | None = None
    """Horizontal field of view ``[N]`` in radians (Blender / D-NeRF ``camera_angle_x``). When given, intrinsics
    come from the real image size: fx = fy = W / (2 tan(fov_x / 2)), cx = W / 2, cy = H / 2 (fx..height unused)."""
    distortion: np.ndarray | None = None
    """``[N, 6]`` distortion in nerfstudio's order (k1, k2, k3, k4, p1, p2), or None for none."""
    times: np.ndarray | None = None
    """Raw times ``[N]`` (None: a static scene without times)."""
    time_mode: Literal["config", "minmax"] = "config"
    """How times map to [0, 1]: the config's ``time_normalization`` or always min-max (e.g. frame ids)."""
    bounds: np.ndarray | None = None
    """Near/far depth bounds ``[N, 2]`` in dataset units (LLFF), used for the scene box and random seed points."""
    unit_scale: float = 1.0
    """Dataset units → parser units, applied before ``scale_factor`` (e.g. LLFF's ``bd_factor`` rescale)."""
    points: tuple[np.ndarray, np.ndarray] | None = None
    """SfM points ``(xyz float [M, 3] in the dataset world, rgb uint8 [M, 3])`` or None."""
    points_source: Path | None = None
    """File the SfM points come from (or would come from), for messages."""
    scene_bound: float | None = None
    """Half side of a cubic scene box in normalised units (before ``scale_factor``); None fits a box to the data."""
    sizes: Literal["uniform", "per_frame"] = "uniform"
    """'uniform': all images of a split share one size; 'per_frame': each image must match its declared size."""
    downscale: int | None = None
    """Downscale to apply to the image files (None: the config's ``downscale_factor``; 1 when pre-shrunk)."""
    eval_image_filenames: list[Path] | None = None
    """Images used instead of ``image_filenames`` for frames in the val/test split (e.g. D2RF's sharp views)."""
    eval_downscale: int | None = None
    """Downscale applied to ``eval_image_filenames`` (None: same as ``downscale``)."""
    per_frame_metadata: dict[str, list[Any]] = field(default_factory=dict)
    """Per-frame lists (``[N]`` each) reported in metadata for the split's frames, e.g. motion mask files."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra metadata reported as is (e.g. ``depth_kind``)."""
    camera_metadata: dict[str, Any] = field(default_factory=dict)
    """``Cameras.metadata`` (e.g. ``fisheye_crop_radius``)."""

    def __len__(self) -> int:
        return len(self.image_filenames)


def to_opengl(c2w: np.ndarray, convention: str) -> np.ndarray:
    """Camera-to-world ``[N, 3|4, 4]`` in ``convention`` → OpenGL ``[N, 3, 4]`` (float64)."""
    c2w = np.asarray(c2w, dtype=np.float64)[:, :3, :4].copy()
    if convention == "opencv":
        c2w[:, :, :3] = c2w[:, :, :3] @ CV_TO_GL
    elif convention != "opengl":
        raise ValueError(f"unknown camera convention {convention!r}")
    return c2w


def llff_to_opengl(c2w_drb: np.ndarray) -> np.ndarray:
    """LLFF's ``[N, 3, 4]`` camera-to-world with rotation columns [down, right, back] → OpenGL [right, up, back]."""
    p = np.asarray(c2w_drb, dtype=np.float64)
    return np.concatenate([p[:, :, 1:2], -p[:, :, 0:1], p[:, :, 2:]], axis=2)


def homogeneous(c2w: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[N, 3, 4]`` → float32 ``[N, 4, 4]`` tensor."""
    c2w = torch.as_tensor(np.asarray(c2w), dtype=torch.float32)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(c2w.shape[0], 1, 4)
    return torch.cat([c2w[:, :3, :4], bottom], dim=1)


def frustum_corners(
    c2w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
    width: torch.Tensor, height: torch.Tensor, depths: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """World points at the four image corners of each camera, at each camera's ``depths [N, D]``: ``[N*4*D, 3]``."""
    corners_u = torch.stack([torch.zeros_like(width), width, width, torch.zeros_like(width)], dim=1).float()
    corners_v = torch.stack([torch.zeros_like(height), torch.zeros_like(height), height, height], dim=1).float()
    x = (corners_u - cx[:, None]) / fx[:, None]
    y = -(corners_v - cy[:, None]) / fy[:, None]
    dirs = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [N, 4, 3], z = -1 so depth scales it
    pts = dirs[:, :, None, :] * depths[:, None, :, None]  # [N, 4, D, 3]
    world = torch.einsum("nij,nkdj->nkdi", c2w[:, :3, :3], pts) + c2w[:, None, None, :3, 3]
    return world.reshape(-1, 3)


def frustum_seed_points(
    c2w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
    width: torch.Tensor, height: torch.Tensor, near: torch.Tensor, far: torch.Tensor, num_points: int, seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Random points inside the cameras' view frustums between their near and far bounds.

    Each point picks a camera and a pixel uniformly and a depth uniform in disparity between ``near`` and ``far``
    (forward-facing captures have far ≫ near; uniform disparity puts as many points near as far, like LLFF's
    ``lindisp`` sampling). Deterministic given ``seed``.

    Returns:
        ``(xyz float32 [M, 3], rgb uint8 [M, 3])`` (random colours).
    """
    rng = np.random.default_rng(seed)
    n = c2w.shape[0]
    cam = torch.from_numpy(rng.integers(0, n, size=num_points))
    u = torch.from_numpy(rng.uniform(0.0, 1.0, size=num_points)).float() * width.reshape(-1)[cam].float()
    v = torch.from_numpy(rng.uniform(0.0, 1.0, size=num_points)).float() * height.reshape(-1)[cam].float()
    s = torch.from_numpy(rng.uniform(0.0, 1.0, size=num_points)).float()
    inv_near, inv_far = 1.0 / near.reshape(-1)[cam], 1.0 / far.reshape(-1)[cam]
    depth = 1.0 / (inv_near + s * (inv_far - inv_near))
    x = (u - cx.reshape(-1)[cam]) / fx.reshape(-1)[cam]
    y = -(v - cy.reshape(-1)[cam]) / fy.reshape(-1)[cam]
    dirs = torch.stack([x, y, -torch.ones_like(x)], dim=-1) * depth[:, None]
    xyz = torch.einsum("nij,nj->ni", c2w[cam, :3, :3], dirs) + c2w[cam, :3, 3]
    rgb = torch.from_numpy(rng.integers(0, 256, size=(num_points, 3), dtype=np.uint8))
    return xyz.float(), rgb


def fit_box(points: torch.Tensor, pad: float = 0.05, min_half: float = 1e-3) -> torch.Tensor:
    """Axis-aligned box ``[2, 3]`` around ``points [M, 3]``, padded by ``pad`` of its size on every side."""
    lo, hi = points.min(dim=0).values, points.max(dim=0).values
    center, half = (lo + hi) / 2, ((hi - lo) / 2).clamp(min=min_half)
    half = half * (1.0 + 2.0 * pad)
    return torch.stack([center - half, center + half]).float()


def robust_points(xyz: torch.Tensor, lo_q: float = 0.01, hi_q: float = 0.99) -> torch.Tensor:
    """Points inside the per-axis ``[lo_q, hi_q]`` quantiles (drops SfM outliers before fitting a box)."""
    if xyz.shape[0] < 20:
        return xyz
    lo, hi = torch.quantile(xyz, lo_q, dim=0), torch.quantile(xyz, hi_q, dim=0)
    keep = ((xyz >= lo) & (xyz <= hi)).all(dim=1)
    return xyz[keep]
