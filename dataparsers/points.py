"""Seed points for splatfacto-style models: a uniform draw in the scene box or a PLY point cloud.

Dataparsers report the points as ``metadata["points3D_xyz"]`` (float32 ``[M, 3]``) and ``metadata["points3D_rgb"]``
(uint8 ``[M, 3]``), which nerfstudio's pipeline hands to the model. PLY files are read with the ``plyfile`` package;
every problem with one is reported as a :class:`~.errors.DataParserError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElementParseError, PlyHeaderParseError, PlyListProperty, PlyParseError

from .errors import DataParserError

#: Colour given to PLY points that carry no colour.
DEFAULT_POINT_RGB = 128
#: Vertex property names tried, in order, for point colours.
_PLY_COLOR_NAMES = (("red", "green", "blue"), ("diffuse_red", "diffuse_green", "diffuse_blue"), ("r", "g", "b"))


def random_seed_points(aabb: torch.Tensor, num_points: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random points in a box, with random colours (deterministic given ``seed``).

    Args:
        aabb: ``[2, 3]`` box corners (min, max).
        num_points: How many points.
        seed: RNG seed.

    Returns:
        ``(xyz float32 [M, 3], rgb uint8 [M, 3])``.
    """
    box = torch.as_tensor(aabb, dtype=torch.float64).cpu().numpy()
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(box[0], box[1], size=(num_points, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(num_points, 3), dtype=np.uint8)
    return torch.from_numpy(xyz), torch.from_numpy(rgb)


def _ply_problem(err: Exception) -> str:
    """A readable problem text for an exception raised while ``plyfile`` reads a file."""
    if isinstance(err, PlyHeaderParseError):
        if err.message == "early end-of-file":
            return f"malformed PLY header: line {err.line}: the file ends before 'end_header'"
        return f"malformed PLY header: {err}"
    if isinstance(err, PlyElementParseError):
        if err.message == "early end-of-file" and err.element is not None:
            element = err.element
            return (
                f"truncated PLY: element {element.name!r} declares {element.count} rows, the data holds only {err.row}"
            )
        return f"malformed PLY data: {err}"
    if isinstance(err, UnicodeDecodeError):
        return "malformed PLY: non-ASCII bytes in the header or in ASCII-format data"
    if isinstance(err, MemoryError):
        return "malformed PLY: the header declares more rows than can be held in memory"
    if isinstance(err, OSError):
        return f"cannot read file: {err}"
    return f"malformed PLY: {err} (check the element counts and property types in the header)"


def _read_plydata(path: Path) -> PlyData:
    """``PlyData.read`` with every failure turned into a :class:`DataParserError` naming ``path``."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise DataParserError(path, f"cannot read file: {err}") from None
    if not magic.startswith(b"ply"):
        raise DataParserError(path, "not a PLY file (missing 'ply' magic)")
    try:
        # Binary elements are memory-mapped (copy-on-write) and copied out by the caller.
        return PlyData.read(str(path))
    except (PlyParseError, ValueError, MemoryError, OSError) as err:  # ValueError covers UnicodeDecodeError
        raise DataParserError(path, _ply_problem(err)) from None


def read_ply_points(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud from a PLY file (ascii, binary little- or big-endian) with ``plyfile``.

    Args:
        path: The PLY file. Its ``vertex`` element needs ``x``, ``y``, ``z`` and may have colours named ``red``,
            ``green``, ``blue`` (or ``diffuse_red``.. or ``r``, ``g``, ``b``): integers are clipped to 0–255,
            floats are taken as 0–1 (and scaled to 0–255) when all are ≤ 1.

    Returns:
        ``(xyz float32 [M, 3], rgb uint8 [M, 3] or None when the file has no colours)``.

    Raises:
        DataParserError: The file is missing or unreadable, is not a PLY file, has a malformed header or truncated
            data, has no ``vertex`` element or no ``x``, ``y``, ``z``, or has NaN/inf positions.
    """
    path = Path(path)
    if not path.is_file():
        raise DataParserError(path, "PLY file not found")
    elements = {element.name: element for element in _read_plydata(path).elements}
    if "vertex" not in elements:
        found = ", ".join(repr(name) for name in elements) or "none"
        raise DataParserError(path, f"PLY file has no 'vertex' element (elements: {found})")
    vertex = elements["vertex"]
    scalars = {p.name for p in vertex.properties if not isinstance(p, PlyListProperty)}
    for axis in "xyz":
        if axis in scalars:
            continue
        if any(p.name == axis for p in vertex.properties):
            raise DataParserError(path, f"PLY 'vertex' property {axis!r} is a list; x, y, z must be scalars")
        found = ", ".join(p.name for p in vertex.properties) or "none"
        raise DataParserError(path, f"PLY 'vertex' element lacks x, y, z properties (it has: {found})")
    data = vertex.data
    xyz = np.stack([data[axis].astype(np.float64) for axis in "xyz"], axis=-1).reshape(-1, 3)
    if not np.isfinite(xyz).all():
        raise DataParserError(path, "PLY vertex positions contain NaN or inf")
    rgb = None
    for names in _PLY_COLOR_NAMES:
        if all(n in scalars for n in names):
            values = np.stack([data[n].astype(np.float64) for n in names], axis=-1).reshape(-1, 3)
            values = np.nan_to_num(values)  # NaN colours become 0 rather than an undefined uint8
            if any(data.dtype[n].kind == "f" for n in names) and (values.size == 0 or values.max() <= 1.0):
                values = values * 255.0
            rgb = np.clip(np.round(values), 0, 255).astype(np.uint8)
            break
    return xyz.astype(np.float32), rgb


def seed_ply_path(spec: str, data: Path) -> Path | None:
    """The PLY file a ``seed_points`` setting names (data folder first, then the working directory).

    Args:
        spec: The ``seed_points`` setting.
        data: The dataset folder.

    Returns:
        The file, or None for 'random' / 'auto' (formats with SfM points handle 'auto' and 'sfm' themselves).

    Raises:
        DataParserError: ``spec`` is 'sfm' (this dataset has no SfM points) or names a file that does not exist.
    """
    spec = str(spec).strip()
    if spec.lower() in ("random", "auto"):
        return None
    if spec.lower() == "sfm":
        raise DataParserError(Path(data), "seed_points='sfm' but this dataset has no SfM points")
    path = Path(spec).expanduser()
    if not path.is_absolute() and (Path(data) / path).is_file():
        return Path(data) / path
    if not path.is_file():
        problem = "seed_points PLY file not found (looked in the data folder and the working directory)"
        raise DataParserError(path, problem)
    return path


def box_or_ply_seed_points(
    spec: str,
    data: Path,
    aabb: torch.Tensor,
    num_points: int,
    seed: int,
    transform: torch.Tensor | None = None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed points in our (transformed, scaled) world: the PLY ``spec`` names, else a uniform draw in ``aabb``.

    Args:
        spec: The ``seed_points`` setting ('random', 'auto' or a PLY path; see :func:`seed_ply_path`).
        data: The dataset folder (relative PLY paths are looked up there first).
        aabb: ``[2, 3]`` scene box in our world; random points are drawn inside it.
        num_points: How many random points.
        seed: RNG seed of the random points.
        transform: ``[3, 4]`` dataparser transform applied to PLY points (dataset world → ours).
        scale: Dataparser scale applied to PLY points after ``transform``.

    Returns:
        ``(xyz float32 [M, 3], rgb uint8 [M, 3])``; PLY points without colours get :data:`DEFAULT_POINT_RGB`.
    """
    ply = seed_ply_path(spec, data)
    if ply is None:
        return random_seed_points(aabb, num_points, seed)
    xyz, rgb = read_ply_points(ply)
    if rgb is None:
        rgb = np.full(xyz.shape, DEFAULT_POINT_RGB, dtype=np.uint8)
    return transform_points(torch.from_numpy(xyz), transform, scale), torch.from_numpy(rgb)


def transform_points(xyz: torch.Tensor, transform: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Apply a dataparser transform: ``scale * (R @ p + t)`` with ``transform = [R | t]`` (``[3, 4]``)."""
    xyz = torch.as_tensor(xyz, dtype=torch.float32)
    if transform is not None:
        transform = torch.as_tensor(transform, dtype=torch.float32)
        xyz = xyz @ transform[:3, :3].T + transform[:3, 3]
    return xyz * float(scale)
