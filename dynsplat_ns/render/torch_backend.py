"""Pure-torch rasterizer (any device, CPU included): projection -> colours -> block compositing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from dynsplat_ns.render.composite import composite_blocks
from dynsplat_ns.render.cpu_allocator import tune_cpu_allocator
from dynsplat_ns.render.features import composite_features, finish_render, gaussian_colors
from dynsplat_ns.render.meta import make_meta
from dynsplat_ns.render.projection import project_gaussians
from dynsplat_ns.render.settings import RasterSettings

__all__ = ["composite_inputs", "rasterize_torch"]


def rasterize_torch(
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
    stats: dict | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render with the torch backend. Inputs as :func:`dynsplat_ns.render.rasterize` (validated there).

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] or SH [(C,) N, K, 3]
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: [C, D] or None.
        settings: Image size and options; ``settings.torch_options`` sizes the compositor's blocks and chunks
            (speed/memory only), ``backend`` and ``compiled_block`` are not read.
        stats: Optional dict that receives the compositor's counts (see
            :func:`dynsplat_ns.render.composite.composite_blocks`).

    Returns:
        ``(render [C, H, W, D'], alpha [C, H, W, 1], meta)``.
    """
    if means.device.type == "cpu":
        tune_cpu_allocator()
    proj, opac, feats, bgs = composite_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, settings
    )
    width, height = settings.width, settings.height
    render, alpha = composite_blocks(
        proj.means2d, proj.conics, opac, feats, bgs, proj.depths, proj.radii, width, height,
        absgrad=settings.absgrad, options=settings.torch_options, stats=stats,
    )
    render = finish_render(render, alpha, settings.render_mode)
    meta = make_meta(
        "torch", proj.radii, proj.means2d, proj.depths, proj.conics, opac, width, height, settings.absgrad
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
    backgrounds: Tensor | None,
    settings: RasterSettings,
    project: Callable[..., Any] = project_gaussians,
):
    """What every CPU compositor consumes, computed in torch (autograd reaches means/quats/scales through it).

    Args:
        means: [N, 3]
        quats: [N, 4]
        scales: [N, 3]
        opacities: [N]
        colors: [(C,) N, D] or SH [(C,) N, K, 3]
        viewmats: [C, 4, 4]
        Ks: [C, 3, 3]
        backgrounds: [C, D] or None.
        settings: Image size, sh_degree, render_mode, near/far planes, eps2d and rasterize_mode are read.
        project: The projection (:func:`project_gaussians`; the compiled backend passes its C++ twin with the same
            signature and results).

    Returns:
        ``(proj, opacities [C, N], features [C, N, D'], backgrounds [C, D'] or None)``: the projection
        (:func:`project_gaussians`), opacities with the antialiasing compensation applied, and the per-camera
        features of ``render_mode`` (colors and/or depth).
    """
    proj = project(
        means, quats, scales, viewmats, Ks, settings.width, settings.height, eps2d=settings.eps2d,
        near_plane=settings.near_plane, far_plane=settings.far_plane,
        calc_compensations=settings.rasterize_mode == "antialiased",
    )
    opac = opacities[None, :].expand(viewmats.shape[0], -1)  # [C, N]
    if proj.compensations is not None:
        opac = opac * proj.compensations
    render_mode = settings.render_mode
    rgb = None if render_mode in ("D", "ED") else gaussian_colors(means, colors, viewmats, settings.sh_degree)
    feats, bgs = composite_features(rgb, proj.depths, backgrounds, render_mode)  # [C, N, D'], [C, D'] or None
    return proj, opac, feats, bgs
