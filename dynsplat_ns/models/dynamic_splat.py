"""DynamicSplatModel: splatfacto with time. Canonical Gaussians → motion(t) → rasterize() on any device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import remove
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
from nerfstudio.models.splatfacto import SplatfactoModel, SplatfactoModelConfig
from nerfstudio.utils.colors import get_color
from pytorch_msssim import SSIM
from torch import Tensor
from torch.nn import Parameter
from tyro.conf import Suppress

from dynsplat_ns import schedules
from dynsplat_ns.checkpoints.state import FrameAxes, ResumeInfo, RowMap, adapt_state
from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.gaussians import init_gaussian_params
from dynsplat_ns.models.camera_utils import viewmats_from_c2w
from dynsplat_ns.models.depth_loss import DepthPriorLoss
from dynsplat_ns.models.environment import EnvironmentMap, view_directions
from dynsplat_ns.models.metrics import LazyLPIPS
from dynsplat_ns.models.splatfacto_options import check_splatfacto_options
from dynsplat_ns.models.strategies import build_near_camera_pruner, build_strategy
from dynsplat_ns.motion.base import MotionModel
from dynsplat_ns.motion.choice import MotionChoice, resolve_motion
from dynsplat_ns.motion.static import StaticMotionConfig
from dynsplat_ns.motion.static_gaussians import STATIC_KEY
from dynsplat_ns.priors.dynamic_seeds import with_dynamic_seeds
from dynsplat_ns.priors.static_split import initial_static_flags, static_split_enabled
from dynsplat_ns.render import rasterize
from dynsplat_ns.render.meta_merge import merge_metas
from dynsplat_ns.time import camera_time

# Canonical per-Gaussian parameters owned by the model; motion models add theirs to the same dict.
BASE_GAUSSIAN_KEYS = ("means", "scales", "quats", "features_dc", "features_rest", "opacities")
#: Optimizer group of the environment map (the learned background of data without alpha).
ENVIRONMENT_GROUP = "environment"
# Viser's default background, used for renders when training used random backgrounds (as splatfacto does).
VIEWER_BACKGROUND = (0.1490, 0.1647, 0.2157)


@dataclass
class DynamicSplatModelConfig(SplatfactoModelConfig):
    """Gaussian splatting with a swappable motion model, renderable on CPU (torch) and CUDA (gsplat)."""

    _target: type = field(default_factory=lambda: DynamicSplatModel)
    """Model class to instantiate."""
    #: Why this model needs the data's test split (None: it does not); turns a missing split into an error saying so.
    test_split_reason: ClassVar[str | None] = None
    motion: MotionChoice = field(default_factory=StaticMotionConfig)
    """Motion component that moves the Gaussians to the camera's time; any method can switch it on the command line:
    ``--pipeline.model.motion {som,hexplane,marbles,static}``, then that model's flags (motion/choice.py)."""
    disable_motion: bool = False
    """Render the canonical Gaussians at every time: a static baseline with otherwise identical settings."""
    rasterizer_backend: Literal["auto", "torch", "gsplat", "cpp"] = "auto"
    """'auto': gsplat's CUDA kernels for CUDA tensors; on CPU the compiled C++ kernels ('cpp', built on first use and
    cached per user) when a compiler is available, else the pure-torch rasterizer ('torch')."""
    background_color: Literal["auto", "environment", "random", "black", "white"] = "auto"  # type: ignore[assignment]
    """Background: 'auto' uses the dataparser's alpha colour (e.g. white for D-NeRF), else 'environment': a learned
    colour per viewing direction (the sky; see dynsplat_ns/models/environment.py). 'random': a random colour per
    training step (splatfacto's default), a fixed grey-blue when rendering."""
    environment_lr: float = 0.01
    """Learning rate of the environment map (background_color 'environment')."""
    opacity_reg: float = 0.01
    """Weight of an L1 penalty on the Gaussians' opacities (mean over Gaussians, as 3DGS-MCMC): Gaussians that no
    training view needs fade out and are pruned."""
    near_camera_prune: float = 1.0
    """At every densification step, remove Gaussians closer to a training camera than this multiple of that
    camera's distance to its nearest other training camera (0: off). Between neighbouring cameras, out of their
    views, only far-away cameras see a Gaussian, against the sky: a floater right in front of any view in between."""
    num_downscales: int = 0
    """At the start, train at 1/2^d resolution (doubling every resolution_schedule steps); 0 trains at full size."""
    max_gaussians: int = 0
    """Cap on the number of Gaussians after each densification (lowest opacity removed); 0 means no cap."""
    num_random: int = 5000
    """Number of Gaussians drawn uniformly in the scene box when there are no seed points (or random_init)."""
    initial_opacity: float = 0.1
    """Opacity of every Gaussian at initialisation."""
    stop_split_at: int | None = None  # type: ignore[assignment]
    """Stop densifying at this step; None ("auto"): 75 % of the run (--max-num-iterations), as 15000 of 20000."""
    random_scale: float | None = None  # type: ignore[assignment]
    """Not supported: random points fill the scene box (see num_random); a value is rejected at startup."""
    depth_loss_weight: float | None = None
    """Weight of the depth-prior loss where the dataparser lists depth (models/depth_loss.py): L1 on the expected depth
    for metric depth, scale-and-shift invariant for disparity (D2RF dpt/); 0: off. None (auto): 0.1 where the data
    ships metric depth (DyCheck's LiDAR), off for relative disparity (D2RF dpt/: give a weight to use it)."""
    depth_loss_decay_steps: int = 0
    """Decay the depth-loss weight linearly to depth_loss_final_fraction of it over this many steps (0: constant)."""
    depth_loss_final_fraction: float = 0.1
    """Depth-loss weight at the end of its decay, as a fraction of depth_loss_weight."""
    static_background: bool | None = None
    """Static/dynamic split: seed points outside the training views' motion masks are static and skip the motion model
    (priors/static_split.py); new Gaussians inherit the flag. Masks come from the data (D2RF motion_masks/) or, for
    video with metric depth and no masks (DyCheck), are derived from it (priors/derived_masks.py). None (auto): on
    for video with metric depth and no masks, off otherwise; True: on wherever there are masks; False: off."""
    dynamic_seed_points: int = 400
    """With the static split and depth (D2RF dpt/, DyCheck depth/): seeds unprojected from the masked pixels
    (priors/dynamic_seeds.py); 0: off."""
    eval_pose_refine_steps: int = 0
    """0 = off; N: ns-eval also scores each test view after N Adam steps of a per-view SE(3) pose correction with the
    scene frozen (models/pose_refine.py), as refined_psnr/refined_ssim/... next to the plain psnr/ssim/..."""
    eval_pose_refine_lr: float = 1e-3
    """Adam learning rate of the per-test-view pose correction (a translation + axis-angle 6-vector, camera frame)."""
    # ModelConfig options of ray-marching models (no rays here; splatfacto ignores them too): not on the command line.
    enable_collider: Suppress[bool] = False
    """Not applicable: Gaussian models cast no rays."""
    collider_params: Suppress[dict[str, float] | None] = None
    """Not applicable: Gaussian models cast no rays."""
    loss_coefficients: Suppress[dict[str, float]] = field(default_factory=dict)
    """Not applicable: the losses are weighted by their own options."""
    eval_num_rays_per_chunk: Suppress[int] = 4096
    """Not applicable: Gaussian models render whole images."""
    prompt: Suppress[str | None] = None
    """Not supported (a text prompt, set by ns-train's --prompt); a value is rejected at startup."""

    def __post_init__(self) -> None:
        # ``--pipeline.model.motion*`` flags arrive as flat flags (motion/choice.py): build the chosen model's config.
        self.motion = resolve_motion(self.motion)

    def extra_optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """Optimizer groups of the model's own global parameters, built from this config when a run starts (see
        :func:`dynsplat_ns.training.trainer.resolve_run_schedules`): the environment map (used when the background is
        one)."""
        del max_steps  # constant rate
        optimizer = AdamOptimizerConfig(lr=self.environment_lr, eps=1e-15)
        groups = {ENVIRONMENT_GROUP: {"optimizer": optimizer, "scheduler": None}}
        if self.static_background is not False:  # the static flag: a Gaussian parameter (densified in lock-step)
            groups[STATIC_KEY] = {"optimizer": AdamOptimizerConfig(lr=0.0), "scheduler": None}
        return groups


class DynamicSplatModel(SplatfactoModel):
    """Splatfacto whose Gaussians move with time; one camera time per render.

    Per-Gaussian motion parameters live in ``gauss_params`` next to means/scales/... so gsplat's ``DefaultStrategy``
    keeps them in lock-step; global motion parameters live in ``self.motion``.
    """

    config: DynamicSplatModelConfig
    motion: MotionModel

    # ---- construction ----------------------------------------------------------------------------------------
    def populate_modules(self) -> None:
        check_splatfacto_options(self.config)
        metadata = self.kwargs.get("metadata") or {}
        means, colors = self._initial_points()
        num_seeds = means.shape[0]
        split = static_split_enabled(self.config.static_background, metadata)
        means, colors = with_dynamic_seeds(means, colors, metadata, self.config, split, self.seed_points is not None)
        init = init_gaussian_params(means, colors, self.config.sh_degree, self.config.initial_opacity)
        lo, hi = init["means"].min(dim=0).values, init["means"].max(dim=0).values
        aabb = torch.stack([torch.minimum(lo, hi - 1e-3), torch.maximum(hi, lo + 1e-3)])
        self.motion = self.config.motion.setup(num_frames=self._num_frames(metadata), aabb=aabb)
        motion_params = self.motion.per_gaussian_params(init)
        clash = set(motion_params) & set(init)
        if clash:
            raise ValueError(f"motion model {type(self.motion).__name__} redefines Gaussian parameters {clash}")
        init.update(motion_params)
        num_dynamic_seeds = means.shape[0] - num_seeds
        init.update(initial_static_flags(init["means"], metadata, split, num_dynamic_seeds))
        self.gauss_params = torch.nn.ParameterDict({k: Parameter(v) for k, v in init.items()})

        self.camera_optimizer = self.config.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = SSIM(data_range=1.0, size_average=True, channel=3)
        self.lpips = LazyLPIPS()
        self.step = 0
        self.crop_box = None
        self.background_color = self._default_background(metadata)
        self.environment = EnvironmentMap() if self._uses_environment(metadata) else None
        ranks = int(self.kwargs.get("ranks", 1))  # given by DynsplatPipeline (torch.distributed world size)
        self.near_camera = build_near_camera_pruner(self.config.near_camera_prune, ranks)
        self.depth_loss = DepthPriorLoss.from_config(self.config, metadata)  # None: no depth or weight 0
        if self.config.use_bilateral_grid:
            from nerfstudio.model_components.lib_bilagrid import BilateralGrid

            gx, gy, gw = self.config.grid_shape
            self.bil_grids = BilateralGrid(num=self.num_train_data, grid_X=gx, grid_Y=gy, grid_W=gw)
        strategy = DefaultStrategy(
            prune_opa=self.config.cull_alpha_thresh,
            grow_grad2d=self.config.densify_grad_thresh,
            grow_scale3d=self.config.densify_size_thresh,
            grow_scale2d=self.config.split_screen_size,
            prune_scale3d=self.config.cull_scale_thresh,
            prune_scale2d=self.config.cull_screen_size,
            refine_scale2d_stop_iter=self.config.stop_screen_size_at,
            refine_start_iter=self.config.warmup_length,
            refine_stop_iter=schedules.stop_split_at(self.config.stop_split_at),
            reset_every=self.config.reset_alpha_every * self.config.refine_every,
            refine_every=self.config.refine_every,
            pause_refine_after_reset=self.num_train_data + self.config.refine_every,
            absgrad=self.config.use_absgrad,
            revised_opacity=False,
            verbose=False,
        )
        # Chosen here, once, from what the run needs: views rendered per step and ranks (models/strategies.py).
        self.strategy = build_strategy(strategy, int(self.kwargs.get("views_per_step", 1)), ranks)
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0)

    # ---- checkpoints: resume or fine-tune on another set of training images or frames ----------------------------
    def load_state_dict(self, dict, **kwargs):  # type: ignore[override]  # noqa: A002
        """``nn.Module``'s entry point: :meth:`load_checkpoint_state` with nothing known about the checkpoint's
        training images (``strict`` as in torch)."""
        self.load_checkpoint_state(dict, ResumeInfo(), strict=kwargs.get("strict", True))

    def load_checkpoint_state(
        self, state: dict[str, Tensor], resume: ResumeInfo | None = None, strict: bool = True
    ) -> dict[str, RowMap]:
        """Loads a checkpoint's model state, adapted to this model where a resume/fine-tune changed the dataset.

        * Gaussian parameters are resized to the checkpoint's count (splatfacto).
        * Per-image tensors (:meth:`per_image_state_keys`) are matched by image name when ``resume`` maps this
          dataset's images onto the checkpoint's; rows of images the checkpoint lacks keep their fresh
          initialisation. Without a mapping, a count mismatch re-initialises them (with a warning).
        * Per-frame tensors (:meth:`per_frame_state_keys`) are resampled linearly in time along their declared axes.
        * Any other shape mismatch raises ``ValueError`` naming the tensors (e.g. another sh_degree).

        Args:
            state: Model state dict of the checkpoint (keys without the pipeline's ``_model.`` prefix).
            resume: What the pipeline knows about the checkpoint's training images; None: nothing.
            strict: As ``torch.nn.Module.load_state_dict``.

        Returns:
            For each per-image parameter whose rows were remapped, how (to fit its optimizer state the same way).
        """
        adapted, row_maps, warnings = adapt_state(
            state, self.state_dict(), self.per_image_state_keys(), self.per_frame_state_keys(), resume or ResumeInfo()
        )
        if warnings:
            from nerfstudio.utils.rich_utils import CONSOLE

            for line in warnings:
                CONSOLE.print(f"[yellow]{line}")
        super().load_state_dict(adapted, strict=strict)
        self.motion.set_step(self.step)
        return row_maps

    def per_image_state_keys(self) -> dict[str, int]:
        """State-dict keys with an axis indexed by the training image, and that axis: the camera optimizer's pose
        adjustments, the bilateral grids and what the motion model declares."""
        keys = {}
        if isinstance(getattr(self.camera_optimizer, "pose_adjustment", None), Tensor):
            keys["camera_optimizer.pose_adjustment"] = 0
        if self.config.use_bilateral_grid:
            keys["bil_grids.grids"] = 0
        for name, axis in self.motion.per_image_state_keys().items():
            keys[self._motion_state_key(name)] = axis
        return keys

    def per_frame_state_keys(self) -> dict[str, FrameAxes]:
        """State-dict keys with an axis (or axes) indexed by the training frame: what the motion model declares."""
        return {self._motion_state_key(name): axes for name, axes in self.motion.per_frame_state_keys().items()}

    def _motion_state_key(self, name: str) -> str:
        """This model's state-dict key of a tensor the motion model names (a per-Gaussian parameter or its own)."""
        own = name in self.motion.state_dict()
        if name in self.gauss_params and not own:
            return f"gauss_params.{name}"
        if own and name not in self.gauss_params:
            return f"motion.{name}"
        where = "both a per-Gaussian parameter and in" if own else "neither a per-Gaussian parameter nor in"
        raise ValueError(
            f"{type(self.motion).__name__} declares per-image/per-frame state {name!r}, which is {where} its state_dict"
        )

    def _num_frames(self, metadata: dict) -> int:
        """Distinct training times reported by the dataparser; a clear error when the motion model needs them."""
        num_frames = int(metadata.get("num_frames") or 1)
        motion_cls = self.config.motion._target
        if getattr(motion_cls, "needs_frames", False) and num_frames < 2 and not self.config.disable_motion:
            raise DynsplatConfigError(
                f"{motion_cls.__name__} needs a dataset with times (at least 2 distinct Cameras.times), but the "
                f"dataparser reported {num_frames} frame(s); use a dynamic dataparser (e.g. dynsplat-dnerf) or "
                "--pipeline.model.disable-motion True"
            )
        return num_frames

    def _initial_points(self) -> tuple[Tensor, Tensor | None]:
        """Seed points from the dataparser, or uniform random points in the scene box."""
        seed = self.seed_points
        if seed is not None and not self.config.random_init and seed[0].shape[0] > 0:
            return seed[0], seed[1]
        aabb, gen = self.scene_box.aabb.float(), torch.Generator().manual_seed(0)
        return torch.rand(self.config.num_random, 3, generator=gen) * (aabb[1] - aabb[0]) + aabb[0], None

    def _uses_environment(self, metadata: dict) -> bool:
        """Whether the background is the learned environment map."""
        cfg = self.config.background_color
        return cfg == "environment" or (cfg == "auto" and metadata.get("background_color") is None)

    def _default_background(self, metadata: dict) -> Tensor:
        if self.config.background_color in ("auto", "random", "environment"):
            bg = metadata.get("background_color") if self.config.background_color == "auto" else None
            return torch.as_tensor(bg if bg is not None else VIEWER_BACKGROUND, dtype=torch.float32).reshape(3)
        return get_color(self.config.background_color)

    def _get_background_color(self) -> Tensor:
        if self.config.background_color == "random" and self.training:
            return torch.rand(3, device=self.device)
        return self.background_color.to(self.device)

    # ---- parameters ------------------------------------------------------------------------------------------
    def get_gaussian_param_groups(self) -> dict[str, list[Parameter]]:
        return {name: [param] for name, param in self.gauss_params.items()}

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        groups = super().get_param_groups()
        for name, params in self.motion.param_groups().items():
            if name in groups:
                raise ValueError(f"motion parameter group {name!r} clashes with a model group")
            groups[name] = params
        if self.environment is not None:
            groups[ENVIRONMENT_GROUP] = list(self.environment.parameters())
        return groups

    def step_cb(self, optimizers: Optimizers, step: int) -> None:
        super().step_cb(optimizers, step)
        self.motion.set_step(step)

    def step_post_backward(self, step: int) -> None:
        super().step_post_backward(step)
        near = self.near_camera.drop_mask(self.gauss_params["means"], step, self.strategy)
        if near is not None:
            remove(self.gauss_params, self.optimizers, self.strategy_state, near)
        caps = [c for c in (self.config.max_gaussians or None, self.motion.max_gaussians()) if c]
        cap = min(caps) if caps else 0
        if cap > 0 and self.num_points > cap:
            with torch.no_grad():
                opacity = self.gauss_params["opacities"].reshape(-1)
                drop = torch.zeros_like(opacity, dtype=torch.bool)
                drop[opacity.argsort()[: self.num_points - cap]] = True
            remove(self.gauss_params, self.optimizers, self.strategy_state, drop)

    # ---- rendering -------------------------------------------------------------------------------------------
    def gaussians_at(self, t: float) -> dict[str, Tensor]:
        """Raw Gaussian parameters moved to time ``t`` (canonical when motion is disabled)."""
        return self.gaussians_at_times([t])[0]

    def gaussians_at_times(self, times: Sequence[float], context: Any = None) -> list[dict[str, Tensor]]:
        """Raw Gaussian parameters moved to each of ``times`` (one motion evaluation for all; canonical when motion is
        disabled). One time uses the motion model's scalar call, several its batched one. ``context``: the render's,
        from :meth:`render_views` (unused here; a subclass may change the Gaussians for it)."""
        params = dict(self.gauss_params.items())
        if self.config.disable_motion:
            moved = [self.motion.canonical(params)] * len(times)
        elif len(times) == 1:
            moved = [self.motion(params, times[0])]
        else:
            moved = self.motion(params, torch.tensor(list(times), dtype=torch.float64))
        return [{**params, **m} for m in moved]

    def get_outputs(self, camera: Cameras) -> dict[str, Union[Tensor, list]]:
        """Renders one camera (or, outside training, several) at ``camera.times``: :meth:`render_views` of them.

        Returns:
            rgb [H, W, 3], depth [H, W, 1] (eval or when requested), accumulation [H, W, 1], background, and while
            training the render's ``time`` (a float, for the motion regularisers in :meth:`get_loss_dict`). Several
            cameras give [C, H, W, ...] images.
        """
        if not isinstance(camera, Cameras):
            return {}
        if self.training and camera.shape[0] != 1:
            raise ValueError("training get_outputs renders one camera; use render_views for several views in a step")
        outputs = self.render_views(camera)
        for key in ("rgb", "depth", "accumulation"):
            if outputs[key] is not None and outputs[key].shape[0] == 1:
                outputs[key] = outputs[key].squeeze(0)
        del outputs["times"]
        if outputs["background"].dim() == 4 and outputs["background"].shape[0] == 1:
            outputs["background"] = outputs["background"].squeeze(0)
        if not self.training:
            H, W = self.last_size
            outputs["background"] = outputs["background"].expand(H, W, 3)
        return outputs

    def render_views(
        self, cameras: Cameras, times: Tensor | Sequence[float] | None = None, context: Any = None
    ) -> dict[str, Union[Tensor, list, float]]:
        """Renders K views in one step: camera k at time ``times[k]``.

        Views that share a time form a group: the motion model is evaluated once per distinct time (one batched
        call), and each group is one multi-camera ``rasterize()`` call. While training, the groups' metas are merged
        into one ``self.info`` (:func:`dynsplat_ns.render.meta_merge.merge_metas`) that gsplat's strategy reads as
        if one call had rendered all K views; for its statistics to equal K single-view steps, the loss must be the
        mean over the K views. One view (or one time) is exactly the plain single-camera step.

        Args:
            cameras: K cameras of one image size, e.g. copies of one camera (virtual cameras of a blurred image).
            times: K times in [0, 1]; None: each camera's ``times`` (0 for cameras without times).
            context: what a subclass renders this step for (e.g. dynsplat-deblur's ``BlurStep``), passed unchanged to
                :meth:`gaussians_at_times` and :meth:`_rasterize_group`; None for a plain render.

        Returns:
            rgb [K, H, W, 3], depth [K, H, W, 1] (eval or when requested, else None), accumulation [K, H, W, 1],
            background [3], ``times`` (K floats) and, while training and when all views share one time, ``time``.
        """
        K = int(cameras.shape[0])
        view_times = self._view_times(cameras, times)
        if self.training:
            c2w = torch.cat([self.camera_optimizer.apply_to_camera(cameras[k : k + 1]) for k in range(K)])
            self.near_camera.record(cameras)
        else:
            c2w = cameras.camera_to_worlds
        distinct = list(dict.fromkeys(view_times))
        groups = [[k for k in range(K) if view_times[k] == t] for t in distinct]
        states = self.gaussians_at_times(distinct, context)

        if self.config.sh_degree > 0:
            sh_degree = min(self.step // self.config.sh_degree_interval, self.config.sh_degree)
        else:
            sh_degree = None
        d = self._get_downscale_factor()
        cameras.rescale_output_resolution(1 / d)
        Ks = cameras.get_intrinsics_matrices().to(self.device)
        sizes = {(int(w), int(h)) for w, h in zip(cameras.width.reshape(-1), cameras.height.reshape(-1), strict=True)}
        cameras.rescale_output_resolution(d)
        if len(sizes) != 1:
            raise ValueError(f"views rendered together must share one image size, got (width, height) {sorted(sizes)}")
        ((W, H),) = sizes
        self.last_size = (H, W)
        depth = self.config.output_depth_during_training or not self.training or self.depth_loss is not None
        render_mode = "RGB+ED" if depth else "RGB"
        viewmats = viewmats_from_c2w(c2w.to(self.device))

        renders, alphas, metas = [], [], []
        for views, g in zip(groups, states, strict=True):
            render, alpha, meta = self._rasterize_group(
                g, viewmats[views], Ks[views], W, H, sh_degree, render_mode, context
            )
            renders.append(render)
            alphas.append(alpha)
            metas.append(meta)
        if len(groups) > 1:
            order = torch.tensor([k for views in groups for k in views]).argsort().to(self.device)
            render, alpha = torch.cat(renders)[order], torch.cat(alphas)[order]
        live = [m for m in metas if m is not None]
        if live:
            # One call (one time): its own meta, as the plain single-camera step. Several: one meta over the K views
            # in camera order (an eval crop that emptied some groups leaves the others' metas in group order).
            if len(metas) == 1:
                self.info = metas[0]
            else:
                self.info = merge_metas(metas, groups) if len(live) == len(metas) else merge_metas(live)
            if self.training:
                self.strategy.step_pre_backward(
                    self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info
                )

        if self.environment is not None:
            background = self.environment(view_directions(c2w.to(self.device), Ks, W, H))  # [K, H, W, 3]
        else:
            background = self._get_background_color()
        rgb = torch.clamp(render[..., :3] + (1 - alpha) * background, 0.0, 1.0)
        if self.config.use_bilateral_grid and self.training and cameras.metadata and "cam_idx" in cameras.metadata:
            rgb = torch.cat(
                [self._apply_bilateral_grid(rgb[k : k + 1], cameras[k : k + 1].metadata["cam_idx"], H, W)
                 for k in range(K)]
            )  # fmt: skip
        depth = None
        if render_mode == "RGB+ED":
            depth = render[..., 3:4]
            depth = torch.where(alpha > 0, depth, depth.detach().amax(dim=(1, 2, 3), keepdim=True))
        outputs = {"rgb": rgb, "depth": depth, "accumulation": alpha, "background": background, "times": view_times}
        if self.training and len(distinct) == 1:
            outputs["time"] = distinct[0]  # for the motion regularisers in get_loss_dict (kept out of eval outputs)
        return outputs

    def _view_times(self, cameras: Cameras, times: Tensor | Sequence[float] | None) -> list[float]:
        """One float time in [0, 1] per camera."""
        K = int(cameras.shape[0])
        if times is None:
            if cameras.times is None:
                return [camera_time(None)] * K
            return [camera_time(cameras.times[k : k + 1]) for k in range(K)]
        flat = times.detach().reshape(-1).tolist() if isinstance(times, Tensor) else list(times)
        if len(flat) != K:
            raise ValueError(f"render_views: {K} cameras but {len(flat)} times")
        return [min(max(float(t), 0.0), 1.0) for t in flat]

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
        """One ``rasterize()`` call: the Gaussians ``g`` (at one time) seen by C cameras; ``meta`` None when the crop
        box (eval) leaves no Gaussian, and the render is then empty. ``context``: the render's, from
        :meth:`render_views` (unused here)."""
        if self.crop_box is not None and not self.training:
            keep = self.crop_box.within(g["means"]).squeeze()
            if keep.sum() == 0:
                C = viewmats.shape[0]
                render = torch.zeros(C, H, W, 4 if mode == "RGB+ED" else 3, device=self.device)
                render[..., 3:] = 10.0  # splatfacto's depth of an empty render
                return render, torch.zeros(C, H, W, 1, device=self.device), None
            g = {k: v[keep] for k, v in g.items()}
        scales, opacities = torch.exp(g["scales"]), torch.sigmoid(g["opacities"]).squeeze(-1)
        return self._rasterize_call(g, scales, opacities, viewmats, Ks, W, H, sh_degree, mode)

    def _rasterize_call(self, g: dict[str, Tensor], scales: Tensor, opacities: Tensor, *view: Any) -> tuple:
        """``rasterize()`` of the Gaussians ``g`` with activated ``scales`` [N, 3] and ``opacities`` [N] (a subclass
        may change them per view, e.g. defocus) seen by ``view`` = (viewmats [C, 4, 4], Ks [C, 3, 3], W, H, sh_degree,
        render mode); returns (render, alpha, meta)."""
        viewmats, Ks, W, H, sh_degree, mode = view
        colors = torch.cat((g["features_dc"][:, None, :], g["features_rest"]), dim=1)
        if sh_degree is None:
            colors = torch.sigmoid(colors).squeeze(1)
        return rasterize(
            means=g["means"],
            quats=g["quats"],
            scales=scales,
            opacities=opacities,
            colors=colors,
            viewmats=viewmats,
            Ks=Ks,
            width=W,
            height=H,
            sh_degree=sh_degree,
            render_mode=mode,
            near_plane=0.01,
            far_plane=1e10,
            absgrad=self.strategy.absgrad,
            backend=self.config.rasterizer_backend,
            rasterize_mode=self.config.rasterize_mode,
        )

    # ---- losses and metrics ----------------------------------------------------------------------------------
    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, Tensor]:
        """Splatfacto's losses plus, while training, the motion model's regularisers at the render's time
        (``outputs["time"]``, set by :meth:`get_outputs` in training mode)."""
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.training and self.depth_loss is not None:
            loss_dict.update(self.depth_loss(outputs, batch, self.step))
        if self.training and self.config.opacity_reg > 0:
            loss_dict["opacity_reg"] = self.config.opacity_reg * torch.sigmoid(self.gauss_params["opacities"]).mean()
        if self.training and not self.config.disable_motion:
            loss_dict.update(self.motion_regularization(outputs["time"] if "time" in outputs else outputs["times"]))
        return loss_dict

    def motion_regularization(self, times: float | Sequence[float]) -> dict[str, Tensor]:
        """The motion model's regularisers for a step that rendered ``times``: at one time as the model gives them,
        for several distinct times the mean over them (time-independent terms keep their value). Terms that need the
        Gaussians at a rendered time reuse the state the render computed (:meth:`MotionModel.state_at`)."""
        distinct = list(dict.fromkeys(float(t) for t in times)) if isinstance(times, Sequence) else [float(times)]
        per_time = [self.motion.regularization(self.gauss_params, t) for t in distinct]
        if len(per_time) == 1:
            return per_time[0]
        return {key: sum(losses[key] for losses in per_time) / len(per_time) for key in per_time[0]}

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], region_metrics: bool = False
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        """PSNR/SSIM (+ LPIPS when its weights are on disk, never downloaded) and the side-by-side image.

        Args:
            outputs: :meth:`get_outputs` of the image's camera.
            batch: The eval batch (``image``; optionally a dynamic-region mask, see
                :func:`dynsplat_ns.models.metrics.dynamic_mask_from_batch`).
            region_metrics: Also return ``masked_psnr``/``masked_ssim``/``masked_fraction`` when the batch has a
                dynamic-region mask and ``covisible_psnr``/``covisible_ssim``/``covisible_fraction`` (DyCheck's
                mPSNR/mSSIM) when it has a covisibility mask (see ``metrics.REGION_MASKS``). Off by default, so
                that the keys are the same for every image (nerfstudio averages each key of the first image over
                all images); the dynsplat pipeline turns it on.
        """
        from dynsplat_ns.models.metrics import REGION_MASKS, dynamic_mask_from_batch
        from dynsplat_ns.models.metrics import region_metrics as masked_region_metrics

        gt_rgb = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        pred_rgb = outputs["rgb"]
        combined = torch.cat([gt_rgb, pred_rgb], dim=1)
        gt = torch.moveaxis(gt_rgb, -1, 0)[None]
        pred = torch.moveaxis(pred_rgb, -1, 0)[None]
        metrics: dict[str, float] = {"psnr": float(self.psnr(gt, pred).item()), "ssim": float(self.ssim(gt, pred))}
        lpips = self.lpips(gt, pred)
        if lpips is not None:
            metrics["lpips"] = lpips
        if region_metrics:
            for region in REGION_MASKS:
                mask = dynamic_mask_from_batch(batch, region.batch_key)
                metrics.update(
                    masked_region_metrics(gt_rgb.detach(), pred_rgb.detach(), mask, region.prefix, region.ssim)
                )
        return metrics, {"img": combined}
