"""Fitting a checkpoint's state to a model trained on another set of images or frames (resume / fine-tune).

The pipeline tells the model what it knows about the checkpoint's training data (:class:`ResumeInfo`); each component
declares which of its tensors have an axis indexed by the training image or by the training frame (see
``per_image_state_keys`` / ``per_frame_state_keys`` of :class:`dynsplat_ns.motion.base.MotionModel` and of the model).
Nothing is guessed from names or shapes: a declared per-image axis is matched row by row by image name, a declared
per-frame axis is resampled linearly in time, and any other shape mismatch is an error naming the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ResumeInfo", "RowMap", "FrameAxes", "adapt_state", "remap_rows", "resample_frames"]

#: The axis (or axes) of a tensor indexed by the training frame.
FrameAxes = int | tuple[int, ...]


@dataclass(frozen=True)
class ResumeInfo:
    """What the pipeline knows about the training data of a checkpoint it loads into a model.

    The default (nothing known) loads unchanged shapes as they are and re-initialises per-image rows whose count
    changed.
    """

    row_map: tuple[int, ...] | None = None
    """For each training image of this dataset, its index among the checkpoint's training images (-1: not there)."""
    old_num_images: int | None = None
    """Number of training images the checkpoint was trained on."""


@dataclass(frozen=True)
class RowMap:
    """How a per-image tensor was matched on loading, for fitting its optimizer state the same way."""

    rows: tuple[int, ...]
    """Checkpoint row of each row of the model's tensor (-1: kept its fresh initialisation)."""
    axis: int = 0
    """The tensor's image axis."""


def remap_rows(loaded: Tensor, current: Tensor, rows: tuple[int, ...] | list[int], axis: int = 0) -> Tensor:
    """``current`` (fresh initialisation) with index ``i`` of ``axis`` replaced by ``loaded``'s ``rows[i]`` where
    ``rows[i] >= 0``."""
    out = current.detach().clone().to(loaded.dtype).movedim(axis, 0)
    src = loaded.detach().movedim(axis, 0)
    idx = torch.as_tensor(list(rows), dtype=torch.long)
    keep = (idx >= 0) & (idx < src.shape[0])
    out[keep] = src[idx[keep]].to(out.device)
    return out.movedim(0, axis).contiguous()


def resample_frames(loaded: Tensor, sizes: Mapping[int, int]) -> Tensor:
    """``loaded`` linearly resampled along each axis ``a`` of ``sizes`` to ``sizes[a]`` entries (entry k of L at
    ``t = k / (L - 1)``; a single entry is repeated)."""
    x = loaded.detach().float()
    for axis, size in sizes.items():
        if x.shape[axis] == size:
            continue
        y = x.movedim(axis, -1)
        shape = y.shape
        if shape[-1] == 1:
            y = y.expand(*shape[:-1], size)
        else:
            flat = y.reshape(1, -1, shape[-1])
            y = torch.nn.functional.interpolate(flat, size=size, mode="linear", align_corners=True)
            y = y.reshape(*shape[:-1], size)
        x = y.movedim(-1, axis)
    return x.contiguous().to(loaded.dtype)


def _normalised(axes: FrameAxes, dim: int) -> tuple[int, ...]:
    return tuple(sorted({a % dim for a in ((axes,) if isinstance(axes, int) else axes)}))


def adapt_state(
    state: Mapping[str, object],
    current: Mapping[str, Tensor],
    per_image: Mapping[str, int],
    per_frame: Mapping[str, FrameAxes],
    resume: ResumeInfo,
    resized_lead: tuple[str, ...] = ("gauss_params.",),
) -> tuple[dict[str, object], dict[str, RowMap], list[str]]:
    """A copy of ``state`` fitted to the shapes of ``current``.

    Args:
        state: The checkpoint's state dict (model keys).
        current: The model's own state dict.
        per_image: Keys whose given axis indexes the training images.
        per_frame: Keys whose given axis (or axes) indexes the training frames.
        resume: What is known about the checkpoint's training data.
        resized_lead: Key prefixes whose leading axis the loader resizes itself (splatfacto: the Gaussian count).

    Returns:
        ``(state, row_maps, warnings)``: the fitted state, how each remapped per-image tensor was matched, and
        messages about per-image tensors re-initialised for lack of image names.

    Raises:
        ValueError: naming every tensor whose shape differs in an undeclared way (e.g. another ``sh_degree``).
    """
    out = dict(state)
    row_maps: dict[str, RowMap] = {}
    warnings: list[str] = []
    problems = []
    for key, value in state.items():
        cur = current.get(key)
        if not isinstance(value, Tensor) or not isinstance(cur, Tensor):
            continue
        lead = 1 if key.startswith(resized_lead) else 0
        if value.shape[lead:] == cur.shape[lead:] and key not in per_image:
            continue
        mismatch = f"{key}: checkpoint {list(value.shape)} vs model {list(cur.shape)}"
        if value.dim() != cur.dim():
            problems.append(mismatch)
        elif key in per_image:
            axis = per_image[key] % cur.dim()
            if any(value.shape[d] != cur.shape[d] for d in range(lead, cur.dim()) if d != axis):
                problems.append(mismatch)
                continue
            n_new, n_old = cur.shape[axis], value.shape[axis]
            if resume.row_map is not None and len(resume.row_map) == n_new and resume.old_num_images == n_old:
                rows = tuple(resume.row_map)
                if n_new == n_old and rows == tuple(range(n_new)):
                    continue
            elif n_new == n_old:
                continue
            else:
                warnings.append(
                    f"{key}: checkpoint has {n_old} images, dataset {n_new} and no image names to match: "
                    "re-initialised"
                )
                rows = (-1,) * n_new
            out[key] = remap_rows(value, cur, rows, axis)
            row_maps[key] = RowMap(rows, axis)
        elif key in per_frame:
            axes = _normalised(per_frame[key], cur.dim())
            if any(value.shape[d] != cur.shape[d] for d in range(lead, cur.dim()) if d not in axes):
                problems.append(mismatch)
                continue
            out[key] = resample_frames(value, {a: cur.shape[a] for a in axes if a >= lead})
        else:
            problems.append(mismatch)
    if problems:
        raise ValueError(
            "checkpoint does not fit this model (trained with other settings, e.g. sh_degree or motion "
            "resolution?): " + "; ".join(problems)
        )
    return out, row_maps, warnings
