"""Adapter to gsplat 1.4.0's CUDA ``rasterization`` (non-packed), returning our backend-agnostic meta.

gsplat is imported lazily, only when this backend actually runs, so CPU code paths never reach its CUDA wrappers
(importing them is harmless, calling any of them starts a JIT build of the CUDA extension).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dynsplat_ns.render.meta import make_meta
from dynsplat_ns.render.settings import RasterSettings

__all__ = ["rasterize_gsplat"]


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    backgrounds: Tensor | None = None,
    *,
    settings: RasterSettings,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render with gsplat's CUDA kernels. Inputs must be CUDA tensors (checked by the caller).

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] or SH [(C,) N, K, 3]
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: [C, D] or None.
        settings: Image size and gsplat's options; ``backend``, ``torch_options`` and ``compiled_block`` are not
            read.

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)``.
    """
    from gsplat.rendering import rasterization  # lazy on purpose, see module docstring

    render, alpha, info = rasterization(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=settings.width,
        height=settings.height,
        near_plane=settings.near_plane,
        far_plane=settings.far_plane,
        eps2d=settings.eps2d,
        sh_degree=settings.sh_degree,
        packed=False,
        backgrounds=backgrounds,
        render_mode=settings.render_mode,
        absgrad=settings.absgrad,
        rasterize_mode=settings.rasterize_mode,
    )
    meta = make_meta(
        "gsplat", info["radii"], info["means2d"], info["depths"], info["conics"], info["opacities"],
        settings.width, settings.height, settings.absgrad,
    )
    return render, alpha, meta
