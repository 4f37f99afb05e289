"""Defocus during training: per training image a learnable focus distance and aperture (thin-lens circle of confusion).

A point at camera depth ``z`` seen through a lens focused at ``F`` blurs into a disc of radius
``c = aperture · |1/z − 1/F|`` pixels (``aperture`` in pixel·depth units, as the scene generator's
:mod:`dynsplat_ns.scenes.blur`). Each Gaussian's footprint grows by it: ``c²`` is added to its 2D covariance, and its
opacity is scaled by ``sqrt(det Σ / det(Σ + c² I))`` so its energy is conserved: the Gaussian grows by the isotropic
3D variance ``s²`` with ``s = c · z / fx``, whose projection adds ``s² J Jᵀ ≈ c² I`` pixels² (exactly ``c² I`` at the
image centre; :mod:`dynsplat_ns.deblur.growth`). ``s`` depends on the camera, so each (virtual) view is rasterized with
its own inputs; the views of one image share focus and aperture.

Parameters are scale-free, so one learning rate suits every scene: each image has a reference depth ``z0`` (the median
depth of the Gaussians in front of the camera at its first training render, saved), the focus is ``F = z0 / q`` with
``q`` learnable (1 at the start) and the aperture is ``b · z0`` with ``b²`` learnable (``b``: the circle of confusion in
pixels of a point at half the focus distance, ``c = b · |z0/z − q|``). ``b²`` starts at zero, so the blur is exactly the
identity at initialisation: ``s² = 0`` gives the Gaussians' own scales and opacities, values and gradients. ``b²`` is
learned rather than ``b`` because ``s²`` is linear in it: its gradient at zero is not zero (the circle of confusion
enters squared). Its value is ``max(b², 0)`` with the gradient passed straight through, so an aperture pushed below
zero early (while the scene is still blurry) can open again; the parameter is kept above ``-COC_SQ_FLOOR``.

Evaluation renders sharp, but draws each Gaussian no sharper than the sharpest training view saw it (``eval_filter``
times its smallest circle of confusion over the training cameras that held it, remembered per image and saved): detail
finer than that was blurred in every training view, so nothing in the data constrains it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, ViewCamera
from dynsplat_ns.deblur.growth import NEAR, grow_in_view
from dynsplat_ns.schedules import decaying_adam

#: Lowest value of the b² parameter (pixels²): a closed aperture re-opens within a few steps.
COC_SQ_FLOOR = 0.25
#: DefocusBlur's tables of the camera each image was last trained with (for the evaluation filter).
VIEW_TABLES = ("view_viewmat", "view_camera", "view_time")
#: DefocusBlur's per-image tables besides the aperture (rows follow the images on resume).
IMAGE_TABLES = ("focus_rel", "ref_depth", *VIEW_TABLES)
#: Optimizer groups of the aperture (b²) and of the relative inverse focus distances.
APERTURE_GROUP = "deblur_aperture"
FOCUS_GROUP = "deblur_focus"


@dataclass
class DefocusBlurConfig(BlurComponentConfig):
    """Defocus: per training image a learnable focus distance and aperture; each Gaussian grows by its circle of
    confusion in the training views."""

    _target: type = field(default_factory=lambda: DefocusBlur)
    """Blur component class to instantiate."""
    shared_aperture: bool = True
    """One aperture for all training images (one lens for the whole video) instead of one per image."""
    aperture_lr: float = 5.0
    """Initial learning rate of the squared aperture b² (pixels²; decays ×0.1 over the run)."""
    focus_lr: float = 1e-2
    """Initial learning rate of the per-image relative inverse focus distance (decays ×0.1 over the run)."""
    eval_filter: float = 1.0
    """Sharp renders draw each Gaussian no sharper than this times the sharpest training view saw it; 0: off."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """One exponentially decaying Adam group for the aperture and one for the focus distances."""
        return {
            APERTURE_GROUP: decaying_adam(self.aperture_lr, 0.1, max_steps),
            FOCUS_GROUP: decaying_adam(self.focus_lr, 0.1, max_steps),
        }


class DefocusBlur(BlurComponent):
    """Per-image thin-lens defocus: tables of b² (pixels²), relative inverse focus ``q`` and reference depth ``z0``.

    Args:
        config: its config (shared aperture, rates, evaluation filter).
        num_images: number of training images (the camera optimizer's indexing: ``camera.metadata["cam_idx"]``).
        num_frames: number of training frames (unused: the tables are per image).
    """

    config: DefocusBlurConfig
    grows_gaussians = True

    def __init__(self, config: DefocusBlurConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__(config, num_images, num_frames)
        n = self.num_images
        self.shared_aperture = bool(config.shared_aperture)
        self.coc_sq = nn.Parameter(torch.zeros(1 if self.shared_aperture else n))  # [n] or [1] b², pixels² (>= 0)
        self.focus_rel = nn.Parameter(torch.ones(n))  # [n] q: focus distance = z0 / q
        # Each image's reference depth z0, set at its first training render (0: not yet); saved, so a resumed run
        # keeps the scale of the learned values.
        self.register_buffer("ref_depth", torch.zeros(n))
        # The camera each image was last trained with (NaN time: not yet), for the evaluation filter; saved.
        for name, table in empty_view_tables(n).items():
            self.register_buffer(name, table)
        # The evaluation filter's variance and the (Gaussian count, step // 100) it was computed at.
        self._filter_cache: tuple[tuple[int, int], Tensor | None] | None = None

    # ---- parameters ------------------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {APERTURE_GROUP: [self.coc_sq], FOCUS_GROUP: [self.focus_rel]}

    def per_image_state_keys(self) -> dict[str, int]:
        """The relative inverse focus, reference depth and remembered training-camera tables [num_images, ...] and,
        unless it is shared, the aperture² [num_images]."""
        keys = {name: 0 for name in IMAGE_TABLES}
        if not self.shared_aperture:
            keys["coc_sq"] = 0
        return keys

    def upgrade_state(self, state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
        """A checkpoint from before the evaluation filter loads with no training camera remembered (the filter stays
        off until training renders the images again)."""
        return with_view_tables(state, prefix)

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

    def variance(self, image: int, depths: Tensor, K: Tensor) -> Tensor:
        """The isotropic 3D variance s² [N] (world units²) each Gaussian grows by in a view of image ``image``:
        ``s = c z / fx`` with ``c = b |z0/z − q|``, so ``s² = b² (z0 − q z)² / fx²``. Sets the image's reference depth
        at its first view.

        Args:
            image: the training image (row of the tables).
            depths: camera depth z [N] of each Gaussian (negative behind the camera).
            K: the view's intrinsics [3, 3] or [1, 3, 3].
        """
        self.maybe_init(image, depths.detach())
        z0 = self.ref_depth[image].clamp(min=NEAR)
        zs = torch.where(depths > NEAR, depths, torch.ones_like(depths))
        fx = K.reshape(3, 3)[0, 0]
        return self.coc_sq_value(image) * (z0 - self.focus_rel[image] * zs).square() / (fx * fx)  # [N]

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

        def variance(depths: Tensor) -> Tensor:
            return self.variance(image, depths, K)

        return grow_in_view(means, quats, scales, opacities, viewmat, K, width, height, variance, eps2d=eps2d)

    # ---- training render -------------------------------------------------------------------------------------
    def acts_on(self, step: BlurStep) -> bool:
        """Every view of a training image is defocused."""
        return step.image is not None

    def view_variance(self, step: BlurStep, view: ViewCamera, depths: Tensor) -> Tensor | None:
        """The circle of confusion of each Gaussian in ``view`` (:meth:`variance`); the middle view of each time group
        is remembered as the image's training camera (:meth:`remember_view`)."""
        if step.image is None:
            return None
        if view.index == view.count // 2:
            self.remember_view(step.image, view.viewmat, view.K, view.width, view.height, step.time)
        return self.variance(step.image, depths, view.K)

    def metrics(self) -> dict[str, Tensor]:
        """The mean aperture."""
        return {"deblur_aperture_mean": self.aperture().mean()}

    # ---- evaluation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def eval_variance(self, num_gaussians: int, iteration: int, means_at: Callable[[float], Tensor]) -> Tensor | None:
        """The evaluation filter's variance [N]: the square of ``eval_filter`` times :meth:`sharpest_blur`; None when
        off or zero everywhere. Recomputed when the Gaussians change in number, else at most every 100 steps."""
        alpha = self.config.eval_filter
        if alpha <= 0:
            return None
        key = (int(num_gaussians), int(iteration) // 100)
        if self._filter_cache is None or self._filter_cache[0] != key:
            var3d = (alpha * self.sharpest_blur(means_at)).square()
            usable = var3d.shape[0] == num_gaussians and bool((var3d > 0).any())
            self._filter_cache = (key, var3d if usable else None)
        return self._filter_cache[1]

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
        standard deviation ``s`` :meth:`variance` adds in that view): how sharp the data has seen it.

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


def empty_view_tables(num_images: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The remembered training-camera tables of ``num_images`` images with no camera remembered (NaN times)."""
    return {
        "view_viewmat": torch.zeros(num_images, 4, 4, device=device),  # world-to-camera (OpenCV)
        "view_camera": torch.zeros(num_images, 6, device=device),  # fx, fy, cx, cy, width, height (pixels)
        "view_time": torch.full((num_images,), math.nan, device=device),
    }


def with_view_tables(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """A checkpoint state (keys ``prefix`` + table name) from before the evaluation filter given empty view tables (no
    camera remembered: the filter stays off until training renders the images again); other states as they are."""
    if f"{prefix}ref_depth" not in state or f"{prefix}view_time" in state:
        return state
    depth = state[f"{prefix}ref_depth"]
    return {**state, **{prefix + k: v for k, v in empty_view_tables(depth.shape[0], depth.device).items()}}
