"""Defocus during training: per training image a learnable focus distance and aperture (thin-lens circle of confusion).

A point at camera depth ``z`` seen through a lens focused at ``F`` blurs into a disc of radius
``c = aperture · |1/z − 1/F|`` pixels (``aperture`` in pixel·depth units, as the scene generator's
:mod:`dynsplat_ns.scenes.blur`). Each Gaussian's footprint grows by it: ``c²`` is added to its 2D covariance, and its
opacity is scaled by ``sqrt(det Σ / det(Σ + c² I))`` so its energy is conserved (as gsplat's antialiased mode does for
``eps2d``).

It is done on the rasterizer's *inputs*, so it works unchanged on every backend (our CPU ``rasterize()`` and gsplat's
CUDA ``rasterization``): adding an isotropic 3D variance ``s²`` to a Gaussian ``R S² Rᵀ`` gives ``R (S² + s² I) Rᵀ``,
i.e. ``scales' = sqrt(scales² + s²)`` exactly, and with ``s = c · z / fx`` its projection adds ``s² J Jᵀ ≈ c² I``
pixels² (exactly ``c² I`` at the image centre). The opacity compensation uses that projected term and the projected
2D covariance (:func:`dynsplat_ns.render.projection.project_gaussians`). ``s`` depends on the camera, so each
(virtual) view is rasterized with its own inputs; the views of one image share focus and aperture.

Parameters are scale-free, so one learning rate suits every scene: each image has a reference depth ``z0`` (the median
depth of the Gaussians in front of the camera at its first training render, saved), the focus is ``F = z0 / q`` with
``q`` learnable (1 at the start) and the aperture is ``b · z0`` with ``b²`` learnable (``b``: the circle of confusion in
pixels of a point at half the focus distance, ``c = b · |z0/z − q|``). ``b²`` starts at zero, so the blur is exactly the
identity at initialisation: ``s² = 0`` gives the Gaussians' own scales and opacities, values and gradients. ``b²`` is
learned rather than ``b`` because ``s²`` is linear in it: its gradient at zero is not zero (the circle of confusion
enters squared). Its value is ``max(b², 0)`` with the gradient passed straight through, so an aperture pushed below
zero early (while the scene is still blurry) can open again; the parameter is kept above ``-COC_SQ_FLOOR``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dynsplat_ns.render.projection import project_gaussians

#: Lowest value of the b² parameter (pixels²): a closed aperture re-opens within a few steps.
COC_SQ_FLOOR = 0.25
#: DefocusBlur's tables of the camera each image was last trained with (for the evaluation filter).
VIEW_TABLES = ("view_viewmat", "view_camera", "view_time")
#: Gaussians closer than this (camera z) are culled by the rasterizer; their blur uses depth 1 instead.
NEAR = 0.01


class DefocusBlur(nn.Module):
    """Per-image thin-lens defocus: tables of b² (pixels²), relative inverse focus ``q`` and reference depth ``z0``.

    Args:
        num_images: number of training images (the camera optimizer's indexing: ``camera.metadata["cam_idx"]``).
        shared_aperture: one b² for all images (one lens and aperture for the whole video; it learns from every
            step) instead of one per image.
    """

    def __init__(self, num_images: int, shared_aperture: bool = False) -> None:
        super().__init__()
        n = max(int(num_images), 1)
        self.shared_aperture = bool(shared_aperture)
        self.coc_sq = nn.Parameter(torch.zeros(1 if shared_aperture else n))  # [n] or [1] b², pixels² (clamped at 0)
        self.focus_rel = nn.Parameter(torch.ones(n))  # [n] q: focus distance = z0 / q
        # Each image's reference depth z0, set at its first training render (0: not yet); saved, so a resumed run
        # keeps the scale of the learned values.
        self.register_buffer("ref_depth", torch.zeros(n))
        # The camera each image was last trained with (NaN time: not yet), for the evaluation filter; saved.
        self.register_buffer("view_viewmat", torch.zeros(n, 4, 4))  # world-to-camera (OpenCV)
        self.register_buffer("view_camera", torch.zeros(n, 6))  # fx, fy, cx, cy, width, height (pixels)
        self.register_buffer("view_time", torch.full((n,), math.nan))

    def aperture(self, image: int | Tensor | None = None) -> Tensor:
        """Aperture in pixel·depth units (``c = aperture · |1/z − 1/focus|``), of one image or all [n]."""
        z0 = self.ref_depth if image is None else self.ref_depth[image]
        b2 = self.coc_sq if image is None else self.coc_sq[self._row(image)]
        return b2.detach().clamp(min=0.0).sqrt() * z0

    def _row(self, image: int | Tensor) -> int | Tensor:
        """Row of ``image`` in the b² table (0 for every image when the aperture is shared)."""
        return 0 if self.shared_aperture else image

    def focus(self, image: int | Tensor | None = None) -> Tensor:
        """Focus distance of one image or all [n] (0 before the first render of the image)."""
        q = self.focus_rel if image is None else self.focus_rel[image]
        z0 = self.ref_depth if image is None else self.ref_depth[image]
        return z0 / q.detach()

    def coc_sq_value(self, image: int) -> Tensor:
        """``max(b², 0)`` of ``image`` with the gradient passed straight through (see the module docstring)."""
        with torch.no_grad():
            self.coc_sq.clamp_(min=-COC_SQ_FLOOR)
        p = self.coc_sq[self._row(image)]
        return p + (p.clamp(min=0.0) - p).detach()

    @torch.no_grad()
    def maybe_init(self, image: int, depths: Tensor) -> None:
        """Sets ``image``'s reference depth (and initial focus) to the median of ``depths`` [N] in front of the
        camera, once."""
        if float(self.ref_depth[image]) > 0:
            return
        ahead = depths[depths > NEAR]
        if ahead.numel() > 0:
            self.ref_depth[image] = ahead.float().median().to(self.ref_depth)

    def blur_inputs(
        self,
        image: int,
        means: Tensor,
        quats: Tensor,
        scales: Tensor,
        opacities: Tensor,
        viewmat: Tensor,
        K: Tensor,
        width: int,
        height: int,
        eps2d: float = 0.3,
    ) -> tuple[Tensor, Tensor]:
        """Scales and opacities of the Gaussians as seen defocused by one camera of image ``image``.

        Args:
            image: the training image (row of the tables).
            means: centres [N, 3] (at the view's time).
            quats: rotations [N, 4].
            scales: log-scales [N, 3] (the raw parameters; the result is activated).
            opacities: activated opacities [N].
            viewmat: world-to-camera (OpenCV) [4, 4] or [1, 4, 4].
            K: intrinsics [3, 3] or [1, 3, 3].
            width, height: image size in pixels.
            eps2d: the rasterizer's 2D blur (part of the footprint whose energy the compensation conserves).

        Returns:
            ``(scales' [N, 3], opacities' [N])``, activated; exactly ``(exp(scales), opacities)`` (values and
            gradients) while the aperture is zero.
        """
        viewmat, K = viewmat.reshape(1, 4, 4), K.reshape(1, 3, 3)
        proj = project_gaussians(means, quats, torch.exp(scales), viewmat, K, width, height, eps2d=eps2d)
        z = proj.depths[0]  # [N]
        self.maybe_init(image, z.detach())
        z0 = self.ref_depth[image].clamp(min=NEAR)
        zs = torch.where(z > NEAR, z, torch.ones_like(z))
        fx = K[0, 0, 0]
        # s = c z / fx with c = b |z0/z - q|: s² = b² (z0 - q z)² / fx², in world units².
        var3d = self.coc_sq_value(image) * (z0 - self.focus_rel[image] * zs).square() / (fx * fx)  # [N]
        return grow_gaussians(means, scales, opacities, viewmat, K, var3d, proj.covars2d[0], zs)

    # ---- the training views, for the evaluation filter ---------------------------------------------------------
    @torch.no_grad()
    def remember_view(self, image: int, viewmat: Tensor, K: Tensor, width: int, height: int, time: float) -> None:
        """Keeps the camera ``image`` was last trained with (world-to-camera [4, 4], intrinsics [3, 3], size, time),
        for :meth:`sharpest_blur`; saved with the model."""
        if not 0 <= image < self.view_time.shape[0]:
            return
        K = K.reshape(3, 3)
        self.view_viewmat[image] = viewmat.reshape(4, 4).to(self.view_viewmat)
        self.view_camera[image, :4] = torch.stack([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]).to(self.view_camera)
        self.view_camera[image, 4:] = torch.tensor([float(width), float(height)]).to(self.view_camera)
        self.view_time[image] = float(time)

    @torch.no_grad()
    def sharpest_blur(self, gaussians_at: Callable[[float], Tensor]) -> Tensor:
        """Each Gaussian's smallest circle of confusion over the training views that saw it, in world units (the
        standard deviation ``s`` :meth:`blur_inputs` adds in that view): how sharp the data has seen it.

        Args:
            gaussians_at: centres [N, 3] of the Gaussians at a time in [0, 1].

        Returns:
            [N]: the smallest ``s`` over the remembered views that hold the Gaussian in front of the camera with its
            centre within three circles of confusion of the frame (its blurred footprint reaches into the image); 0
            for a Gaussian no such view saw (and an empty tensor before any view was remembered).
        """
        times = self.view_time.tolist()
        seen = torch.nonzero(torch.isfinite(self.view_time) & (self.ref_depth > 0)).reshape(-1).tolist()
        by_time: dict[float, list[int]] = {}
        for i in seen:
            by_time.setdefault(times[i], []).append(i)
        best: Tensor | None = None
        for t, images in sorted(by_time.items()):
            means = gaussians_at(t)
            for i in images:
                rot, trans = self.view_viewmat[i, :3, :3], self.view_viewmat[i, :3, 3]
                x, y, z = (means @ rot.T + trans).unbind(-1)
                fx, fy, cx, cy, width, height = self.view_camera[i].tolist()
                zs = z.clamp(min=NEAR)
                u, v = fx * x / zs + cx, fy * y / zs + cy
                b = self.coc_sq[self._row(i)].clamp(min=0.0).sqrt()
                s = b * (self.ref_depth[i] - self.focus_rel[i] * zs).abs() / fx
                margin = 3.0 * s * fx / zs  # three circles of confusion (pixels): its blurred footprint is in view
                inside = (z > NEAR) & (u >= -margin) & (u <= width + margin) & (v >= -margin) & (v <= height + margin)
                s = torch.where(inside, s, torch.full_like(s, math.inf))
                best = s if best is None else torch.minimum(best, s)
        if best is None:
            return torch.zeros(0, device=self.coc_sq.device)
        return torch.where(torch.isfinite(best), best, torch.zeros_like(best))


def with_view_tables(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """A checkpoint state (keys ``prefix`` + table name) from before the evaluation filter given empty view tables (no
    camera remembered: the filter stays off until training renders the images again); other states as they are."""
    if f"{prefix}ref_depth" not in state or f"{prefix}view_time" in state:
        return state
    empty = DefocusBlur(state[f"{prefix}ref_depth"].shape[0]).to(state[f"{prefix}ref_depth"].device)
    return {**state, **{prefix + name: getattr(empty, name) for name in VIEW_TABLES}}


def grow_in_view(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmat: Tensor, K: Tensor, width: int,
    height: int, var3d: Tensor, eps2d: float = 0.3,
) -> tuple[Tensor, Tensor]:
    """:func:`grow_gaussians` for one camera (world-to-camera [4, 4], intrinsics [3, 3]): projects the Gaussians
    (log-``scales`` [N, 3], activated ``opacities`` [N]) and grows them by ``var3d`` [N]."""
    viewmat, K = viewmat.reshape(1, 4, 4), K.reshape(1, 3, 3)
    proj = project_gaussians(means, quats, torch.exp(scales), viewmat, K, width, height, eps2d=eps2d)
    z = proj.depths[0]
    zs = torch.where(z > NEAR, z, torch.ones_like(z))
    return grow_gaussians(means, scales, opacities, viewmat, K, var3d, proj.covars2d[0], zs)


def grow_gaussians(
    means: Tensor, scales: Tensor, opacities: Tensor, viewmat: Tensor, K: Tensor, var3d: Tensor, covars2d: Tensor,
    zs: Tensor,
) -> tuple[Tensor, Tensor]:
    """Gaussians grown by an isotropic 3D variance, their energy in one view conserved.

    Args:
        means: centres [N, 3].
        scales: log-scales [N, 3].
        opacities: activated opacities [N].
        viewmat: world-to-camera [1, 4, 4].
        K: intrinsics [1, 3, 3].
        var3d: added variance [N] (world units²).
        covars2d: the Gaussians' projected covariances [N, 3] (a, b, c; including the rasterizer's eps2d).
        zs: camera depths [N] (positive).

    Returns:
        ``(scales' [N, 3], opacities' [N])``, activated; exactly ``(exp(scales), opacities)`` (values and gradients)
        where ``var3d`` is 0.
    """
    new_scales = torch.exp(grown_log_scales(scales, var3d[:, None]))
    # The projected added covariance s² J Jᵀ (J: pinhole Jacobian at the centre), and the energy compensation.
    fx, fy = K[0, 0, 0], K[0, 1, 1]
    rot, trans = viewmat[0, :3, :3], viewmat[0, :3, 3]
    x, y, _ = (means @ rot.T + trans).unbind(-1)
    iz2 = 1.0 / (zs * zs)
    dxx = var3d * fx * fx * iz2 * (1.0 + x * x * iz2)
    dyy = var3d * fy * fy * iz2 * (1.0 + y * y * iz2)
    dxy = var3d * fx * fy * x * y * iz2 * iz2
    a, b, c = covars2d.unbind(-1)  # includes eps2d
    det = (a * c - b * b).clamp(min=1e-10)
    extra = a * dyy + c * dxx - 2.0 * b * dxy + (dxx * dyy - dxy * dxy)
    compensation = torch.rsqrt(1.0 + extra / det)  # extra >= 0 (a PSD term)
    return new_scales, opacities * compensation


def bake_filter(params: dict[str, Tensor], var3d: Tensor) -> dict[str, Tensor]:
    """Raw Gaussian parameters (log-``scales`` [N, 3], ``opacities`` logits [N, 1]) grown by the variance ``var3d`` [N]
    for a view-independent file (PLY export): scales ``sqrt(scale² + var)``, opacity scaled by the growth of the
    footprint of the two largest axes (a surfel seen face-on), since a file cannot hold the per-view compensation."""
    var = var3d[:, None]
    scales = grown_log_scales(params["scales"], var)
    top2 = torch.topk(params["scales"], 2, dim=-1).values
    ratio = torch.exp((top2 - grown_log_scales(top2, var)).sum(-1, keepdim=True))  # [N, 1] footprint area ratio
    opacity = (torch.sigmoid(params["opacities"]) * ratio).clamp(1e-6, 1.0 - 1e-6)
    return {**params, "scales": scales, "opacities": torch.logit(opacity)}


def grown_log_scales(log_scales: Tensor, var: Tensor) -> Tensor:
    """``log sqrt(scale² + var)`` computed in log space: exactly ``log_scales`` (value and gradient) where ``var`` is
    0 (``var`` broadcasts against ``log_scales``)."""
    return log_scales + 0.5 * torch.log1p(var * torch.exp(-2.0 * log_scales))
