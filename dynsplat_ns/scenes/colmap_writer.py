"""A minimal COLMAP model writer (``cameras.bin``, ``images.bin``, ``points3D.bin``, a stub ``database.db``).

Only for generating test scenes: it writes COLMAP's documented binary layout with :mod:`struct` and shares no code
with the readers it is tested against (nerfstudio's ``colmap_parsing_utils`` and pycolmap).

Binary layout (little endian), as in COLMAP's ``Reconstruction::Write*Binary``::

    cameras.bin   uint64 n; n × (int32 camera_id, int32 model_id, uint64 width, uint64 height, float64 params[])
    images.bin    uint64 n; n × (int32 image_id, float64 qw qx qy qz, float64 tx ty tz, int32 camera_id,
                                 name bytes + NUL, uint64 n_points2D, n_points2D × (float64 x, y, int64 point3D_id))
    points3D.bin  uint64 n; n × (uint64 point3D_id, float64 x y z, uint8 r g b, float64 error,
                                 uint64 track_length, track_length × (int32 image_id, int32 point2D_idx))

Poses are world-to-camera in OpenCV camera axes (x right, y down, z forward); use :func:`w2c_from_opengl_c2w`.

Example:
    >>> write_model(Path("sparse/0"), {1: ColmapCamera("PINHOLE", 64, 48, (50.0, 50.0, 32.0, 24.0))},
    ...             [ColmapImage(1, "a.png", 1, np.eye(4))], np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: COLMAP camera model ids and parameter counts (src/colmap/sensor/models.h).
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
}


@dataclass
class ColmapCamera:
    """One COLMAP camera."""

    model: str
    """Model name (a key of :data:`CAMERA_MODELS`)."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    params: tuple[float, ...]
    """Model parameters in COLMAP's order (e.g. f, cx, cy for SIMPLE_PINHOLE; COLMAP's cx is width / 2 for a
    centred principal point)."""


@dataclass
class ColmapImage:
    """One registered COLMAP image."""

    image_id: int
    """Image id (>= 1)."""
    name: str
    """File name relative to the image folder."""
    camera_id: int
    """Id of its camera."""
    w2c: np.ndarray
    """World-to-camera ``[4, 4]`` (or ``[3, 4]``) in OpenCV camera axes."""


def rotation_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` → unit quaternion ``(w, x, y, z)`` with ``w >= 0`` (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def w2c_from_opengl_c2w(c2w: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world ``[3|4, 4]`` → COLMAP world-to-camera ``[4, 4]`` (OpenCV camera axes)."""
    c2w_cv = np.eye(4)
    c2w_cv[:3, :4] = np.asarray(c2w, dtype=np.float64)[:3, :4]
    c2w_cv[:3, 1:3] *= -1.0
    return np.linalg.inv(c2w_cv)


def write_cameras(path: Path, cameras: dict[int, ColmapCamera]) -> None:
    """Write ``cameras.bin``."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(cameras)))
        for cam_id, cam in sorted(cameras.items()):
            model_id, num_params = CAMERA_MODELS[cam.model]
            if len(cam.params) != num_params:
                raise ValueError(f"{cam.model} takes {num_params} parameters, got {len(cam.params)}")
            f.write(struct.pack("<iiQQ", cam_id, model_id, cam.width, cam.height))
            f.write(struct.pack(f"<{num_params}d", *map(float, cam.params)))


def write_images(path: Path, images: Sequence[ColmapImage]) -> None:
    """Write ``images.bin`` (no 2D keypoints)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for im in images:
            w2c = np.asarray(im.w2c, dtype=np.float64)
            q = rotation_to_quaternion(w2c[:3, :3])
            f.write(struct.pack("<i4d3di", im.image_id, *q, *w2c[:3, 3], im.camera_id))
            f.write(im.name.encode("utf-8") + b"\x00")
            f.write(struct.pack("<Q", 0))


def write_points(path: Path, xyz: np.ndarray, rgb: np.ndarray, track_image_ids: Sequence[int] = ()) -> None:
    """Write ``points3D.bin``; every point gets a track over ``track_image_ids`` (point2D index 0: only valid when
    those images have keypoints, which :func:`write_images` does not write, so keep it empty for them)."""
    xyz, rgb = np.asarray(xyz, dtype=np.float64), np.asarray(rgb, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(xyz)))
        for i, (p, c) in enumerate(zip(xyz, rgb, strict=True)):
            f.write(struct.pack("<Q3d3Bd", i + 1, *p, *c.tolist(), 0.5))
            f.write(struct.pack("<Q", len(track_image_ids)))
            for image_id in track_image_ids:
                f.write(struct.pack("<ii", image_id, 0))


def write_model(
    folder: Path,
    cameras: dict[int, ColmapCamera],
    images: Sequence[ColmapImage],
    xyz: np.ndarray,
    rgb: np.ndarray,
) -> Path:
    """Write ``cameras.bin``, ``images.bin`` and ``points3D.bin`` into ``folder`` (created). Returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_cameras(folder / "cameras.bin", cameras)
    write_images(folder / "images.bin", images)
    write_points(folder / "points3D.bin", xyz, rgb)
    return folder


def write_database(path: Path, cameras: dict[int, ColmapCamera], images: Sequence[ColmapImage]) -> Path:
    """A stub COLMAP ``database.db``: the ``cameras`` and ``images`` tables of COLMAP's schema, no features."""
    path = Path(path)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE cameras (camera_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, model INTEGER NOT NULL, "
            "width INTEGER NOT NULL, height INTEGER NOT NULL, params BLOB, prior_focal_length INTEGER NOT NULL)"
        )
        db.execute(
            "CREATE TABLE images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL UNIQUE, "
            "camera_id INTEGER NOT NULL)"
        )
        for cam_id, cam in sorted(cameras.items()):
            blob = np.asarray(cam.params, dtype=np.float64).tobytes()
            db.execute(
                "INSERT INTO cameras VALUES (?, ?, ?, ?, ?, ?)",
                (cam_id, CAMERA_MODELS[cam.model][0], cam.width, cam.height, blob, 1),
            )
        db.executemany("INSERT INTO images VALUES (?, ?, ?)", [(im.image_id, im.name, im.camera_id) for im in images])
    db.close()
    return path
