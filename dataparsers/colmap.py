"""Thin adapters over nerfstudio's own COLMAP readers (``nerfstudio.data.utils.colmap_parsing_utils``).

No COLMAP parsing happens here: the binary/text readers, ``qvec2rotmat`` and the camera-model table are
nerfstudio's. This module only turns their failures into :class:`~.errors.DataParserError` naming the file, and their
results into the arrays the dataparsers need (OpenCV camera-to-world, intrinsics in nerfstudio's order).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nerfstudio.cameras.cameras import CAMERA_MODEL_TO_TYPE, CameraType
from nerfstudio.data.utils import colmap_parsing_utils as colmap_io

from .errors import DataParserError

#: COLMAP camera models the dataparsers accept (what nerfstudio's ``parse_colmap_camera_params`` converts).
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")


@dataclass
class ColmapIntrinsics:
    """One COLMAP camera in nerfstudio's terms."""

    width: int
    """Image width the camera was calibrated at."""
    height: int
    """Image height the camera was calibrated at."""
    fx: float
    """Focal length x (pixels)."""
    fy: float
    """Focal length y (pixels)."""
    cx: float
    """Principal point x (pixels)."""
    cy: float
    """Principal point y (pixels)."""
    distortion: np.ndarray
    """``[6]`` k1, k2, k3, k4, p1, p2 (nerfstudio's order)."""
    camera_type: CameraType
    """PERSPECTIVE or FISHEYE."""


def _model_file(sparse_dir: Path, name: str) -> tuple[Path, bool]:
    """``(path, is_binary)`` of ``name`` (``cameras`` / ``images`` / ``points3D``): the .bin, else the .txt."""
    binary = sparse_dir / f"{name}.bin"
    text = sparse_dir / f"{name}.txt"
    if binary.is_file() or not text.is_file():
        return binary, True
    return text, False


def _read(path: Path, binary: bool, kind: str) -> dict:
    if not path.is_file():
        raise DataParserError(path, "file not found")
    reader = getattr(colmap_io, f"read_{kind}_{'binary' if binary else 'text'}")
    try:
        return reader(str(path))
    except KeyError as err:
        raise DataParserError(path, f"unknown COLMAP camera model id {err.args[0]!r}") from None
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, AssertionError, OSError) as err:
        what = "binary" if binary else "text"
        raise DataParserError(path, f"malformed COLMAP {what} file ({type(err).__name__}: {err})") from None


def read_cameras(sparse_dir: Path) -> tuple[Path, dict[int, Any]]:
    """``cameras.bin`` (or ``.txt``) of a COLMAP model folder: ``(path, {camera_id: Camera})``."""
    path, binary = _model_file(Path(sparse_dir), "cameras")
    return path, _read(path, binary, "cameras")


def read_images(sparse_dir: Path) -> tuple[Path, dict[int, Any]]:
    """``images.bin`` (or ``.txt``): ``(path, {image_id: Image})``."""
    path, binary = _model_file(Path(sparse_dir), "images")
    return path, _read(path, binary, "images")


def read_points(sparse_dir: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """``points3D.bin`` (or ``.txt``): ``(path, xyz float64 [M, 3], rgb uint8 [M, 3])`` in the COLMAP world.

    Raises:
        DataParserError: Missing or malformed file, or NaN/inf positions.
    """
    path, binary = _model_file(Path(sparse_dir), "points3D")
    points = _read(path, binary, "points3D")
    if not points:
        return path, np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    xyz = np.stack([p.xyz for p in points.values()]).astype(np.float64)
    rgb = np.clip(np.stack([p.rgb for p in points.values()]), 0, 255).astype(np.uint8)
    if not np.isfinite(xyz).all():
        raise DataParserError(path, "point positions contain NaN or inf")
    return path, xyz, rgb


def intrinsics(camera: Any, source: Path) -> ColmapIntrinsics:
    """A COLMAP camera (nerfstudio's ``Camera`` tuple) in nerfstudio's terms.

    Raises:
        DataParserError: The model is not one nerfstudio converts (``SUPPORTED_MODELS``) or a parameter is not
            finite; the message names ``source`` and the camera id.
    """
    from nerfstudio.process_data.colmap_utils import parse_colmap_camera_params

    if camera.model not in SUPPORTED_MODELS:
        raise DataParserError(
            source,
            f"camera {camera.id}: unsupported camera model {camera.model} (supported: {', '.join(SUPPORTED_MODELS)})",
        )
    if not np.isfinite(np.asarray(camera.params, dtype=np.float64)).all():
        raise DataParserError(source, f"camera {camera.id}: parameters contain NaN or inf")
    params = parse_colmap_camera_params(camera)
    model = getattr(params["camera_model"], "value", params["camera_model"])
    distortion = np.array([params.get(k, 0.0) for k in ("k1", "k2", "k3", "k4", "p1", "p2")], dtype=np.float64)
    return ColmapIntrinsics(
        width=int(params["w"]), height=int(params["h"]), fx=params["fl_x"], fy=params["fl_y"], cx=params["cx"],
        cy=params["cy"], distortion=distortion, camera_type=CAMERA_MODEL_TO_TYPE[model],
    )  # fmt: skip


def camera_to_world(image: Any, source: Path) -> np.ndarray:
    """OpenCV camera-to-world ``[3, 4]`` of a COLMAP image (COLMAP stores world-to-camera as qvec, tvec).

    Raises:
        DataParserError: The quaternion or translation is not finite or the quaternion is zero.
    """
    qvec, tvec = np.asarray(image.qvec, dtype=np.float64), np.asarray(image.tvec, dtype=np.float64)
    if not (np.isfinite(qvec).all() and np.isfinite(tvec).all()):
        raise DataParserError(source, f"image {image.id} ({image.name}): pose contains NaN or inf")
    norm = np.linalg.norm(qvec)
    if norm < 1e-12:
        raise DataParserError(source, f"image {image.id} ({image.name}): zero quaternion")
    rot = colmap_io.qvec2rotmat(qvec / norm)
    return np.concatenate([rot.T, (-rot.T @ tvec)[:, None]], axis=1)
