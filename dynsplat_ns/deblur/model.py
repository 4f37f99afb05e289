"""DeblurSplatModel: a dynamic splat model trained on blurry images (camera shake, object motion, defocus).

A blurry training image is modelled as the mean of K sharp virtual renders, view k at position ``u_k = k / (K - 1)``
of the exposure, each rasterized with the Gaussians grown for that view where the blur needs it. What the views are and
how they are drawn comes from the model's *blur components* (:mod:`dynsplat_ns.deblur.base`), composed in a fixed
order, each switched by its flags:

* camera shake (``camera_blur``; :class:`~dynsplat_ns.deblur.trajectory.ExposureTrajectory`, BAD-Gaussians): the
  views' poses along a learnable exposure trajectory per training image;
* object motion (``object_blur``; :class:`~dynsplat_ns.deblur.exposure.ExposureTimes`, Deblur4DGS): the views'
  times spread over a learnable exposure per training frame;
* defocus (``defocus``; by default on where the dataparser says the training images are defocused, e.g. D2RF's bokeh
  images; :class:`~dynsplat_ns.deblur.defocus.DefocusBlur`): each view rasterized with the Gaussians grown by the
  image's circle of confusion at their depth (one ``rasterize()`` call per view);
* then those a config subclass adds (``examples/custom_blur.py``).

The K views go through :meth:`DynamicSplatModel.render_views` in one step (one merged densification meta), and the
prediction is their mean, so the inherited photometric losses apply unchanged. What a step renders (image, time,
views, metas) is one :class:`~dynsplat_ns.deblur.base.BlurStep`, handed to the components' hooks and, in the
outputs, to the loss. Evaluation, the viewer and ``ns-render`` render sharp: the plain pose at the frame time (with
defocus, each Gaussian drawn as sharp as the sharpest training view saw it, ``defocus_eval_filter``).

Every component starts as the identity (zero trajectories, zero aperture; the motion model is the identity at its
start, so all sub-times give the same Gaussians): at initialisation the K views equal the plain view, and the model
renders, and back-propagates to the Gaussians, like its motion model alone (the densification statistics too: gsplat
counts each view once and undoes the 1/K of the mean, so no threshold changes). With blur off (``num_virtual_views``
1, or ``camera_blur`` and ``object_blur`` False, and no defocus) a training step is exactly the motion model's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from dynsplat_ns.checkpoints.state import FrameAxes
from dynsplat_ns.dataparsers.base import TRAINING_BLUR_KEY
from dynsplat_ns.deblur.base import BlurComponent, BlurComponentConfig, BlurStep, ViewCamera, VirtualViews
from dynsplat_ns.deblur.defocus import DefocusBlur, DefocusBlurConfig
from dynsplat_ns.deblur.exposure import ExposureTimes, ExposureTimesConfig
from dynsplat_ns.deblur.growth import bake_filter, grow_in_view
from dynsplat_ns.deblur.trajectory import ExposureTrajectory, ExposureTrajectoryConfig, sample_positions
from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.models.dynamic_splat import DynamicSplatModel, DynamicSplatModelConfig
from dynsplat_ns.motion.choice import MotionChoice
from dynsplat_ns.motion.som import ShapeOfMotionConfig
from dynsplat_ns.render.meta_merge import merge_metas
from dynsplat_ns.time import camera_time

#: Key of the step's :class:`~dynsplat_ns.deblur.base.BlurStep` in the outputs of a blurred training render.
BLUR_STEP = "blur_step"


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
    defocus: bool | None = None
    """Model defocus blur: per training image a learnable focus distance and aperture; each Gaussian grows by its
    circle of confusion (aperture · |1/z - 1/focus|) in the training renders (evaluation stays sharp). None (default):
    on where the dataparser says the training images are defocused (D2RF's bokeh images, ``dynsplat-d2rf
    --image-source bokeh``, its default), off otherwise; the log says which and why. Starts at zero aperture (the
    identity); costs one rasterize() call per virtual view. On defocus-only data also set
    ``--pipeline.model.camera-blur False --pipeline.model.object-blur False`` (else the trajectories explain part of
    the defocus as shake)."""
    defocus_shared_aperture: bool = True
    """One aperture for all training images (one lens for the whole video; the focus stays per image): it learns from
    every step instead of once per pass over the images. Defocus scene (96×64, 24 times, aperture 40, 1500 steps):
    per image at lr 0.05 → 24 % of the true aperture, 28.40 dB; shared → 47 %, 28.94 (SoM 28.59)."""
    defocus_aperture_lr: float = 5.0
    """Initial learning rate of the squared aperture, in pixels² of the circle of confusion at half the focus distance
    (decays ×0.1); true values are tens to hundreds of pixels². It must open before blurry Gaussians explain the blur:
    tune scenes (seeds 1-3, 1500 steps) 0.5 → 27.15 / 29.33 / 29.52 dB, 5 → 27.24 / 29.59 / 30.09."""
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

    def blur_component_configs(self) -> dict[str, BlurComponentConfig | None]:
        """The blur components in the order they act, by name (the attribute of the model and prefix of their
        state-dict keys), built from this config's flags: camera shake, object motion, defocus (None when off).
        Camera shake and object motion always exist (their tables are in every checkpoint); their flag says whether
        they move the views. A config subclass adds its own blur types after these (examples/custom_blur.py)."""
        trajectory = ExposureTrajectoryConfig(
            enabled=self.camera_blur,
            kind=self.trajectory,
            init_std=self.trajectory_init_std,
            centered=self.trajectory_centered,
            lr=self.trajectory_lr,
            magnitude_weight=self.trajectory_magnitude_weight,
            smoothness_weight=self.trajectory_smoothness_weight,
        )
        exposure = ExposureTimesConfig(
            enabled=self.object_blur,
            exposure_range=self.exposure_range,
            shared=self.exposure_shared,
            lr=self.exposure_lr,
        )
        defocus = DefocusBlurConfig(
            shared_aperture=self.defocus_shared_aperture,
            aperture_lr=self.defocus_aperture_lr,
            focus_lr=self.defocus_focus_lr,
            eval_filter=self.defocus_eval_filter,
        )
        return {"trajectory": trajectory, "exposure": exposure, "defocus": defocus if self.defocus else None}

    def extra_optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """nerfstudio optimizer entries for the blur components' groups (trajectory, exposure, defocus, ...), built
        from this config's rates.

        The dynsplat trainer adds them to the run's optimizers when training starts (like the motion model's groups):
        they are the only source of these groups.
        """
        groups = super().extra_optimizer_configs(max_steps)
        # defocus None ("auto") is decided by the model from the data: its groups are there in case it turns on
        config = self if self.defocus is not None else dataclasses.replace(self, defocus=True)
        for component in config.blur_component_configs().values():
            if component is not None:
                groups.update(component.optimizer_configs(max_steps))
        return groups


def defocus_choice(defocus: bool | None, metadata: dict[str, Any]) -> str:
    """Whether a run models defocus, and why, as the line the log prints ("defocus on: ..." / "defocus off: ...").

    Args:
        defocus: ``--pipeline.model.defocus`` (None: decided from the data).
        metadata: The training split's dataparser metadata; its ``training_blur`` (``{kind: why}``) names the blur the
            dataparser knows the training images have (D2RF: defocus for the bokeh images).
    """
    if defocus is not None:
        return f"defocus {'on' if defocus else 'off'}: --pipeline.model.defocus {defocus}"
    why = (metadata.get(TRAINING_BLUR_KEY) or {}).get("defocus")
    if why:
        return f"defocus on: {why}; --pipeline.model.defocus False turns it off"
    return "defocus off: the dataparser reports no defocused training images; --pipeline.model.defocus True turns it on"


class DeblurSplatModel(DynamicSplatModel):
    """:class:`DynamicSplatModel` whose training prediction is the mean of K virtual views along the exposure, drawn
    by its blur components."""

    config: DeblurSplatModelConfig
    trajectory: ExposureTrajectory
    exposure: ExposureTimes
    defocus: DefocusBlur | None

    def populate_modules(self) -> None:
        super().populate_modules()
        cfg = self.config
        for flag, value, low in (("num-virtual-views", cfg.num_virtual_views, 1),
                                 ("defocus-eval-filter", cfg.defocus_eval_filter, 0)):  # fmt: skip
            if not value >= low:
                raise DynsplatConfigError(f"--pipeline.model.{flag} must be >= {low} (got {value})")
        self.defocus_choice = defocus_choice(cfg.defocus, self.kwargs.get("metadata") or {})
        CONSOLE.print(f"dynsplat-deblur: {self.defocus_choice}")
        if cfg.defocus is None:  # the components of this run: the config with the choice made
            cfg = dataclasses.replace(cfg, defocus=self.defocus_choice.startswith("defocus on"))
        # Each component is a sub-module under its name (its state-dict prefix, e.g. "trajectory.knots").
        self.blur_names: tuple[str, ...] = ()
        for name, component in cfg.blur_component_configs().items():
            if hasattr(self, name):
                raise ValueError(f"blur component name {name!r} clashes with an attribute of the model")
            if component is None:
                setattr(self, name, None)
                continue
            setattr(self, name, component.setup(num_images=self.num_train_data, num_frames=self.motion.num_frames))
            self.blur_names += (name,)

    def blur_components(self) -> dict[str, BlurComponent]:
        """The blur components in the order they act, by name."""
        return {name: getattr(self, name) for name in self.blur_names}

    # ---- parameters ------------------------------------------------------------------------------------------
    def get_param_groups(self) -> dict[str, list[Parameter]]:
        groups = super().get_param_groups()
        for component in self.blur_components().values():
            for name, params in component.param_groups().items():
                if name in groups:
                    raise ValueError(f"deblur parameter group {name!r} clashes with a model group")
                groups[name] = params
        return groups

    def per_image_state_keys(self) -> dict[str, int]:
        """The inherited per-image tensors and the blur components' (trajectory knots [num_images, knots, 6]; with
        defocus the aperture², relative inverse focus, reference depth and remembered training-camera tables)."""
        keys = super().per_image_state_keys()
        for name, component in self.blur_components().items():
            keys.update({f"{name}.{key}": axis for key, axis in component.per_image_state_keys().items()})
        return keys

    def per_frame_state_keys(self) -> dict[str, FrameAxes]:
        """The inherited per-frame tensors and the blur components' (the exposure logits [T])."""
        keys = super().per_frame_state_keys()
        for name, component in self.blur_components().items():
            keys.update({f"{name}.{key}": axis for key, axis in component.per_frame_state_keys().items()})
        return keys

    def load_checkpoint_state(self, state: dict[str, Tensor], resume: Any = None, strict: bool = True):
        """As the base model, with what an earlier version of a blur component did not save filled in (a checkpoint
        from before the shared shutter loads with it at 0; one from before the evaluation filter with no training
        view remembered)."""
        for name, component in self.blur_components().items():
            state = component.upgrade_state(state, f"{name}.")
        return super().load_checkpoint_state(state, resume, strict)

    # ---- rendering -------------------------------------------------------------------------------------------
    def blur_step(self, camera: Cameras) -> BlurStep | None:
        """The blurred training render of ``camera`` (one training view), or None when no component changes it (then
        the step is the motion model's plain render): K views when a component spreads the exposure, else one."""
        components = self.blur_components().values()
        spread = any(c.spreads_exposure for c in components)
        K = self.config.num_virtual_views if spread else 1
        step = BlurStep(
            image=self._image_index(camera),
            time=float(camera_time(camera.times)),
            pose=camera.camera_to_worlds.reshape(3, 4).to(self.device),
            positions=sample_positions(K, self.device),
            motion_at=None if self.config.disable_motion else self._motion_at,
        )
        if K == 1 and not any(c.acts_on(step) for c in components):
            return None
        return step

    def _motion_at(self, times: list[float]) -> list[dict[str, Tensor]]:
        """The motion model's Gaussians at float ``times`` (one batched call)."""
        return self.motion(dict(self.gauss_params.items()), torch.tensor(times, dtype=torch.float64))

    def get_outputs(self, camera: Cameras) -> dict[str, Union[Tensor, list]]:
        """While training with blur: the mean of the K virtual views of the camera (``rgb`` [H, W, 3], ...), as the
        blur components draw and combine them, with the step's :class:`BlurStep` under ``"blur_step"``; else (eval,
        viewer, ns-render, or blur off) the plain sharp render of :class:`DynamicSplatModel`."""
        step = None
        if self.training and isinstance(camera, Cameras) and camera.shape[0] == 1:
            step = self.blur_step(camera)
        if step is None:  # also several training cameras: the inherited error
            return super().get_outputs(camera)
        K = step.num_views
        views = VirtualViews(poses=step.pose.expand(K, 3, 4), times=torch.full((K,), step.time, device=self.device))
        for component in self.blur_components().values():
            views = component.expand(step, views)
        step.views = views
        float_times = views.float_times()
        cameras = self._virtual_cameras(camera, views.poses, views.times.detach())
        rendered = self.render_views(cameras, float_times, context=step)
        self._merge_view_metas(step, float_times)
        rgb = rendered["rgb"].mean(dim=0)
        for component in self.blur_components().values():
            if component.acts_on(step):
                rgb = component.combine(step, rendered["rgb"], rgb)
        outputs: dict[str, Any] = {
            "rgb": rgb,
            "depth": None if rendered["depth"] is None else rendered["depth"].mean(dim=0),
            "accumulation": rendered["accumulation"].mean(dim=0),
            "background": rendered["background"],
            "times": rendered["times"],
        }
        if "time" in rendered:
            outputs["time"] = rendered["time"]
        outputs[BLUR_STEP] = step
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
        (:func:`~dynsplat_ns.deblur.growth.bake_filter`)."""
        g = super().gaussians_at(t)
        var3d = None if self.training else self.eval_filter_variance()
        return g if var3d is None else bake_filter(g, var3d)

    def gaussians_at_times(self, times: Sequence[float], context: Any = None) -> list[dict[str, Tensor]]:
        """The motion model's Gaussians at ``times``; for a blurred step (``context``), with a gradient path from
        each time to the view times that carry one (:meth:`~dynsplat_ns.deblur.base.VirtualViews.with_time_gradient`;
        the exposure's)."""
        states = super().gaussians_at_times(times, context)
        if isinstance(context, BlurStep) and context.views is not None:
            states = context.views.with_time_gradient(list(times), states)
        return states

    def _rasterize_group(
        self,
        g: dict[str, Tensor],
        viewmats: Tensor,
        Ks: Tensor,
        W: int,
        H: int,
        sh_degree: int | None,
        mode: str,
        context: Any = None,
    ) -> tuple[Tensor, Tensor, dict | None]:
        """The inherited multi-camera call; one ``rasterize()`` call per view with the Gaussians grown for that view
        while a blurred step's components grow them (:meth:`~dynsplat_ns.deblur.base.BlurComponent.view_variance`,
        the views' metas merged and kept in the step), or in sharp renders by the evaluation filter."""
        if isinstance(context, BlurStep):
            growing = [c for c in self.blur_components().values() if c.grows_gaussians and c.acts_on(context)]
            if growing:
                return self._rasterize_grown(g, context, growing, viewmats, Ks, W, H, sh_degree, mode)
        var3d = None if self.training else self.eval_filter_variance()
        if var3d is None:
            return super()._rasterize_group(g, viewmats, Ks, W, H, sh_degree, mode, context)
        if self.crop_box is not None:  # the crop of the inherited call, applied to the filter's variance too
            keep = self.crop_box.within(g["means"]).squeeze()
            if keep.sum() == 0:
                return super()._rasterize_group(g, viewmats, Ks, W, H, sh_degree, mode, context)  # an empty render
            g, var3d = {k: v[keep] for k, v in g.items()}, var3d[keep]
        opacities = torch.sigmoid(g["opacities"]).squeeze(-1)

        def filtered(c: int) -> tuple[Tensor, Tensor]:
            return grow_in_view(g["means"], g["quats"], g["scales"], opacities, viewmats[c], Ks[c], W, H, var3d)

        render, alpha, metas = self._rasterize_each_view(g, filtered, viewmats, Ks, W, H, sh_degree, mode)
        return render, alpha, metas[0] if len(metas) == 1 else merge_metas(metas)

    def _rasterize_grown(
        self,
        g: dict[str, Tensor],
        step: BlurStep,
        growing: list[BlurComponent],
        viewmats: Tensor,
        Ks: Tensor,
        W: int,
        H: int,
        sh_degree: int | None,
        mode: str,
    ) -> tuple[Tensor, Tensor, dict]:
        """One ``rasterize()`` call per view of a time group of ``step`` with the Gaussians grown by the sum of the
        ``growing`` components' variances in that view; the per-view metas are kept in ``step.view_metas``."""
        opacities = torch.sigmoid(g["opacities"]).squeeze(-1)
        count = viewmats.shape[0]

        def grown(c: int) -> tuple[Tensor, Tensor]:
            view = ViewCamera(viewmats[c : c + 1], Ks[c : c + 1], W, H, index=c, count=count)

            def variance(depths: Tensor) -> Tensor:  # [N], the components' variances added
                parts = [v for v in (c.view_variance(step, view, depths) for c in growing) if v is not None]
                return sum(parts[1:], parts[0]) if parts else torch.zeros_like(depths)

            return grow_in_view(g["means"], g["quats"], g["scales"], opacities, viewmats[c], Ks[c], W, H, variance)

        render, alpha, metas = self._rasterize_each_view(g, grown, viewmats, Ks, W, H, sh_degree, mode)
        step.view_metas.append(metas)
        return render, alpha, merge_metas(metas)

    def _rasterize_each_view(self, g: dict[str, Tensor], inputs: Callable[[int], tuple[Tensor, Tensor]], *view: Any):
        """One inherited ``rasterize()`` call per camera c of ``view`` (viewmats [C, 4, 4], Ks [C, 3, 3], W, H,
        sh_degree, mode) with the activated scales and opacities ``inputs(c)``; returns the renders and alphas
        concatenated [C, H, W, ...] and the C metas."""
        viewmats, Ks, *rest = view
        renders, alphas, metas = [], [], []
        for c in range(viewmats.shape[0]):
            render, alpha, meta = self._rasterize_call(g, *inputs(c), viewmats[c : c + 1], Ks[c : c + 1], *rest)
            renders.append(render)
            alphas.append(alpha)
            metas.append(meta)
        return torch.cat(renders), torch.cat(alphas), metas

    @torch.no_grad()
    def eval_filter_variance(self) -> Tensor | None:
        """Per-Gaussian variance [N] (world units²) the Gaussians grow by in sharp renders: the sum of the blur
        components' :meth:`~dynsplat_ns.deblur.base.BlurComponent.eval_variance` (with defocus, the evaluation filter
        ``defocus_eval_filter``); None when none applies."""

        def means_at(t: float) -> Tensor:
            return self.gaussians_at_times([t])[0]["means"]

        variances = (c.eval_variance(self.num_points, self.step, means_at) for c in self.blur_components().values())
        parts = [v for v in variances if v is not None]
        return sum(parts[1:], parts[0]) if parts else None

    def _merge_view_metas(self, step: BlurStep, view_times: list[float]) -> None:
        """With several times of which one holds several views rasterized one by one, the inherited merge of the
        per-time metas cannot see through the per-view merges of :meth:`_rasterize_grown`: merge all per-view metas at
        once instead (in the groups' order of :meth:`render_views`) and hand that to the strategy."""
        per_group = step.view_metas
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
    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, Tensor]:
        """The inherited losses plus, while training a blurred step (``outputs["blur_step"]``), the blur components'
        (the trajectory regularisers of the image)."""
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        step = outputs.get(BLUR_STEP)
        if self.training and isinstance(step, BlurStep):
            for component in self.blur_components().values():
                loss_dict.update(component.loss(step))
        return loss_dict

    def get_metrics_dict(self, outputs, batch) -> dict[str, Tensor]:
        """The inherited metrics plus, while training, the blur components' (the mean exposure fraction, trajectory
        length and aperture)."""
        metrics = super().get_metrics_dict(outputs, batch)
        if self.training:
            with torch.no_grad():
                for component in self.blur_components().values():
                    metrics.update(component.metrics())
        return metrics
