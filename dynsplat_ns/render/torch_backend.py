"""Pure-torch rasterizer (any device, CPU included): projection -> colours -> block compositing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from dynsplat_ns.render.composite import composite_blocks
from dynsplat_ns.render.cpu_allocator import tune_cpu_allocator
from dynsplat_ns.render.features import composite_features, finish_render, gaussian_colors
from dynsplat_ns.render.meta import make_meta
from dynsplat_ns.render.options import BlockOptions
from dynsplat_ns.render.projection import project_gaussians

__all__ = ["rasterize_torch"]


def rasterize_torch(
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
    options: BlockOptions | None = None,
    stats: dict | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render with the torch backend. Arguments are those of :func:`dynsplat_ns.render.rasterize` (validated there).

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
        render_mode: See :data:`dynsplat_ns.render.features.RENDER_MODES`.
        near_plane: Near culling plane.
        far_plane: Far culling plane.
        eps2d: 2D blur.
        absgrad: Fill ``meta["means2d"].absgrad`` during backward.
        rasterize_mode: "classic" or "antialiased" (mip-splatting opacity compensation).
        options: Block and chunk sizes of the compositor (speed/memory only); None uses the defaults.
        stats: Optional dict that receives the compositor's counts (see
            :func:`dynsplat_ns.render.composite.composite_blocks`).

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)``.
    """
    if means.device.type == "cpu":
        tune_cpu_allocator()
    proj, opac, feats, bgs = composite_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, render_mode,
        near_plane, far_plane, eps2d, rasterize_mode,
    )
    render, alpha = composite_blocks(
        proj.means2d, proj.conics, opac, feats, bgs, proj.depths, proj.radii, width, height,
        absgrad=absgrad, options=options, stats=stats,
    )
    render = finish_render(render, alpha, render_mode)
    meta = make_meta(
        "torch", proj.radii, proj.means2d, proj.depths, proj.conics, opac, width, height, absgrad
    )
    return render, alpha, meta


def composite_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,
    render_mode: str,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    rasterize_mode: str,
    project: Callable[..., Any] = project_gaussians,
):
    """What every CPU compositor consumes, computed in torch (autograd reaches means/quats/scales through it).

    ``project`` is the projection (:func:`project_gaussians`; the compiled backend passes its C++ twin with the same
    signature and results).

    Returns:
        ``(proj, opacities [C, N], features [C, N, D'], backgrounds [C, D'] or None)``: the projection
        (:func:`project_gaussians`), opacities with the antialiasing compensation applied, and the per-camera
        features of ``render_mode`` (colors and/or depth).
    """
    proj = project(
        means, quats, scales, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
        far_plane=far_plane, calc_compensations=rasterize_mode == "antialiased",
    )
    opac = opacities[None, :].expand(viewmats.shape[0], -1)  # [C, N]
    if proj.compensations is not None:
        opac = opac * proj.compensations
    rgb = None if render_mode in ("D", "ED") else gaussian_colors(means, colors, viewmats, sh_degree)  # [C, N, D]
    feats, bgs = composite_features(rgb, proj.depths, backgrounds, render_mode)
    return proj, opac, feats, bgs
