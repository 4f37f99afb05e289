"""Public entry point: a gsplat-shaped ``rasterize`` dispatching to gsplat (CUDA) or the torch backend (any device)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dynsplat_ns.render.options import BlockOptions
from dynsplat_ns.render.settings import RasterSettings
from dynsplat_ns.render.torch_backend import rasterize_torch
from dynsplat_ns.render.validation import check_inputs

__all__ = ["rasterize", "resolve_backend"]


def resolve_backend(backend: str, device_type: str) -> str:
    """Pick the concrete backend.

    Args:
        backend: "auto", "torch", "gsplat" or "cpp".
        device_type: ``tensor.device.type`` of the inputs.

    Returns:
        "torch", "gsplat" or "cpp". "auto" gives "gsplat" on CUDA, "cpp" on CPU when the compiled CPU kernels are
        available (built on first use, cached per user; see :mod:`dynsplat_ns.kernels.cpu`), else "torch".

    Raises:
        ValueError: for "gsplat" on a non-CUDA device or "cpp" on a non-CPU device.
    """
    if backend == "auto":
        if device_type == "cuda":
            return "gsplat"
        if device_type == "cpu":
            from dynsplat_ns.kernels.cpu import cpu_kernels_available  # lazy: builds on first use only

            return "cpp" if cpu_kernels_available() else "torch"
        return "torch"
    if backend == "gsplat" and device_type != "cuda":
        raise ValueError(
            f"rasterize: backend='gsplat' needs CUDA tensors (gsplat's kernels need CUDA), but the inputs are on "
            f"{device_type!r}; use backend='torch' or backend='auto' instead"
        )
    if backend == "cpp" and device_type != "cpu":
        raise ValueError(
            f"rasterize: backend='cpp' (compiled CPU kernels) needs CPU tensors, but the inputs are on "
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
    torch_options: BlockOptions | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Rasterize 3D Gaussians into C pinhole cameras, with gsplat 1.4.0's ``rasterization`` conventions.

    The options (everything but the tensors) become one :class:`dynsplat_ns.render.RasterSettings`, validated once,
    which is all the backends read (the compiled backend's pixel block keeps its default here).

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
        backend: "auto" (gsplat on CUDA; on CPU the compiled kernels when available, else torch), "torch" (any
            device), "gsplat" (CUDA only) or "cpp" (compiled CPU kernels; float32/float64 CPU tensors).
        rasterize_mode: "classic", or "antialiased" (mip-splatting opacity compensation).
        torch_options: Block and chunk sizes of the torch backend (:class:`dynsplat_ns.render.BlockOptions`; speed and
            memory only, never the result); None uses the defaults. Not a gsplat argument; only the "torch" backend
            reads it (with backend "auto" on CPU that may be the compiled one, which ignores it).

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)`` where D' is D, 1 or D + 1 depending on
        ``render_mode``, and ``meta`` holds :data:`dynsplat_ns.render.meta.META_KEYS` (``means2d`` [C, N, 2],
        ``radii`` [C, N] int32 with 0 = culled, ``depths`` [C, N], ``conics`` [C, N, 3], ``opacities`` [C, N],
        ``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``, ``packed=False``, ...), enough for gsplat's
        ``DefaultStrategy`` and ``MCMCStrategy``.

    Raises:
        ValueError: on malformed inputs, an unknown mode/backend, or backend "gsplat" without CUDA.
        TypeError: when ``torch_options`` is neither None nor a :class:`BlockOptions`.
    """
    settings = RasterSettings(  # every option, validated once; the backends read only this
        width=width,
        height=height,
        sh_degree=sh_degree,
        render_mode=render_mode,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        absgrad=absgrad,
        backend=backend,
        rasterize_mode=rasterize_mode,
        torch_options=torch_options,
    )
    check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, settings)
    chosen = resolve_backend(settings.backend, means.device.type)
    dtype = means.dtype
    tensors = [t.to(dtype) for t in (means, quats, scales, opacities, colors, viewmats, Ks)]  # gsplat's order
    tensors.append(None if backgrounds is None else backgrounds.to(dtype))
    if chosen == "gsplat":
        from dynsplat_ns.render.gsplat_backend import rasterize_gsplat  # lazy: keeps gsplat off CPU paths

        return rasterize_gsplat(*tensors, settings=settings)
    if chosen == "cpp":
        from dynsplat_ns.render.compiled_backend import COMPILED_DTYPES, rasterize_compiled

        if dtype in COMPILED_DTYPES or settings.backend == "cpp":  # auto: other dtypes (e.g. half) stay on torch
            return rasterize_compiled(*tensors, settings=settings)
    return rasterize_torch(*tensors, settings=settings)
