"""The shared half of every dynsplat dataparser: :class:`~.scene.SceneFrames` → nerfstudio ``DataparserOutputs``.

Steps, identical for every format:

1. Check the frame arrays (shapes, NaN/inf poses and intrinsics).
2. Split (:func:`.subsets.resolve_splits`): the format's split, a ``split_indices.json`` override, train subsetting.
3. Poses: camera axes to OpenGL, nerfstudio's ``auto_orient_and_center_poses`` on *all* frames (every split shares
   the transform), scale = format unit scale × auto scale × ``scale_factor``.
4. Images of the split only: existence and size (headers only; nothing is decoded), downscale cache, intrinsics
   rescaled from the declared to the real image size.
5. Times to [0, 1] over all frames; ``num_frames`` from the final train split.
6. Scene box, seed points, per-frame metadata (masks, depth), camera metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nerfstudio.cameras.camera_utils import auto_orient_and_center_poses
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.scene_box import SceneBox

from .errors import DataParserError, MissingSplitError
from .images import check_image_sizes, check_mask_sizes, downscale_images, image_size
from .points import box_or_ply_seed_points, seed_ply_path, transform_points
from .scene import SceneFrames, fit_box, frustum_corners, frustum_seed_points, homogeneous, robust_points, to_opengl
from .subsets import resolve_splits, split_indices_file
from .times import count_frames, normalize_times

#: Relative difference allowed between the x and y factors that map a declared image size to the real one.
ASPECT_TOLERANCE = 0.02


def check_frames(scene: SceneFrames) -> None:
    """Shapes and finiteness of the per-frame arrays (formats check their own files first; this is the backstop).

    Raises:
        DataParserError: A pose or intrinsic is NaN/inf, or a focal length / image size is not positive (names
            ``scene.pose_source`` and the frame).
    """
    n = len(scene)
    if n == 0:
        raise DataParserError(scene.pose_source, "no frames")
    c2w = np.asarray(scene.c2w, dtype=np.float64)
    if c2w.shape[0] != n or c2w.shape[1:] not in ((3, 4), (4, 4)):
        raise ValueError(f"SceneFrames.c2w must be [{n}, 3|4, 4], got {list(c2w.shape)}")
    for name in ("fx", "fy", "cx", "cy", "width", "height"):
        if np.asarray(getattr(scene, name)).shape != (n,):
            raise ValueError(f"SceneFrames.{name} must have shape [{n}]")
    bad = ~np.isfinite(c2w.reshape(n, -1)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataParserError(
            scene.pose_source, f"frame {i} ({Path(scene.image_filenames[i]).name}): pose contains NaN or inf"
        )
    intr = np.stack([scene.fx, scene.fy, scene.cx, scene.cy]).astype(np.float64)
    bad = ~np.isfinite(intr).all(axis=0) | (intr[0] <= 0) | (intr[1] <= 0)
    bad |= (np.asarray(scene.width) <= 0) | (np.asarray(scene.height) <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataParserError(scene.pose_source, f"frame {i} ({Path(scene.image_filenames[i]).name}): bad intrinsics")


def orient(scene: SceneFrames, config: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    """All frames' OpenGL poses in our world: ``(c2w [N, 3, 4], transform [3, 4], scale)``.

    ``transform`` maps dataset-world OpenGL poses to ours before ``scale`` (nerfstudio's ``dataparser_transform`` /
    ``dataparser_scale``), so ``transform_poses_to_original_space`` recovers the dataset's poses.
    """
    poses = homogeneous(to_opengl(scene.c2w, scene.convention))
    oriented, transform = auto_orient_and_center_poses(
        poses, method=config.orientation_method, center_method=config.center_method
    )
    scale = float(scene.unit_scale)
    if config.auto_scale_poses:
        extent = float(oriented[:, :3, 3].abs().max())
        scale = 1.0 / extent if extent > 0 else 1.0
    scale *= float(config.scale_factor)
    oriented = oriented[:, :3, :4].clone()
    oriented[:, :3, 3] *= scale
    return oriented, transform.float(), scale


def prepare_split_images(
    config: Any, scene: SceneFrames, files: Sequence[Path], indices: Sequence[int], factor: int
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Check the split's images (headers only) and downscale them: ``(files, widths [n], heights [n])``."""
    data, cache = Path(config.data), config.cache_dir
    if scene.sizes == "uniform":
        w, h = check_image_sizes(files)
        out = downscale_images(files, factor, data, cache)
        return out, np.full(len(files), max(1, w // factor)), np.full(len(files), max(1, h // factor))
    widths, heights = [], []
    for path, i in zip(files, indices, strict=True):
        w, h = image_size(path)
        dw, dh = int(scene.width[i]), int(scene.height[i])
        if (w, h) != (dw, dh):
            raise DataParserError(
                path, f"image size {w}x{h} differs from the {dw}x{dh} that {scene.pose_source.name} declares for it"
            )
        widths.append(max(1, w // factor))
        heights.append(max(1, h // factor))
    return downscale_images(files, factor, data, cache), np.asarray(widths), np.asarray(heights)


def scaled_intrinsics(
    scene: SceneFrames, indices: Sequence[int], files: Sequence[Path], widths: np.ndarray, heights: np.ndarray
) -> dict[str, torch.Tensor]:
    """The split's intrinsics for the real image sizes: from ``fov_x`` when the format gives it, else rescaled from
    the declared size (the x and y factors must agree: a non-uniform change of size is an error)."""
    idx = np.asarray(indices)
    w, h = widths.astype(np.float64), heights.astype(np.float64)
    if scene.fov_x is not None:
        focal = w / (2.0 * np.tan(0.5 * np.asarray(scene.fov_x, dtype=np.float64)[idx]))
        fx, fy, cx, cy = focal, focal, w / 2.0, h / 2.0
    else:
        declared_w = np.asarray(scene.width, dtype=np.float64)[idx]
        declared_h = np.asarray(scene.height, dtype=np.float64)[idx]
        sx, sy = w / declared_w, h / declared_h
        bad = np.abs(sx / sy - 1.0) > ASPECT_TOLERANCE
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataParserError(
                files[k],
                f"image size {int(w[k])}x{int(h[k])} is not a rescale of the {int(declared_w[k])}x"
                f"{int(declared_h[k])} that {scene.pose_source.name} gives for it",
            )
        fx, fy = np.asarray(scene.fx, np.float64)[idx] * sx, np.asarray(scene.fy, np.float64)[idx] * sy
        cx, cy = np.asarray(scene.cx, np.float64)[idx] * sx, np.asarray(scene.cy, np.float64)[idx] * sy

    def col(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(values, dtype=np.float64)).float()[:, None]

    return {
        "fx": col(fx), "fy": col(fy), "cx": col(cx), "cy": col(cy),
        "width": torch.from_numpy(widths.astype(np.int64))[:, None],
        "height": torch.from_numpy(heights.astype(np.int64))[:, None],
    }  # fmt: skip


def normalized_times(config: Any, scene: SceneFrames) -> np.ndarray | None:
    """All frames' times in [0, 1] with one range over every frame (None for a static scene)."""
    if scene.times is None:
        return None
    mode = "minmax" if scene.time_mode == "minmax" else config.time_normalization
    try:
        with warnings.catch_warnings():
            if scene.time_mode == "minmax":  # frame ids / order: rescaling them is the point, not news
                warnings.simplefilter("ignore", UserWarning)
            return normalize_times(scene.times, mode=mode, source=config.data)
    except ValueError as err:
        raise DataParserError(scene.pose_source, f"bad frame times: {err}") from None


def _all_intrinsics(scene: SceneFrames) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(getattr(scene, k), dtype=np.float64)).float() for k in
            ("fx", "fy", "cx", "cy", "width", "height")}  # fmt: skip


def scene_box_and_points(
    cfg: Any, scene: SceneFrames, c2w: torch.Tensor, transform: torch.Tensor, scale: float, train: Sequence[int]
) -> tuple[SceneBox, tuple[torch.Tensor, torch.Tensor]]:
    """Scene box (ours) and seed points (``seed_points``: random / auto / sfm / PLY)."""
    spec = str(cfg.seed_points).strip().lower()
    has_sfm = scene.points is not None and len(scene.points[0]) > 0
    if spec == "sfm" and not has_sfm:
        where = scene.points_source or Path(cfg.data)
        raise DataParserError(where, "seed_points='sfm' but there are no SfM points (file missing or empty)")
    sfm = None
    if has_sfm and spec in ("auto", "sfm"):
        assert scene.points is not None
        xyz = transform_points(torch.from_numpy(np.asarray(scene.points[0], dtype=np.float32)), transform, scale)
        sfm = (xyz, torch.from_numpy(np.asarray(scene.points[1], dtype=np.uint8)))
    intr = _all_intrinsics(scene)
    norm_scale = scale / float(cfg.scale_factor)
    if scene.scene_bound is not None:
        bound = float(scene.scene_bound) * float(cfg.scale_factor)
        aabb = torch.tensor([[-bound] * 3, [bound] * 3], dtype=torch.float32)
    else:
        parts = [c2w[:, :3, 3]]
        if scene.bounds is not None:
            depths = torch.from_numpy(np.asarray(scene.bounds, dtype=np.float64) * scale).float()
            parts.append(frustum_corners(c2w, intr["fx"], intr["fy"], intr["cx"], intr["cy"], intr["width"],
                                         intr["height"], depths))  # fmt: skip
        if sfm is not None:
            parts.append(robust_points(sfm[0]))
        aabb = fit_box(torch.cat(parts), min_half=1e-3 * max(norm_scale, 1e-12))
    box = SceneBox(aabb=aabb)
    if sfm is not None:
        return box, sfm
    if spec in ("random", "auto") and scene.bounds is not None:
        t = torch.as_tensor(list(train) or range(len(scene)), dtype=torch.long)  # no train frames: use all
        near_far = torch.from_numpy(np.asarray(scene.bounds, dtype=np.float64) * scale).float()
        pts = frustum_seed_points(
            c2w[t], intr["fx"][t], intr["fy"][t], intr["cx"][t], intr["cy"][t], intr["width"][t], intr["height"][t],
            near_far[t, 0], near_far[t, 1], int(cfg.num_random_points), int(cfg.random_seed),
        )  # fmt: skip
        return box, pts
    points = box_or_ply_seed_points(
        cfg.seed_points, Path(cfg.data), box.aabb, cfg.num_random_points, cfg.random_seed, transform, scale
    )
    return box, points


def seeds_are_random(cfg: Any, scene: SceneFrames) -> bool:
    """Whether :func:`scene_box_and_points` draws the seed points at random (no SfM points used, no PLY file): the
    datamanager may then estimate better ones from the training images."""
    spec = str(cfg.seed_points).strip().lower()
    uses_sfm = spec in ("auto", "sfm") and scene.points is not None and len(scene.points[0]) > 0
    return not uses_sfm and seed_ply_path(cfg.seed_points, Path(cfg.data)) is None


def common_metadata(
    points: tuple[torch.Tensor, torch.Tensor],
    train_times: np.ndarray | None,
    alpha_color: torch.Tensor | None,
) -> dict[str, Any]:
    """Metadata every dynsplat parser reports.

    Args:
        points: Seed points ``(xyz, rgb)`` in our world.
        train_times: Normalised times of the *train* split, whichever split is being parsed, so that the model sees
            the same ``num_frames`` for every split (None: a static scene, one frame).
        alpha_color: The parsed ``alpha_color`` (None: no compositing).

    Returns:
        ``points3D_xyz`` (float32 ``[M, 3]``), ``points3D_rgb`` (uint8 ``[M, 3]``), ``times_normalized`` (True),
        ``num_frames`` (number of distinct training times, at least 1) and, unless ``alpha_color`` is None,
        ``background_color`` (float32 ``[3]``).
    """
    metadata: dict[str, Any] = {
        "points3D_xyz": points[0],
        "points3D_rgb": points[1],
        "times_normalized": True,
        "num_frames": count_frames(train_times),
    }
    if alpha_color is not None:
        metadata["background_color"] = alpha_color.clone()
    return metadata


def check_split_masks(metadata: dict[str, Any], sources: Sequence[Path]) -> None:
    """Every per-frame mask of a split (metadata ``*mask_filenames`` lists; None entries skipped) must be its image's
    size divided or multiplied by a whole number (headers only; :func:`~.images.mask_size_problem`), else a
    DataParserError names the mask.

    Args:
        metadata: The split's metadata (per-frame lists in the order of ``sources``).
        sources: The split's dataset images (before any downscaling), one per frame.
    """
    sizes: dict[Path, tuple[int, int]] = {}  # each image's header is read once, however many mask kinds it has
    for key, masks in metadata.items():
        if key.endswith("mask_filenames") and isinstance(masks, list):
            what = key.removesuffix("_filenames").replace("_", " ")
            for mask, source in zip(masks, sources, strict=True):
                if mask is not None:
                    size = sizes[source] = sizes.get(source) or image_size(source)
                    check_mask_sizes([Path(mask)], size, what)


def build_outputs(scene: SceneFrames, split: str, cfg: Any, alpha_color: torch.Tensor | None) -> DataparserOutputs:
    """``DataparserOutputs`` of ``split`` for a format's :class:`SceneFrames` (see the module docstring).

    Args:
        scene: Every frame of the capture, as the format read it.
        split: "train", "val" or "test".
        cfg: The parser's :class:`~.base.DynsplatDataParserConfig`.
        alpha_color: The parsed ``alpha_color`` (see :func:`~.base.parse_alpha_color`; None: no compositing).
    """
    check_frames(scene)
    split_file = split_indices_file(cfg.split_indices, Path(cfg.data))
    splits = resolve_splits(scene.splits, len(scene), split_file, cfg.train_fraction, cfg.train_count)
    indices = splits[split]
    if not indices:
        source = split_file or scene.split_source
        raise MissingSplitError(source, f"the {split} split is empty: none of the {len(scene)} frames is in it", split)
    c2w, transform, scale = orient(scene, cfg)

    evaluating = split != "train" and scene.eval_image_filenames is not None
    names = scene.eval_image_filenames if evaluating else scene.image_filenames
    assert names is not None
    factor = int(cfg.downscale_factor) if scene.downscale is None else int(scene.downscale)
    if evaluating and scene.eval_downscale is not None:
        factor = int(scene.eval_downscale)
    files = [Path(names[i]) for i in indices]
    files, widths, heights = prepare_split_images(cfg, scene, files, indices, factor)
    intr = scaled_intrinsics(scene, indices, files, widths, heights)

    times = normalized_times(cfg, scene)
    train_times = None if times is None else times[splits["train"]]
    idx = torch.as_tensor(indices, dtype=torch.long)
    distortion = None
    if scene.distortion is not None:
        distortion = torch.from_numpy(np.asarray(scene.distortion, dtype=np.float64)).float()[idx]
    cameras = Cameras(
        camera_to_worlds=c2w[idx], distortion_params=distortion, camera_type=scene.camera_type,
        times=None if times is None else torch.from_numpy(times[indices]).float()[:, None],
        metadata=dict(scene.camera_metadata) or None, **intr,
    )  # fmt: skip
    box, points = scene_box_and_points(cfg, scene, c2w, transform, scale, splits["train"])
    metadata = common_metadata(points, train_times, alpha_color)
    metadata["seed_points_random"] = seeds_are_random(cfg, scene)
    metadata.update(scene.metadata)
    metadata.update({key: [values[i] for i in indices] for key, values in scene.per_frame_metadata.items()})
    check_split_masks(metadata, [Path(names[i]) for i in indices])
    metadata["split"] = split
    metadata["frame_indices"] = list(indices)
    if scene.bounds is not None:
        metadata["near_far"] = torch.from_numpy(np.asarray(scene.bounds, dtype=np.float64)[indices] * scale).float()
    return DataparserOutputs(
        image_filenames=files,
        cameras=cameras,
        alpha_color=None if alpha_color is None else alpha_color.clone(),
        scene_box=box,
        metadata=metadata,
        dataparser_transform=transform,
        dataparser_scale=scale,
    )
