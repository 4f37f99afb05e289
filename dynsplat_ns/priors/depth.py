"""Monocular priors the dataparsers list (depth maps, motion masks), read once by the datamanager.

Dataparsers put file lists into their outputs' ``metadata``; models never read files. The datamanager reads them:

* ``depth_filenames`` (one per image of the split; None for an image without one) with ``depth_kind``
  ``"disparity"`` (relative, e.g. D2RF's ``dpt/``) or ``"metric"`` (e.g. DyCheck's LiDAR depth, in dataset units ×
  ``depth_unit_scale_factor``): each map is resized to its training image (undistorted like the image when the
  camera has distortion) and cached next to it as ``depth_prior`` [H, W, 1] float32 (metric depth in our world units:
  × the dataparser's scale), so every training batch carries it (:func:`attach_depth_priors`); an image without a file
  gets an all-NaN (all-invalid) map, which the depth losses ignore;
* ``motion_mask_filenames`` (non-zero = moving): the training masks and cameras go into the metadata under
  :data:`MOTION_MASKS_KEY` for the model's static/dynamic seeding (:func:`motion_masks_for_seeding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dynsplat_ns.errors import ImageFileError

#: Batch key of an image's depth prior ([H, W, 1] float32, at the image's resolution).
DEPTH_BATCH_KEY = "depth_prior"
#: Metadata key of the training motion masks for seeding: ``{"cameras": Cameras, "masks": [bool [h, w], ...]}``.
MOTION_MASKS_KEY = "motion_masks_for_seeding"
#: Depth kinds a dataparser may report in ``metadata["depth_kind"]``.
DEPTH_KINDS = ("disparity", "metric")


def depth_kind(metadata: dict | None) -> str | None:
    """``"disparity"``/``"metric"`` when the metadata lists depth files, else None."""
    metadata = metadata or {}
    if not metadata.get("depth_filenames"):
        return None
    kind = metadata.get("depth_kind", "metric")
    if kind not in DEPTH_KINDS:
        raise ValueError(f"metadata['depth_kind']={kind!r}: must be one of {DEPTH_KINDS}")
    return kind


def read_depth_file(path: str | Path) -> np.ndarray:
    """A depth or disparity map as float32 [H, W] (``.npy``, or a 1-channel image such as a 16-bit PNG).

    Raises:
        ImageFileError: naming the file when it is missing or cannot be read as one 2-D map.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                array = np.array(image)
    except FileNotFoundError as err:
        raise ImageFileError(path, "depth file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageFileError(path, f"cannot read depth map ({str(err).strip() or type(err).__name__})") from err
    array = np.squeeze(np.asarray(array))
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ImageFileError(path, f"depth map must be one 2-D numeric array, got shape {tuple(array.shape)}")
    return array.astype(np.float32)


def _resize(depth: np.ndarray, width: int, height: int, kind: str) -> np.ndarray:
    if depth.shape == (height, width):
        return depth
    x = torch.from_numpy(depth)[None, None]
    if kind == "disparity":
        # Smooth, but never blended with a pixel without depth (<= 0 or not finite, e.g. D2RF-layout dpt/ of the
        # empty background): an object's edge half-way to infinity is a depth no surface has. Such pixels get 0
        # ("no depth" to the depth loss and the seeding).
        valid = torch.isfinite(x) & (x > 0)
        size = (height, width)
        num = torch.nn.functional.interpolate(torch.where(valid, x, 0.0), size=size, mode="bilinear")
        den = torch.nn.functional.interpolate(valid.float(), size=size, mode="bilinear")
        out = torch.where(den > 0.999, num / den.clamp_min(1e-6), 0.0)
    else:  # metric depth keeps its invalid (0) pixels apart
        out = torch.nn.functional.interpolate(x, size=(height, width), mode="nearest")
    return out[0, 0].numpy()


def load_depth_prior(path: str | Path, camera, size: tuple[int, int], kind: str, scale: float = 1.0) -> Tensor:
    """One image's depth prior as [H, W, 1] float32 at ``size`` = (H, W) of its cached training image.

    Args:
        path: The depth file.
        camera: The image's camera as the dataparser gave it (before undistortion), one camera.
        size: (H, W) of the cached (possibly undistorted) training image.
        kind: "disparity" or "metric".
        scale: Factor applied to metric depth (dataset units → world units).
    """
    depth = read_depth_file(path)
    width, height = int(camera.width.reshape(-1)[0]), int(camera.height.reshape(-1)[0])
    depth = _resize(depth, width, height, kind)
    distortion = camera.distortion_params
    if distortion is not None and torch.any(distortion != 0):
        from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image

        K = camera.get_intrinsics_matrices().reshape(3, 3).numpy()
        _, depth, _ = _undistort_image(camera.reshape(()), distortion.reshape(-1).numpy(), {}, depth, K)
        depth = np.asarray(depth, dtype=np.float32).reshape(depth.shape[0], depth.shape[1])
    depth = _resize(depth, size[1], size[0], kind)
    if kind == "metric":
        depth = depth * np.float32(scale)
    return torch.from_numpy(np.ascontiguousarray(depth))[..., None]


def attach_depth_priors(cached: list[dict[str, Any]], outputs) -> None:
    """Adds ``depth_prior`` to each cached training image dict (in place), when ``outputs.metadata`` lists depth.

    An image whose ``depth_filenames`` entry is None (e.g. a DyCheck val frame that ``split_indices.json`` moved into
    train) gets an all-NaN map: no pixel is valid, so the depth losses give it no term.

    Args:
        cached: The datamanager's cached training images (dicts with ``image`` [H, W, C]), in dataset order.
        outputs: The training split's DataparserOutputs (original cameras, metadata, dataparser scale).
    """
    metadata = outputs.metadata or {}
    kind = depth_kind(metadata)
    if kind is None:
        return
    files = metadata["depth_filenames"]
    if len(files) != len(cached):
        raise ValueError(f"metadata['depth_filenames'] has {len(files)} files for {len(cached)} training images")
    scale = float(metadata.get("depth_unit_scale_factor", 1.0)) * float(outputs.dataparser_scale)
    for i, item in enumerate(cached):
        image = item["image"]
        if files[i] is None:
            depth = torch.full((*image.shape[:2], 1), float("nan"), dtype=torch.float32)
        else:
            depth = load_depth_prior(files[i], outputs.cameras[i], tuple(image.shape[:2]), kind, scale)
        item[DEPTH_BATCH_KEY] = depth.to(image.device)


def read_mask_file(path: str | Path) -> Tensor:
    """A motion mask as bool [h, w] (non-zero = moving); :class:`ImageFileError` naming the file if unreadable."""
    try:
        with Image.open(path) as image:
            return torch.from_numpy(np.array(image.convert("L")) > 127)
    except FileNotFoundError as err:
        raise ImageFileError(path, "mask file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageFileError(path, f"cannot decode mask ({str(err).strip() or type(err).__name__})") from err


def motion_masks_for_seeding(outputs) -> dict[str, Any] | None:
    """``{"cameras", "masks"}`` of the training split when its metadata lists ``motion_mask_filenames``, else None.

    The cameras are the dataparser's (original intrinsics; masks may have another resolution, e.g. half).
    With relative disparity (``depth_kind="disparity"``) it also holds, at each mask's resolution, the ``disparity``
    maps (None for an image without one) and the training ``images`` ([h, w, 3] float 0–1): the foreground seeding
    unprojects the masked pixels with them (:mod:`dynsplat_ns.priors.dynamic_seeds`)."""
    metadata = outputs.metadata or {}
    files = metadata.get("motion_mask_filenames")
    if not files:
        return None
    masks = [read_mask_file(f) for f in files]
    seeding: dict[str, Any] = {"cameras": outputs.cameras, "masks": masks}
    depth_files = metadata.get("depth_filenames")
    if depth_kind(metadata) == "disparity" and len(depth_files) == len(masks):
        seeding["disparity"] = [
            None if f is None else torch.from_numpy(_resize(read_depth_file(f), m.shape[1], m.shape[0], "disparity"))
            for f, m in zip(depth_files, masks, strict=True)
        ]
        images = zip(outputs.image_filenames, masks, strict=True)
        seeding["images"] = [_read_rgb(f, m.shape[1], m.shape[0]) for f, m in images]
    return seeding


def _read_rgb(path: str | Path, width: int, height: int) -> Tensor:
    """An image as [height, width, 3] float 0–1 (area-resized)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BOX)
            return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageFileError(path, f"cannot decode image ({str(err).strip() or type(err).__name__})") from err
