"""The one interface every blur type of :class:`~dynsplat_ns.deblur.model.DeblurSplatModel` implements.

A blurry training image is rendered as K sharp *virtual views* (:class:`VirtualViews`: poses × sub-times over the
exposure), each rasterized as usual or with the Gaussians grown for that view, and combined into one image. A blur
component takes part in that through a few hooks, each with a default that leaves the render as it is:

* **parameters**: ordinary ``nn.Parameter``/buffers of the component (its ``state_dict`` keys, under the name the
  model gives it), by optimizer group in :meth:`BlurComponent.param_groups`; tables indexed by the training image or
  frame are declared by :meth:`BlurComponent.per_image_state_keys` / :meth:`BlurComponent.per_frame_state_keys`, so a
  resume matches their rows by image name or resamples them in time;
* **views**: :meth:`BlurComponent.expand` moves the K virtual views (camera shake: poses along a trajectory; object
  motion: sub-times over the exposure); :attr:`BlurComponent.spreads_exposure` asks for the K views at all;
* **Gaussians per view**: :meth:`BlurComponent.view_variance` grows each Gaussian in one view by an isotropic 3D
  variance, its energy conserved (defocus: the circle of confusion);
* **image**: :meth:`BlurComponent.combine` turns the K renders (their mean, the exposure integral) into the blurry
  prediction (e.g. an image-space kernel);
* **losses and metrics** of the step: :meth:`BlurComponent.loss`, :meth:`BlurComponent.metrics`;
* **evaluation** renders sharp: the plain pose at the frame time; :meth:`BlurComponent.eval_variance` may still grow
  each Gaussian (defocus: no sharper than the sharpest training view saw it).

Everything a hook needs about the step it acts on comes in a :class:`BlurStep`, created by the model for each blurred
training render and handed to every hook and, through the outputs, to the loss. Every component starts as the
identity (zero trajectories, zero aperture, ...): at initialisation the model renders like its motion model alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from dynsplat_ns.deblur.time_gradient import attach_time_gradient

#: Gaussian states at float times: the motion model's output (raw means, scales, quats, opacities), one per time.
MotionAt = Callable[[list[float]], list[dict[str, Tensor]]]


@dataclass
class BlurComponentConfig(InstantiateConfig):
    """Base config of a blur component."""

    _target: type = field(default_factory=lambda: BlurComponent)
    """Blur component class to instantiate."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """nerfstudio optimizer entries for the groups of :meth:`BlurComponent.param_groups`, built from this config's
        rate fields; the dynsplat trainer adds them when training starts (as a motion model's).

        Args:
            max_steps: training length, used by the schedulers.
        """
        return {}


@dataclass(frozen=True)
class VirtualViews:
    """The K sharp views a blurry training image is rendered as (view k at position ``u_k`` of the exposure)."""

    poses: Tensor
    """Camera-to-world poses [K, 3, 4] (nerfstudio's OpenGL convention)."""
    times: Tensor
    """Render times [K] in [0, 1]; may carry a gradient (to exposure parameters), passed on through ``velocities``."""
    velocities: Mapping[float, dict[str, Tensor]] = field(default_factory=dict)
    """d(state)/dt of the motion model at each time (by its float value) whose tensor in ``times`` carries a gradient
    (:func:`~dynsplat_ns.deblur.time_gradient.time_velocities`); empty: the times are constants."""

    def float_times(self) -> list[float]:
        """The K render times as Python floats."""
        return [float(x) for x in self.times.detach().cpu().tolist()]

    def with_time_gradient(self, times: Sequence[float], states: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """``states`` (the Gaussians at the float ``times``, the render's distinct times) with a gradient path from
        each state back to its time in :attr:`times` (:func:`~dynsplat_ns.deblur.time_gradient.attach_time_gradient`):
        unchanged values."""
        if not self.velocities:
            return states
        tensors = dict(zip(self.float_times(), self.times, strict=True))
        per_index = {i: self.velocities[float(t)] for i, t in enumerate(times) if float(t) in self.velocities}
        return attach_time_gradient(states, times, tensors, per_index)


@dataclass
class BlurStep:
    """One blurred training render: what it renders, handed to every component hook and to the loss.

    Created by :meth:`~dynsplat_ns.deblur.model.DeblurSplatModel.get_outputs`; :attr:`views` is filled in once every
    component expanded them, and :attr:`view_metas` while the views are rasterized.
    """

    image: int | None
    """Index of the training image (the camera optimizer's ``cam_idx``); None for a camera without one."""
    time: float
    """The image's time in [0, 1] (its frame's)."""
    pose: Tensor
    """The image's camera-to-world pose [3, 4]."""
    positions: Tensor
    """Positions u_k ∈ [0, 1] of the K views over the exposure [K] (start and end included; 0.5 for one view)."""
    motion_at: MotionAt | None
    """The motion model at float times (one batched call, no gradient wanted), for time derivatives; None when the
    model renders without motion (``--pipeline.model.disable-motion``): every time gives the same Gaussians."""
    views: VirtualViews | None = None
    """The K virtual views, after every component's :meth:`BlurComponent.expand`."""
    view_metas: list[list[dict]] = field(default_factory=list)
    """Per time group rasterized one view at a time (components that grow the Gaussians): the views' rasterizer
    metas, merged into the step's densification meta after the render."""

    @property
    def num_views(self) -> int:
        """K, the number of virtual views."""
        return int(self.positions.shape[0])


@dataclass(frozen=True)
class ViewCamera:
    """One camera of a group being rasterized, in the rasterizer's conventions."""

    viewmat: Tensor
    """World-to-camera (OpenCV) [1, 4, 4]."""
    K: Tensor
    """Intrinsics [1, 3, 3] (pixels, at the render's resolution)."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    index: int
    """Position of this camera among the group's (views at one time)."""
    count: int
    """Number of cameras in the group."""


class BlurComponent(nn.Module):
    """Base blur component: changes nothing.

    Args:
        config: its config.
        num_images: number of training images (the rows of per-image tables, indexed by ``BlurStep.image``).
        num_frames: number of distinct training times T (the rows of per-frame tables).
    """

    config: BlurComponentConfig
    #: True for components that grow the Gaussians per view (:meth:`view_variance`): the views of a step the component
    #: acts on (:meth:`acts_on`) are then rasterized one call per view.
    grows_gaussians: bool = False

    def __init__(self, config: BlurComponentConfig, num_images: int = 1, num_frames: int = 1) -> None:
        super().__init__()
        self.config = config
        self.num_images = max(int(num_images), 1)
        self.num_frames = max(int(num_frames), 1)

    # ---- parameters ------------------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """This component's parameters by optimizer-group name (entries in :meth:`BlurComponentConfig.optimizer_configs`
        of the same names)."""
        return {}

    def per_image_state_keys(self) -> dict[str, int]:
        """Keys of this module's ``state_dict()`` with an axis indexed by the training image, and that axis: on a
        resume their rows are matched by image name (rows of images the checkpoint lacks keep their initialisation)."""
        return {}

    def per_frame_state_keys(self) -> dict[str, int]:
        """Keys of this module's ``state_dict()`` with an axis indexed by the training frame, and that axis: resampled
        linearly in time when a checkpoint has another number of frames."""
        return {}

    def upgrade_state(self, state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
        """A checkpoint's model state, with what an earlier version of this component did not save filled in (keys
        ``prefix`` + this module's names); the default returns it unchanged."""
        return state

    # ---- training render -------------------------------------------------------------------------------------
    @property
    def spreads_exposure(self) -> bool:
        """Whether this component needs the image rendered as the K virtual views (``num_virtual_views``) over the
        exposure; if no component does, a step renders one view."""
        return False

    def acts_on(self, step: BlurStep) -> bool:
        """Whether this component changes the render of ``step`` by itself (beyond moving its views): then the step
        goes through the blurred path even with one view, and :meth:`view_variance` (with :attr:`grows_gaussians`) and
        :meth:`combine` are called for it (only then)."""
        return False

    def expand(self, step: BlurStep, views: VirtualViews) -> VirtualViews:
        """The virtual views of ``step`` moved by this component (poses along a trajectory, times over the exposure);
        ``views`` are the previous components' (at first K copies of the image's pose and time)."""
        return views

    def view_variance(self, step: BlurStep, view: ViewCamera, depths: Tensor) -> Tensor | None:
        """With :attr:`grows_gaussians`, for a step this component :meth:`acts_on`: the isotropic 3D variance [N]
        (world units²) each Gaussian grows by in ``view`` of ``step`` (its scales become sqrt(scale² + variance), its
        opacity is compensated so its energy in the view is conserved; variances of several components add).

        Args:
            step: the step being rendered.
            view: one camera of the time group being rasterized.
            depths: camera depth z [N] of each Gaussian in ``view`` (negative behind the camera).
        """
        return None

    def combine(self, step: BlurStep, renders: Tensor, rgb: Tensor) -> Tensor:
        """The blurry prediction ``rgb`` [H, W, 3] of a step this component :meth:`acts_on`, from the K renders
        ``renders`` [K, H, W, 3] and the previous components' image (at first the renders' mean: each view one equal
        share of the exposure)."""
        return rgb

    def loss(self, step: BlurStep) -> dict[str, Tensor]:
        """Weighted regulariser losses of this component for the training step ``step``."""
        return {}

    def metrics(self) -> dict[str, Tensor]:
        """Scalars to log while training (detached)."""
        return {}

    # ---- evaluation ------------------------------------------------------------------------------------------
    def eval_variance(self, num_gaussians: int, iteration: int, means_at: Callable[[float], Tensor]) -> Tensor | None:
        """The isotropic 3D variance [num_gaussians] each Gaussian grows by in sharp renders (evaluation, viewer,
        ``ns-render``, export), or None (drawn at its own size).

        Args:
            num_gaussians: current number of Gaussians N.
            iteration: current training step (to cache the result between renders).
            means_at: centres [N, 3] of the Gaussians at a time in [0, 1].
        """
        return None
