"""Checks of :func:`dynsplat_ns.render.rasterize`'s tensors against a settings value (:func:`check_inputs`).

The options themselves are checked once, when their :class:`~dynsplat_ns.render.settings.RasterSettings` is built
(:func:`dynsplat_ns.render.settings.check_settings`). Both raise a clear ``ValueError`` on the first problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dynsplat_ns.render.settings import BACKENDS, RASTERIZE_MODES, RasterSettings
from dynsplat_ns.render.sh import num_sh_bases

__all__ = ["BACKENDS", "RASTERIZE_MODES", "check_inputs"]


def _shape_error(name: str, tensor: Tensor, expected: str) -> ValueError:
    return ValueError(f"rasterize: `{name}` must have shape {expected}, got {tuple(tensor.shape)}")


def _check_shape(name: str, tensor: object, expected: Sequence[int | None], text: str) -> None:
    if not isinstance(tensor, Tensor):
        raise ValueError(f"rasterize: `{name}` must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != len(expected):
        raise _shape_error(name, tensor, text)
    if any(e is not None and s != e for s, e in zip(tensor.shape, expected, strict=True)):
        raise _shape_error(name, tensor, text)


def check_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    backgrounds: Tensor | None,
    settings: RasterSettings,
) -> None:
    """Validate the tensors' shapes, dtypes and devices against (already validated) settings.

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] when ``settings.sh_degree`` is None, else [(C,) N, K, 3] with
            K >= (sh_degree + 1) ** 2.
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: None or [C, D] (D = 3 with SH).
        settings: The options; only ``sh_degree`` matters here.

    Raises:
        ValueError: with a precise message on the first problem.
    """
    sh_degree = settings.sh_degree
    _check_shape("means", means, (None, 3), "[N, 3]")
    n = means.shape[0]
    _check_shape("quats", quats, (n, 4), f"[N, 4] with N={n}")
    _check_shape("scales", scales, (n, 3), f"[N, 3] with N={n}")
    _check_shape("opacities", opacities, (n,), f"[N] with N={n}")
    _check_shape("viewmats", viewmats, (None, 4, 4), "[C, 4, 4]")
    c = viewmats.shape[0]
    if c == 0:
        raise ValueError("rasterize: `viewmats` holds no camera (C = 0)")
    _check_shape("Ks", Ks, (c, 3, 3), f"[C, 3, 3] with C={c}")

    if not isinstance(colors, Tensor):
        raise ValueError(f"rasterize: `colors` must be a torch.Tensor, got {type(colors).__name__}")
    if sh_degree is None:
        ok = (colors.dim() == 2 and colors.shape[0] == n) or (colors.dim() == 3 and colors.shape[:2] == (c, n))
        if not ok or colors.shape[-1] == 0:
            raise _shape_error("colors", colors, f"[N, D] or [C, N, D] with C={c}, N={n}, D>0 (sh_degree=None)")
        n_channels = colors.shape[-1]
    else:
        need = num_sh_bases(sh_degree)
        ok = (colors.dim() == 3 and colors.shape[0] == n) or (colors.dim() == 4 and colors.shape[:2] == (c, n))
        if not ok or colors.shape[-1] != 3 or colors.shape[-2] < need:
            raise _shape_error(
                "colors", colors, f"[N, K, 3] or [C, N, K, 3] with C={c}, N={n}, K>={need} (sh_degree={sh_degree})"
            )
        n_channels = 3
    if backgrounds is not None:
        _check_shape("backgrounds", backgrounds, (c, n_channels), f"[C, D] with C={c}, D={n_channels}")

    tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors}
    tensors.update({"viewmats": viewmats, "Ks": Ks})
    if backgrounds is not None:
        tensors["backgrounds"] = backgrounds
    for name, tensor in tensors.items():
        if not torch.is_floating_point(tensor):
            raise ValueError(f"rasterize: `{name}` must be a floating point tensor, got {tensor.dtype}")
        if tensor.device != means.device:
            raise ValueError(f"rasterize: `{name}` is on {tensor.device} but `means` is on {means.device}")

