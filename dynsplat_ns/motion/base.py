"""The one interface every motion model implements.

A motion model maps the canonical Gaussians to their state at time ``t`` ∈ [0, 1]. It owns two kinds of parameters:

* per-Gaussian ones (leading dim N), returned by :meth:`MotionModel.per_gaussian_params` and stored by the model in
  its Gaussian parameter dict, so gsplat's densification strategy splits/duplicates/prunes them in lock-step;
* global ones (bases, planes, MLPs): ordinary sub-modules, exposed through :meth:`MotionModel.param_groups`.

Every model starts as the identity (zero-initialised heads/offsets), so a dynamic model starts equal to the static one.

A model evaluates one time (``forward(gaussians, 0.5)`` → one state dict) or a batch of times (``forward(gaussians,
ts)`` with ``ts`` a 1-D tensor or a sequence → one state dict per time, sharing per-Gaussian work where the model can,
see :meth:`MotionModel.deform_batch`). While training, the states of the latest call are kept, so a regulariser at a
rendered time reuses them (:meth:`MotionModel.state_at`) instead of computing the deformation again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import torch
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from dynsplat_ns.motion.static_gaussians import split_motion
from dynsplat_ns.schedules import static_warmup_steps

# Keys a motion model may change; anything else in the Gaussian dict is passed through untouched.
MOVABLE_KEYS = ("means", "scales", "quats", "opacities")
#: One time (a float or a 0-d tensor) or a batch of times (a 1-D tensor or a sequence of floats), each in [0, 1].
Times = Union[float, Tensor, Sequence[float]]


def is_time_batch(t: Times) -> bool:
    """Whether ``t`` is a batch of times (a 1-D tensor or a sequence) rather than one time."""
    if isinstance(t, Tensor):
        if t.dim() > 1:
            raise ValueError(f"times must be a scalar or a 1-D tensor, got shape {tuple(t.shape)}")
        return t.dim() == 1
    return isinstance(t, Sequence)


def time_list(ts: Tensor | Sequence[float]) -> list[float]:
    """A batch of times as Python floats."""
    return [float(x) for x in (ts.detach().reshape(-1).tolist() if isinstance(ts, Tensor) else ts)]


@dataclass
class MotionModelConfig(InstantiateConfig):
    """Base config of a motion model."""

    _target: type = field(default_factory=lambda: MotionModel)
    """Motion model class to instantiate."""
    #: Its name in ``--pipeline.model.motion NAME`` (None: derived from the class name, see motion/choice.py).
    choice_name: ClassVar[str | None] = None
    static_warmup_steps: int | None = 0
    """Training steps during which the model stays the identity (static warm-up), as 4DGS's coarse stage; None
    ("auto"): 15 % of the run (--max-num-iterations)."""

    def optimizer_configs(self, max_steps: int) -> dict[str, dict[str, Any]]:
        """nerfstudio optimizer entries for this model's parameter groups (per-Gaussian and global), built from this
        config's rate fields (e.g. ``grid_lr``).

        The dynsplat trainer adds them to the run's optimizers when training starts; they are the only source of these
        groups (``--optimizers`` has no entries for them).

        Args:
            max_steps: training length, used by the schedulers.
        """
        return {}


class MotionModel(nn.Module):
    """Base motion model: the identity.

    Args:
        config: its config.
        num_frames: number of distinct training times T (for models with per-frame parameters).
        aabb: [2, 3] box that holds the scene (for models with spatial grids).
    """

    config: MotionModelConfig
    #: True for models with per-frame parameters: they need a dataset with at least two distinct times.
    needs_frames: bool = False

    def __init__(self, config: MotionModelConfig, num_frames: int = 1, aabb: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_frames = max(int(num_frames), 1)
        if aabb is None:
            aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
        self.register_buffer("aabb", aabb.detach().float().clone())
        self.step = 0
        # States of the latest training-mode forward: (fingerprint of its inputs, {time: state}); see state_at().
        self._rendered: tuple[tuple, dict[float, dict[str, Tensor]]] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def set_step(self, step: int) -> None:
        """Called before every training iteration with the global step."""
        self.step = int(step)

    @property
    def active(self) -> bool:
        """False during the static warm-up: the model then returns the canonical Gaussians."""
        return self.step >= static_warmup_steps(self.config.static_warmup_steps)

    # ---- parameters ------------------------------------------------------------------------------------------
    def per_gaussian_params(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Initial per-Gaussian motion parameters (leading dim N), given the initial canonical Gaussians."""
        return {}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Global parameters by optimizer-group name."""
        return {}

    def max_gaussians(self) -> int | None:
        """Most Gaussians this model's per-Gaussian parameters may hold (a memory cap), or None for no cap."""
        return None

    # ---- checkpoint layout (resume / fine-tune on other images or frames) -----------------------------------------
    def per_frame_state_keys(self) -> dict[str, int | tuple[int, ...]]:
        """This model's tensors with an axis indexed by the training frame, and that axis (or axes).

        Names are keys of :meth:`per_gaussian_params` (axes counted with the leading Gaussian axis) or of this
        module's own ``state_dict()``. When a checkpoint is loaded for a different number of frames, these axes are
        resampled linearly in time (entry k of L at t = k / (L - 1)); any other shape change is an error. E.g.
        ``{"marble_offsets": 1}`` for offsets [N, T, 3]. Tables over continuous time (e.g. HexPlane's time planes,
        sized by a config value) are not per-frame.
        """
        return {}

    def per_image_state_keys(self) -> dict[str, int]:
        """This model's tensors with an axis indexed by the training image (e.g. per-image appearance codes), and
        that axis; named as in :meth:`per_frame_state_keys`. On a resume their rows are matched by image name; rows of
        images the checkpoint lacks keep their initialisation."""
        return {}

    # ---- evaluation ------------------------------------------------------------------------------------------
    def forward(self, gaussians: Mapping[str, Tensor], t: Times) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Gaussians at time ``t``, or at each time of a batch.

        Args:
            gaussians: raw parameters (means [N,3], scales [N,3] log, quats [N,4], opacities [N,1] logit, ...) plus
                this model's per-Gaussian parameters.
            t: a time in [0, 1] (float or 0-d tensor), or a batch of B times (1-D tensor [B] or a sequence).

        Returns:
            For one time, a dict with the raw ``means``, ``scales``, ``quats``, ``opacities`` at ``t`` (canonical while
            inactive); for a batch, a list of B such dicts in the order of ``t``.
        """
        if is_time_batch(t):
            ts = time_list(t)
            if self.active:
                states = self._deform_times(gaussians, ts, batch=True)
            else:
                canonical = self.canonical(gaussians)
                states = [canonical] * len(ts)
        else:
            ts = [float(t)]
            states = self._deform_times(gaussians, [t], batch=False) if self.active else [self.canonical(gaussians)]
        if self.training and torch.is_grad_enabled():
            self._rendered = (self._fingerprint(gaussians), dict(zip(ts, states, strict=True)))
        else:
            self._rendered = None
        return states if is_time_batch(t) else states[0]

    def canonical(self, gaussians: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The Gaussians without motion (models with a constrained representation, e.g. isotropic, apply it here)."""
        return {k: gaussians[k] for k in MOVABLE_KEYS}

    def deform(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        """The model's motion; subclasses override this (the base class is the identity)."""
        return self.canonical(gaussians)

    def deform_batch(self, gaussians: Mapping[str, Tensor], ts: list[float]) -> list[dict[str, Tensor]]:
        """The motion at each of ``ts``; equal to ``[deform(gaussians, t) for t in ts]``, which is the default.

        Models override this to share work across times (per-Gaussian parts computed once, one batched network
        call); the result must match the per-time :meth:`deform` up to floating-point rounding.
        """
        return [self.deform(gaussians, t) for t in ts]

    def state_at(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        """The deformed Gaussians at ``t`` for a regulariser: the state the latest training-mode :meth:`forward`
        computed for the render when it covered ``t`` and neither ``gaussians`` nor this model's parameters have
        changed since (checked by tensor identity and in-place version), else :meth:`deform` computed afresh."""
        if self._rendered is not None:
            fingerprint, states = self._rendered
            if float(t) in states and self._same_inputs(fingerprint, self._fingerprint(gaussians)):
                return states[float(t)]
        return self._deform_times(gaussians, [t], batch=False)[0]

    def _deform_times(self, gaussians: Mapping[str, Tensor], ts: list, batch: bool) -> list[dict[str, Tensor]]:
        """The motion at each of ``ts`` (:meth:`deform_batch`, or :meth:`deform` of ``ts[0]`` if not ``batch``);
        Gaussians flagged static stay canonical and skip the motion (:mod:`dynsplat_ns.motion.static_gaussians`)."""

        def deform(g: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
            return self.deform_batch(g, ts) if batch else [self.deform(g, ts[0])]

        split = split_motion(gaussians, deform, self.canonical)
        return deform(gaussians) if split is None else split

    def _fingerprint(self, gaussians: Mapping[str, Tensor]) -> tuple:
        """The inputs of the motion (Gaussians and own parameters) with their in-place versions; holding the tensors
        keeps their identity unique while the fingerprint lives."""
        tensors = (*gaussians.values(), *self.parameters())
        return tensors, tuple(x._version for x in tensors)

    @staticmethod
    def _same_inputs(a: tuple, b: tuple) -> bool:
        """Whether two fingerprints name the very same tensors at the same versions."""
        return a[1] == b[1] and len(a[0]) == len(b[0]) and all(x is y for x, y in zip(a[0], b[0], strict=True))

    def regularization(self, gaussians: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        """Weighted regulariser losses for the training step at time ``t`` (empty while inactive).

        Terms that need the Gaussians at ``t`` read them with :meth:`state_at`, which reuses the render's state.
        """
        return {}
