"""One ``meta`` for views rasterized in separate :func:`dynsplat_ns.render.rasterize` calls.

gsplat's ``DefaultStrategy`` accumulates its densification statistics from one ``meta`` per step: the gradient of
``means2d`` [C, N, 2] (``.grad``, or ``.absgrad``), ``radii`` [C, N], ``width``, ``height`` and ``n_cameras``. It scales
each camera's gradient by ``n_cameras`` (undoing the 1/C of a loss averaged over the C cameras), so a step over C
views adds, per view, what a single-view step with that view's loss would add. When views must be rasterized in
separate calls (e.g. one call per time, because the Gaussians move between times), :func:`merge_metas` builds the meta
one call over all C views would have returned: the per-call tensors concatenated along the camera axis, and a
``means2d`` leaf whose ``.grad`` / ``.absgrad`` are filled during backward from the per-call ``means2d`` (tensor
hooks), so the strategy reads it exactly as it reads a single call's meta. The training loss must be the mean over the
C views (as for one multi-camera call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["merge_metas"]

# Per-camera tensors of the meta ([C, N, ...]); concatenated along the camera axis.
_PER_CAMERA_KEYS = ("radii", "depths", "conics", "opacities")


def merge_metas(metas: Sequence[dict[str, Any]], views: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Merge the metas of several non-packed ``rasterize`` calls into one, as if one call had rendered every view.

    Call it after the renders and before ``backward``: the merged ``means2d`` receives its gradients during backward.

    Args:
        metas: The calls' metas (same ``width``/``height``, non-packed), each with ``means2d`` [C_i, N, 2].
        views: For each call, the positions of its C_i views in the merged camera axis (a permutation of
            0..C-1 over all calls); None: the calls' views in order.

    Returns:
        A meta with the keys of :data:`dynsplat_ns.render.meta.META_KEYS`; ``n_cameras`` = C = Σ C_i. A single meta
        with the default order is returned unchanged (the plain one-call step).

    Raises:
        ValueError: when the metas disagree on the image size, are packed, or ``views`` is not a permutation.
    """
    if not metas:
        raise ValueError("merge_metas needs at least one meta")
    counts = [int(m["n_cameras"]) for m in metas]
    if len(metas) == 1 and (views is None or list(views[0]) == list(range(counts[0]))):
        return metas[0]
    if views is None:
        starts = [sum(counts[:i]) for i in range(len(counts))]
        views = [range(s, s + c) for s, c in zip(starts, counts, strict=True)]
    positions = [torch.as_tensor(list(v), dtype=torch.long) for v in views]
    total = sum(counts)
    order = torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long)
    if [len(p) for p in positions] != counts or not torch.equal(order.sort().values, torch.arange(total)):
        raise ValueError(f"views {[p.tolist() for p in positions]} are not a permutation of the {total} merged views")
    sizes = {(m["width"], m["height"]) for m in metas}
    if len(sizes) != 1:
        raise ValueError(f"views rendered in one step must share one image size (width, height), got {sorted(sizes)}")
    if any(m.get("packed") for m in metas):
        raise ValueError("merge_metas supports non-packed metas only")
    inverse = order.argsort()  # merged position -> row of the concatenation

    def gather(key: str) -> Tensor:
        parts = [m[key] for m in metas]
        return torch.cat(parts)[inverse.to(parts[0].device)]

    first = metas[0]
    merged: dict[str, Any] = dict(first)
    merged.update({key: gather(key) for key in _PER_CAMERA_KEYS if first.get(key) is not None})
    merged.update(camera_ids=None, gaussian_ids=None, packed=False, n_cameras=total)
    merged["absgrad"] = any(bool(m.get("absgrad")) for m in metas)
    merged["means2d"] = _merged_means2d([m["means2d"] for m in metas], positions, inverse)
    return merged


def _merged_means2d(parts: list[Tensor], positions: list[Tensor], inverse: Tensor) -> Tensor:
    """A leaf [C, N, 2] holding the parts' values at their positions, whose ``.grad`` (summed) and ``.absgrad`` (set)
    are filled by hooks on the parts during backward."""
    merged = torch.cat([p.detach() for p in parts])[inverse.to(parts[0].device)]
    if not any(p.requires_grad for p in parts):
        return merged
    merged.requires_grad_(True)

    def hook_for(part: Tensor, rows: Tensor):
        def hook(grad: Tensor) -> None:
            if merged.grad is None:
                merged.grad = torch.zeros_like(merged)
            merged.grad.index_add_(0, rows, grad)
            absgrad = getattr(part, "absgrad", None)  # set by the rasterizer's backward, which runs before this hook
            if absgrad is not None:
                if getattr(merged, "absgrad", None) is None:
                    merged.absgrad = torch.zeros_like(merged)
                merged.absgrad.index_copy_(0, rows, absgrad.to(merged.dtype))

        return hook

    for part, rows in zip(parts, positions, strict=True):
        if part.requires_grad:
            part.register_hook(hook_for(part, rows.to(part.device)))
    return merged
