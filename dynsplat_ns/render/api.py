"""Public entry point: a gsplat-shaped ``rasterize`` dispatching to gsplat (CUDA) or the torch backend (any device)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dynsplat_ns.render.torch_backend import rasterize_torch
from dynsplat_ns.render.validation import check_inputs

__all__ = ["rasterize", "resolve_backend"]


def resolve_backend(backend: str, device_type: str) -> str:
    """Pick the concrete backend.

    Args:
        backend: "auto", "torch" or "gsplat".
        device_type: ``tensor.device.type`` of the inputs.

    Returns:
        "torch" or "gsplat".

    Raises:
        ValueError: for "gsplat" on a non-CUDA device.
    """
    if backend == "auto":
        return "gsplat" if device_type == "cuda" else "torch"
    if backend == "gsplat" and device_type != "cuda":
        raise ValueError(
            f"rasterize: backend='gsplat' needs CUDA tensors (gsplat's kernels need CUDA), but the inputs are on "
            f"{device_type!r}; use backend='torch' or backend='auto' instead"
        )
    return backend


def rasterize(
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
    backend: str = "auto",
    rasterize_mode: str = "classic",
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Rasterize 3D Gaussians into C pinhole cameras, with gsplat 1.4.0's ``rasterization`` conventions.

    Args:
        means: Centres. [N, 3]
        quats: Rotations, wxyz, normalised internally. [N, 4]
        scales: Activated scales. [N, 3]
        opacities: Activated opacities. [N]
        colors: Features [N, D] / [C, N, D] when ``sh_degree`` is None, else SH coefficients [N, K, 3] /
            [C, N, K, 3] evaluated along ``mean - camera centre`` as ``max(SH + 0.5, 0)``.
        viewmats: World-to-camera matrices, OpenCV convention. [C, 4, 4]
        Ks: Pinhole intrinsics. [C, 3, 3]
        width: Image width.
        height: Image height.
        sh_degree: None, or the SH degree in use (0..3, ``(sh_degree + 1) ** 2 <= K``).
        backgrounds: Background colours. [C, D]
        render_mode: "RGB", "D" (accumulated depth), "ED" (expected depth), "RGB+D" or "RGB+ED" (depth last).
        near_plane: Gaussians with camera z < near_plane are culled.
        far_plane: Gaussians with camera z > far_plane are culled.
        eps2d: Blur added to the projected 2D covariances.
        absgrad: Also accumulate ``meta["means2d"].absgrad`` (sum over pixels of |dL/dmeans2d|) in backward.
        backend: "auto" (gsplat on CUDA, torch otherwise), "torch" (any device) or "gsplat" (CUDA only).
        rasterize_mode: "classic", or "antialiased" (mip-splatting opacity compensation).

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)`` where D' is D, 1 or D + 1 depending on
        ``render_mode``, and ``meta`` holds :data:`dynsplat_ns.render.meta.META_KEYS` (``means2d`` [C, N, 2],
        ``radii`` [C, N] int32 with 0 = culled, ``depths`` [C, N], ``conics`` [C, N, 3], ``opacities`` [C, N],
        ``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``, ``packed=False``, ...), enough for gsplat's
        ``DefaultStrategy`` and ``MCMCStrategy``.

    Raises:
        ValueError: on malformed inputs, an unknown mode/backend, or backend "gsplat" without CUDA.
    """
    check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, render_mode,
        backend, rasterize_mode,
    )
    chosen = resolve_backend(backend, means.device.type)
    dtype = means.dtype
    args = [t.to(dtype) for t in (means, quats, scales, opacities, colors, viewmats, Ks)]
    kwargs: dict[str, Any] = dict(
        sh_degree=sh_degree,
        backgrounds=None if backgrounds is None else backgrounds.to(dtype),
        render_mode=render_mode,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        absgrad=absgrad,
        rasterize_mode=rasterize_mode,
    )
    if chosen == "gsplat":
        from dynsplat_ns.render.gsplat_backend import rasterize_gsplat  # lazy: keeps gsplat off CPU paths

        return rasterize_gsplat(*args, width, height, **kwargs)
    return rasterize_torch(*args, width, height, **kwargs)
