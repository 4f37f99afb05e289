"""Adapter to gsplat 1.4.0's CUDA ``rasterization`` (non-packed), returning our backend-agnostic meta.

gsplat is imported lazily, only when this backend actually runs, so CPU code paths never reach its CUDA wrappers
(importing them is harmless, calling any of them starts a JIT build of the CUDA extension).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dynsplat_ns.render.meta import make_meta

__all__ = ["rasterize_gsplat"]


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    absgrad: bool = False,
    rasterize_mode: str = "classic",
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
        width: Image width.
        height: Image height.
        sh_degree: SH degree or None.
        backgrounds: [C, D] or None.
        render_mode: "RGB", "D", "ED", "RGB+D" or "RGB+ED".
        near_plane: Near culling plane.
        far_plane: Far culling plane.
        eps2d: 2D blur.
        absgrad: Fill ``meta["means2d"].absgrad`` during backward.
        rasterize_mode: "classic" or "antialiased".

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
        width=width,
        height=height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=sh_degree,
        packed=False,
        backgrounds=backgrounds,
        render_mode=render_mode,
        absgrad=absgrad,
        rasterize_mode=rasterize_mode,
    )
    meta = make_meta(
        "gsplat", info["radii"], info["means2d"], info["depths"], info["conics"], info["opacities"],
        width, height, absgrad,
    )
    return render, alpha, meta
