"""The ``meta`` dict returned by every backend (the subset of gsplat 1.4.0's non-packed meta that is backend-agnostic).

gsplat's ``DefaultStrategy`` reads ``width``, ``height``, ``n_cameras``, ``radii``, ``gaussian_ids`` and
``means2d`` (``.grad`` / ``.absgrad``); ``MCMCStrategy`` reads nothing. The rest are handy for losses and debugging.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["META_KEYS", "make_meta"]

META_KEYS = (
    "backend",
    "camera_ids",
    "gaussian_ids",
    "packed",
    "radii",
    "means2d",
    "depths",
    "conics",
    "opacities",
    "width",
    "height",
    "n_cameras",
    "absgrad",
)


def make_meta(
    backend: str,
    radii: Tensor,
    means2d: Tensor,
    depths: Tensor,
    conics: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    absgrad: bool,
) -> dict[str, Any]:
    """Assemble the meta dict.

    Args:
        backend: "torch" or "gsplat".
        radii: Pixel radii, 0 = culled. [C, N] int32
        means2d: Projected centres, a non-leaf tensor of the graph (call ``retain_grad()`` on it). [C, N, 2]
        depths: Camera-space depths. [C, N]
        conics: Inverse 2D covariances (xx, xy, yy). [C, N, 3]
        opacities: Per-camera opacities actually composited. [C, N]
        width: Image width.
        height: Image height.
        absgrad: Whether ``means2d.absgrad`` is filled during backward.

    Returns:
        A dict with exactly :data:`META_KEYS`.
    """
    return {
        "backend": backend,
        "camera_ids": None,
        "gaussian_ids": None,
        "packed": False,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": opacities,
        "width": width,
        "height": height,
        "n_cameras": radii.shape[0],
        "absgrad": absgrad,
    }
