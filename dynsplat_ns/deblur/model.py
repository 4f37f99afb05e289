"""DeblurSplatModel: a dynamic splat model trained on motion-blurred images (camera shake + object motion).

A blurry training image is modelled as the mean of K sharp virtual renders: view k sits at position
``u_k = k / (K - 1)`` of the exposure, seen from the image's pose moved along its learnable exposure trajectory
(:class:`~dynsplat_ns.deblur.trajectory.ExposureTrajectory`, BAD-Gaussians) and rendered at a sub-time spread over its
frame's learnable exposure (:class:`~dynsplat_ns.deblur.exposure.ExposureTimes`, Deblur4DGS). The K views go through
:meth:`DynamicSplatModel.render_views` in one step (one merged densification meta), and the prediction is their mean,
so the inherited photometric losses apply unchanged. Evaluation, the viewer and ``ns-render`` render sharp: the plain
pose at the frame time.

Every part starts as the identity (zero trajectories; the motion model is the identity at its start, so all
sub-times give the same Gaussians): at initialisation the K views equal the plain view, and the model renders, and
back-propagates to the Gaussians, like its motion model alone (the densification statistics too: gsplat counts each
view once and undoes the 1/K of the mean, so no threshold changes). The exposure is never zero, so per-frame motion
tables get their gradient spread over the frames the exposure covers. With blur off (``num_virtual_views`` 1, or
``camera_blur`` and ``object_blur`` False) a training step is exactly the motion model's.

Defocus (``defocus``, off by default; :class:`~dynsplat_ns.deblur.defocus.DefocusBlur`): each virtual view of a
training image is rasterized with the Gaussians grown by the image's circle of confusion at their depth (one
``rasterize()`` call per view, their metas merged into one), starting at zero aperture (the identity). Evaluation
then draws each Gaussian as sharp as the sharpest training view saw it (``defocus_eval_filter``), not sharper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from torch import Tensor
from torch.nn import Parameter

from dynsplat_ns.checkpoints.state import FrameAxes
from dynsplat_ns.deblur.defocus import VIEW_TABLES, DefocusBlur, bake_filter, grow_in_view, with_view_tables
from dynsplat_ns.deblur.exposure import ExposureTimes, attach_time_gradient, time_velocities
from dynsplat_ns.deblur.trajectory import ExposureTrajectory, sample_positions
from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.models.dynamic_splat import DynamicSplatModel, DynamicSplatModelConfig
from dynsplat_ns.motion.choice import MotionChoice
from dynsplat_ns.motion.som import ShapeOfMotionConfig
from dynsplat_ns.render.meta_merge import merge_metas
from dynsplat_ns.time import camera_time

#: Optimizer-group names of the deblur parameters (built from the config by :meth:`extra_optimizer_configs`).
TRAJECTORY_GROUP = "deblur_trajectory"
EXPOSURE_GROUP = "deblur_exposure"
EXPOSURE_BASE_GROUP = "deblur_exposure_base"
APERTURE_GROUP = "deblur_aperture"
FOCUS_GROUP = "deblur_focus"
#: Key of the evaluation filter's per-Gaussian variance in a Gaussian dict being rendered (see _rasterize_call).
FILTER_KEY = "_eval_filter_var3d"
#: DefocusBlur's per-image tables (rows follow the images on resume).
DEFOCUS_IMAGE_TABLES = ("focus_rel", "ref_depth", *VIEW_TABLES)


@dataclass
class DeblurSplatModelConfig(DynamicSplatModelConfig):
    """A dynamic splat model whose training images are motion-blurred: each is the mean of K virtual sharp renders
    along a learnable camera trajectory and over a learnable exposure time."""

    _target: type = field(default_factory=lambda: DeblurSplatModel)
    """Model class to instantiate."""
    test_split_reason: ClassVar[str] = "dynsplat-deblur scores its sharp renders against the test split"
    motion: MotionChoice = field(default_factory=ShapeOfMotionConfig)
    """Motion component that moves the canonical Gaussians to the camera's time (Shape-of-Motion bases, as
    Deblur4DGS; ``--pipeline.model.motion hexplane`` etc. switches it, see DynamicSplatModelConfig.motion)."""
    num_virtual_views: int = 7
    """Virtual sharp views K averaged into each blurry training image (poses along the exposure trajectory, paired with
    sub-times over the exposure); 1 trains without blur. Time per step grows about linearly with K."""
    camera_blur: bool = True
    """Model camera motion during the exposure: a learnable SE(3) trajectory per training image."""
    object_blur: bool = True
    """Model object motion during the exposure: render the K views at sub-times spread over a learnable exposure time
    per training frame (the video's shutter plus the frame's deviation, see exposure_shared; needs a dataset with at
    least two frames)."""
    trajectory: Literal["linear", "spline"] = "linear"
    """Shape of the camera trajectories: 'linear' (start and end offsets, interpolated linearly in se(3)) or 'spline'
    (four knots of a uniform cubic B-spline)."""
    trajectory_init_std: float = 1e-5
    """Standard deviation of a random (seeded) initial trajectory offset (BAD-Gaussians: 1e-5); 0 starts every
    trajectory exactly at its image's pose. A centered trajectory at zero is a stationary point (its K views are
    identical and spread symmetrically, so the spread has no first-order effect): the small random start lets it open
    (Adam's steps do not shrink with the gradient)."""
    trajectory_centered: bool = True
    """Keep each image's pose at the middle of its exposure (the trajectory spreads the virtual views around it, as
    structure-from-motion on blurry images places the pose); False lets the trajectory shift the whole exposure too
    (BAD-Gaussians), a per-image pose correction that competes with the camera optimizer and the scene. Shake scene
    (96×64, 24 times, 1500 steps, trajectory lr 1e-3): not centered 26.02 dB, centered 29.37 (SoM 27.96)."""
    exposure_range: tuple[float, float] = (0.1, 0.9)
    """Bounds of each frame's exposure time, as a fraction of the frame interval (Deblur4DGS); it starts in the
    middle."""
    exposure_shared: bool = False
    """One exposure time for all frames (a fixed shutter) instead of the default: a shared shutter (learned from every
    step) plus each frame's own deviation from it (learned about once per pass over the images). Per-frame exposures
    alone barely move in a short run (fast-spheres scene, true exposure 1.0 of the frame interval, bound 0.9, 1500
    steps: 0.56; shutter + deviation: 0.80; sliding slab: per frame 0.5-0.68, shared 0.86)."""
    trajectory_lr: float = 3e-3
    """Initial learning rate of the camera trajectories (decays ×0.01 over the run, as BAD-Gaussians). Each image's
    trajectory is updated once per pass over the images, so a short run needs a high rate to open it to the shake
    before blurry Gaussians explain the blur: shake scene (96×64, 24 times, 1500 steps, centered) 1e-4 → learned 0.02°
    of a 2.1° shake, 1e-3 → 1.75° (29.37 dB), 3e-3 → 1.86° (29.55 dB; SoM 27.96, SoM on sharp images 30.11)."""
    exposure_lr: float = 1e-2
    """Initial learning rate of the exposure-time logits (decays ×0.1 over the run)."""
    trajectory_magnitude_weight: float = 1e-2
    """Weight of the mean squared se(3) offset of the trained image's trajectory knots (keeps the shake small)."""
    trajectory_smoothness_weight: float = 1e-2
    """Weight of the mean squared difference between the trained image's trajectory knots and those of the next
    frame's image (the nearest camera at the next training time): trajectories change smoothly over time. Expressed
    in each camera's own frame, so it holds for a steady pan and for datasets whose cameras jump between frames
    (D-NeRF), unlike DyBluRF's world-space "end of frame i = start of frame i+1"."""
    defocus: bool = False
    """Model defocus blur: per training image a learnable focus distance and aperture; each Gaussian grows by its
    circle of confusion (aperture · |1/z - 1/focus|) in the training renders (evaluation stays sharp). Turn it on for
    data with a shallow depth of field, e.g. D2RF's bokeh images (``dynsplat-d2rf --image-source bokeh``). Starts at
    zero aperture (the identity); costs one rasterize() call per virtual view. On defocus-only data also set
    ``--pipeline.model.camera-blur False --pipeline.model.object-blur False`` (else the trajectories explain part of
    the defocus as shake) and ``--pipeline.model.use-scale-regularization True`` (needle-thin Gaussians hidden by the
    blur in training): defocus scene, 3 seeds, +1.77 dB over SoM (README, "Deblurring")."""
    defocus_shared_aperture: bool = True
    """One aperture for all training images (one lens for the whole video; the focus stays per image): it learns from
    every step instead of once per pass over the images. Defocus scene (96×64, 24 times, aperture 40, 1500 steps):
    per image at lr 0.05 → 24 % of the true aperture, 28.40 dB; shared → 47 %, 28.94 (SoM 28.59)."""
    defocus_aperture_lr: float = 0.5
    """Initial learning rate of the squared aperture, in pixels² of the circle of confusion at half the focus distance
    (decays ×0.1 over the run); true values are tens of pixels² for a few pixels of blur."""
    defocus_focus_lr: float = 1e-2
    """Initial learning rate of the per-image inverse focus distance, relative to the image's initial focus (the
    median depth in view; decays ×0.1 over the run)."""
    defocus_eval_filter: float = 1.0
    """With defocus: evaluation, the viewer and ns-render draw each Gaussian no sharper than this times the sharpest
    training view saw it (its smallest circle of confusion over the training images whose frame holds it, learned
    focus and aperture). Detail finer than that is unobserved: the blur hid it in every training view, so the
    optimisation leaves noise and floaters there. 1: as sharp as the sharpest view (training renders unchanged,
    their blur is never smaller); 0: off (every Gaussian at its own size). Where a focus pull brings a region into
    focus in some frame, that region renders fully sharp."""

    def extra_optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """nerfstudio optimizer entries for the trajectory and exposure groups, built from this config's rates.

        The dynsplat trainer adds them to the run's optimizers when training starts (like the motion model's groups):
        they are the only source of these groups.
        """
        return {
            **super().extra_optimizer_configs(max_steps),
            TRAJECTORY_GROUP: {
                "optimizer": AdamOptimizerConfig(lr=self.trajectory_lr, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=self.trajectory_lr * 0.01, max_steps=max_steps),
            },
            **{
                name: {
                    "optimizer": AdamOptimizerConfig(lr=self.exposure_lr, eps=1e-15),
                    "scheduler": ExponentialDecaySchedulerConfig(lr_final=self.exposure_lr * 0.1, max_steps=max_steps),
                }
                for name in (EXPOSURE_GROUP,) + (() if self.exposure_shared else (EXPOSURE_BASE_GROUP,))
            },
            **(self._defocus_optimizer_configs(max_steps) if self.defocus else {}),
        }

    def _defocus_optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr * 0.1, max_steps=max_steps),
            }
            for name, lr in ((APERTURE_GROUP, self.defocus_aperture_lr), (FOCUS_GROUP, self.defocus_focus_lr))
        }


class DeblurSplatModel(DynamicSplatModel):
    """:class:`DynamicSplatModel` whose training prediction is the mean of K virtual views along the exposure."""

    config: DeblurSplatModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        cfg = self.config
        for flag, value, low in (("num-virtual-views", cfg.num_virtual_views, 1),
                                 ("defocus-eval-filter", cfg.defocus_eval_filter, 0)):  # fmt: skip
            if not value >= low:
                raise DynsplatConfigError(f"--pipeline.model.{flag} must be >= {low} (got {value})")
        self.trajectory = ExposureTrajectory(
            self.num_train_data, cfg.trajectory, cfg.trajectory_init_std, cfg.trajectory_centered
        )
        self.exposure = ExposureTimes(self.motion.num_frames, cfg.exposure_range, cfg.exposure_shared)
        self.defocus = DefocusBlur(self.num_train_data, cfg.defocus_shared_aperture) if cfg.defocus else None
        # The training image whose views are being rasterized with defocus (see _rasterize_group), and their metas.
        self._defocus_image: int | None = None
        self._defocus_time = 0.0
        self._defocus_metas: list[dict] = []
        # The evaluation filter's per-Gaussian variance and when it was computed (see eval_filter_variance).
        self._filter_cache: tuple[tuple[int, int], Tensor | None] | None = None
        # Each training image's time and camera centre, filled as images are trained (for the smoothness neighbours);
        # not saved: a resumed run refills them within an epoch.
        n = max(int(self.num_train_data), 1)
        self.register_buffer("seen_times", torch.full((n,), math.nan), persistent=False)
        self.register_buffer("seen_centres", torch.zeros(n, 3), persistent=False)
        # Differentiable sub-time of each float time of the render in progress (see gaussians_at_times).
        self._time_tensors: dict[float, Tensor] = {}

    # ---- parameters ------------------------------------------------------------------------------------------
    def get_param_groups(self) -> dict[str, list[Parameter]]:
        groups = super().get_param_groups()
        for name in (TRAJECTORY_GROUP, EXPOSURE_GROUP, EXPOSURE_BASE_GROUP, APERTURE_GROUP, FOCUS_GROUP):
            if name in groups:
                raise ValueError(f"deblur parameter group {name!r} clashes with a model group")
        groups[TRAJECTORY_GROUP] = [self.trajectory.knots]
        groups[EXPOSURE_GROUP] = [self.exposure.logits]
        if self.exposure.base is not None:
            groups[EXPOSURE_BASE_GROUP] = [self.exposure.base]
        if self.defocus is not None:
            groups[APERTURE_GROUP] = [self.defocus.coc_sq]
            groups[FOCUS_GROUP] = [self.defocus.focus_rel]
        return groups

    def per_image_state_keys(self) -> dict[str, int]:
        """The inherited per-image tensors, the trajectory knots [num_images, knots, 6] and (with defocus) the
        aperture², relative inverse focus, reference depth and remembered training-camera tables [num_images, ...]."""
        keys = {**super().per_image_state_keys(), "trajectory.knots": 0}
        if self.defocus is not None:
            keys.update({f"defocus.{name}": 0 for name in DEFOCUS_IMAGE_TABLES})
            if not self.defocus.shared_aperture:
                keys["defocus.coc_sq"] = 0
        return keys

    def load_checkpoint_state(self, state: dict[str, Tensor], resume: Any = None, strict: bool = True):
        """As the base model; a checkpoint from before the shared shutter (per-frame logits only) loads with it at
        0, which renders its exposures unchanged, and one from before the evaluation filter with no training view
        remembered (the filter stays off until training renders the images again)."""
        if self.exposure.base is not None and "exposure.base" not in state and "exposure.logits" in state:
            state = {**state, "exposure.base": torch.zeros_like(self.exposure.base)}
        if self.defocus is not None:
            state = with_view_tables(state, "defocus.")
        return super().load_checkpoint_state(state, resume, strict)

    def per_frame_state_keys(self) -> dict[str, FrameAxes]:
        """The inherited per-frame tensors and the exposure logits [T]."""
        shared = self.exposure.shared
        return {**super().per_frame_state_keys(), **({} if shared else {"exposure.logits": 0})}

    # ---- rendering -------------------------------------------------------------------------------------------
    @property
    def blur_active(self) -> bool:
        """Whether a training step renders the K virtual views (else the plain step of the motion model)."""
        cfg = self.config
        return self.training and cfg.num_virtual_views > 1 and (cfg.camera_blur or cfg.object_blur)

    @property
    def defocus_active(self) -> bool:
        """Whether a training step renders with defocus (else sharp Gaussians)."""
        return self.training and self.defocus is not None

    def get_outputs(self, camera: Cameras) -> dict[str, Union[Tensor, list]]:
        """While training with blur: the mean of the K virtual views of the camera (``rgb`` [H, W, 3], ...), each
        defocused when ``defocus`` is on; else (eval, viewer, ns-render, or blur off) the plain sharp render of
        :class:`DynamicSplatModel`."""
        image = self._image_index(camera) if isinstance(camera, Cameras) else None
        defocus = self.defocus_active and image is not None
        if not isinstance(camera, Cameras) or not (self.blur_active or defocus):
            return super().get_outputs(camera)
        if camera.shape[0] != 1:
            raise ValueError("training get_outputs renders one camera; use render_views for several views in a step")
        cfg = self.config
        K = cfg.num_virtual_views if self.blur_active else 1
        u = sample_positions(K, self.device)
        t = camera_time(camera.times)
        c2w = camera.camera_to_worlds.reshape(3, 4).to(self.device)
        camera_blur = self.blur_active and cfg.camera_blur
        object_blur = self.blur_active and cfg.object_blur and not cfg.disable_motion
        if camera_blur and image is not None:
            c2ws = self.trajectory.virtual_c2w(c2w, image, K)
        else:
            c2ws = c2w.expand(K, 3, 4)
        if object_blur:
            taus = self.exposure.sub_times(t, u)
        else:
            taus = torch.full((K,), float(t), device=self.device)
        float_times = [float(x) for x in taus.detach().cpu().tolist()]
        if object_blur and torch.is_grad_enabled():  # see gaussians_at_times
            self._time_tensors = dict(zip(float_times, taus, strict=True))
        if defocus:
            self._defocus_image, self._defocus_time, self._defocus_metas = image, float(t), []
        try:
            views = self.render_views(self._virtual_cameras(camera, c2ws, taus.detach()), float_times)
            if defocus:
                self._merge_defocus_metas(float_times)
        finally:
            self._time_tensors = {}
            self._defocus_image, self._defocus_metas = None, []
        outputs: dict[str, Any] = {
            "rgb": views["rgb"].mean(dim=0),
            "depth": None if views["depth"] is None else views["depth"].mean(dim=0),
            "accumulation": views["accumulation"].mean(dim=0),
            "background": views["background"],
            "times": views["times"],
        }
        if "time" in views:
            outputs["time"] = views["time"]
        if image is not None:
            outputs["image_index"] = image
            self._remember(image, t, c2w)
        return outputs

    def blurred_outputs(self, camera: Cameras) -> dict[str, Tensor]:
        """The training prediction of a training camera (with ``metadata["cam_idx"]``): the re-blurred render, K
        virtual views (and defocus) as a training step renders them, detached. For inspection tools: it runs the
        training path (with gradients, which are discarded) and restores the model's mode."""
        was_training = self.training
        no_optimizers = "optimizers" not in self.__dict__  # a loaded run (no training step yet): the strategy's
        if no_optimizers:  # pre-backward hook only marks means2d, it needs no optimizer
            self.optimizers = {}
        self.train()
        try:
            with torch.enable_grad():
                outputs = self.get_outputs(camera)
        finally:
            self.train(was_training)
            if no_optimizers:
                del self.optimizers
        return {k: v.detach() for k, v in outputs.items() if isinstance(v, Tensor)}

    def gaussians_at(self, t: float) -> dict[str, Tensor]:
        """Raw Gaussian parameters at time ``t`` (for export): outside training with the evaluation filter baked in
        (:func:`~dynsplat_ns.deblur.defocus.bake_filter`)."""
        g = super().gaussians_at(t)
        var3d = None if self.training else self.eval_filter_variance()
        return g if var3d is None else bake_filter(g, var3d)

    def gaussians_at_times(self, times):  # type: ignore[override]
        """The motion model's Gaussians at ``times``; during a blurred training step, with a gradient path from each
        sub-time to its frame's exposure (:func:`~dynsplat_ns.deblur.exposure.attach_time_gradient`)."""
        tensors = self._time_tensors
        if not tensors or self.config.disable_motion or not torch.is_grad_enabled():
            return super().gaussians_at_times(times)
        params = dict(self.gauss_params.items())

        def evaluate(ts: list[float]) -> list[dict[str, Tensor]]:
            return self.motion(params, torch.tensor(ts, dtype=torch.float64))

        # The finite differences run first: a gradient-free motion call clears the states the motion model keeps
        # for its regularisers, which the render's own call below sets.
        velocities = time_velocities(list(times), tensors, evaluate)
        return attach_time_gradient(super().gaussians_at_times(times), list(times), tensors, velocities)

    def _rasterize_group(self, g, viewmats, Ks, W, H, sh_degree, mode):  # type: ignore[override]
        """The inherited multi-camera call; while rendering a training image with defocus, one ``rasterize()`` call
        per view with the Gaussians' scales and opacities defocused for that view
        (:meth:`~dynsplat_ns.deblur.defocus.DefocusBlur.blur_inputs`), the views' metas merged."""
        image = self._defocus_image
        if image is None or self.defocus is None:
            var3d = None if self.training else self.eval_filter_variance()
            if var3d is not None:
                g = {**g, FILTER_KEY: var3d}  # cropped with the Gaussians; read by _rasterize_call
            return super()._rasterize_group(g, viewmats, Ks, W, H, sh_degree, mode)
        mid = viewmats.shape[0] // 2
        self.defocus.remember_view(image, viewmats[mid], Ks[mid], W, H, self._defocus_time)
        opac = torch.sigmoid(g["opacities"]).squeeze(-1)

        def defocused(c: int) -> tuple[Tensor, Tensor]:
            return self.defocus.blur_inputs(image, g["means"], g["quats"], g["scales"], opac, viewmats[c], Ks[c], W, H)

        render, alpha, metas = self._rasterize_each_view(g, defocused, viewmats, Ks, W, H, sh_degree, mode)
        self._defocus_metas.append(metas)
        return render, alpha, merge_metas(metas)

    def _rasterize_call(self, g: dict[str, Tensor], scales: Tensor, opacities: Tensor, *view: Any) -> tuple:
        """The inherited call; with the evaluation filter's variance in ``g``, one call per camera with the Gaussians
        grown by it (:func:`~dynsplat_ns.deblur.defocus.grow_in_view`)."""
        if FILTER_KEY not in g:
            return super()._rasterize_call(g, scales, opacities, *view)
        viewmats, Ks, W, H, sh_degree, mode = view
        var3d = g[FILTER_KEY]

        def filtered(c: int) -> tuple[Tensor, Tensor]:
            return grow_in_view(g["means"], g["quats"], g["scales"], opacities, viewmats[c], Ks[c], W, H, var3d)

        render, alpha, metas = self._rasterize_each_view(g, filtered, *view)
        return render, alpha, metas[0] if len(metas) == 1 else merge_metas(metas)

    def _rasterize_each_view(self, g: dict[str, Tensor], inputs: Callable[[int], tuple[Tensor, Tensor]], *view: Any):
        """One inherited ``rasterize()`` call per camera c of ``view`` (viewmats [C, 4, 4], Ks [C, 3, 3], W, H,
        sh_degree, mode) with the activated scales and opacities ``inputs(c)``; returns the renders and alphas
        concatenated [C, H, W, ...] and the C metas."""
        viewmats, Ks, *rest = view
        renders, alphas, metas = [], [], []
        for c in range(viewmats.shape[0]):
            render, alpha, meta = super()._rasterize_call(g, *inputs(c), viewmats[c : c + 1], Ks[c : c + 1], *rest)
            renders.append(render)
            alphas.append(alpha)
            metas.append(meta)
        return torch.cat(renders), torch.cat(alphas), metas

    @torch.no_grad()
    def eval_filter_variance(self) -> Tensor | None:
        """Per-Gaussian variance [N] (world units²) of the evaluation filter (``defocus_eval_filter``): the square of
        the filter scale times :meth:`~dynsplat_ns.deblur.defocus.DefocusBlur.sharpest_blur`; None when off or
        zero everywhere. Recomputed when the Gaussians change in number, else at most every 100 steps."""
        alpha = self.config.defocus_eval_filter
        if self.defocus is None or alpha <= 0:
            return None
        key = (self.num_points, self.step // 100)
        if self._filter_cache is None or self._filter_cache[0] != key:
            var3d = (alpha * self.defocus.sharpest_blur(lambda t: self.gaussians_at_times([t])[0]["means"])).square()
            usable = var3d.shape[0] == self.num_points and bool((var3d > 0).any())
            self._filter_cache = (key, var3d if usable else None)
        return self._filter_cache[1]

    def _merge_defocus_metas(self, view_times: list[float]) -> None:
        """With several times of which one holds several views, the inherited merge of the per-time metas cannot see
        through the per-view merges of :meth:`_rasterize_group`: merge all per-view metas at once instead (in the
        groups' order of :meth:`render_views`) and hand that to the strategy."""
        per_group = self._defocus_metas
        if len(per_group) < 2 or all(len(m) == 1 for m in per_group):
            return
        distinct = list(dict.fromkeys(view_times))
        positions = [[k] for t in distinct for k, tk in enumerate(view_times) if tk == t]
        self.info = merge_metas([m for metas in per_group for m in metas], positions)
        self.strategy.step_pre_backward(self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info)

    @staticmethod
    def _image_index(camera: Cameras) -> int | None:
        """The training image's index (the camera optimizer's ``cam_idx``), or None for cameras without one."""
        meta = camera.metadata or {}
        if "cam_idx" not in meta:
            return None
        idx = meta["cam_idx"]
        return int(idx.reshape(-1)[0]) if isinstance(idx, Tensor) else int(idx)

    @staticmethod
    def _virtual_cameras(camera: Cameras, c2ws: Tensor, times: Tensor) -> Cameras:
        """K copies of ``camera`` (one view) with poses ``c2ws`` [K, 3, 4] and times [K]."""
        K = c2ws.shape[0]

        def rep(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.reshape(1, -1).expand(K, -1).clone()

        return Cameras(
            camera_to_worlds=c2ws,
            fx=rep(camera.fx),
            fy=rep(camera.fy),
            cx=rep(camera.cx),
            cy=rep(camera.cy),
            width=rep(camera.width),
            height=rep(camera.height),
            distortion_params=rep(camera.distortion_params),
            camera_type=rep(camera.camera_type),
            times=times.reshape(K, 1).to(c2ws.device),
            metadata=camera.metadata,
        )

    # ---- losses and metrics ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _remember(self, image: int, t: float, c2w: Tensor) -> None:
        if 0 <= image < self.seen_times.shape[0]:
            self.seen_times[image] = float(t)
            self.seen_centres[image] = c2w[:, 3].to(self.seen_centres)

    def next_frame_image(self, image: int) -> int | None:
        """The trained image of the next training time (the nearest camera centre among that time's images), or
        None when no later image has been trained yet."""
        times = self.seen_times
        t = times[image]
        later = torch.isfinite(times) & (times > t + 1e-6)
        if not bool(later.any()):
            return None
        t_next = times[later].min()
        candidates = torch.nonzero(later & ((times - t_next).abs() <= 1e-6)).reshape(-1)
        dist = (self.seen_centres[candidates] - self.seen_centres[image]).norm(dim=-1)
        return int(candidates[dist.argmin()])

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, Tensor]:
        """The inherited losses plus, while training with camera blur, the trajectory regularisers of the image."""
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        cfg = self.config
        image = outputs.get("image_index")
        if not (self.training and self.blur_active and cfg.camera_blur and image is not None):
            return loss_dict
        knots = self.trajectory.knots
        if cfg.trajectory_magnitude_weight > 0:
            loss_dict["trajectory_magnitude"] = cfg.trajectory_magnitude_weight * knots[image].square().mean()
        nxt = self.next_frame_image(image) if cfg.trajectory_smoothness_weight > 0 else None
        if nxt is not None:
            diff = knots[image] - knots[nxt]
            loss_dict["trajectory_smoothness"] = cfg.trajectory_smoothness_weight * diff.square().mean()
        return loss_dict

    def get_metrics_dict(self, outputs, batch) -> dict[str, Tensor]:
        """The inherited metrics plus the mean exposure fraction and the mean trajectory length (start to end)."""
        metrics = super().get_metrics_dict(outputs, batch)
        if self.training:
            with torch.no_grad():
                metrics["deblur_exposure_mean"] = self.exposure.fraction().mean()
                start, end = self.trajectory.endpoints(torch.arange(self.trajectory.knots.shape[0]))
                metrics["deblur_trajectory_length"] = (end - start).norm(dim=-1).mean()
                if self.defocus is not None:
                    metrics["deblur_aperture_mean"] = self.defocus.aperture().mean()
        return metrics
