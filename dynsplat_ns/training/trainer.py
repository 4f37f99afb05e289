"""nerfstudio's Trainer for dynsplat runs, and its config.

Values that depend on other flags are derived here, from the final (parsed or loaded) config, when the trainer is
created, never copied into the method config at import time:

* the optimizer groups of the motion model come from its config (``--pipeline.model.motion.grid-lr`` ...,
  :meth:`MotionModelConfig.optimizer_configs`), and those of a model's own global parameters from the model config's
  optional ``extra_optimizer_configs(max_steps)`` (e.g. the deblur trajectories): they are the only source of those
  groups, so ``--optimizers`` has no entries for them (a config that has one anyway is rejected, naming the flags);
* "auto" (None) step values follow ``--max-num-iterations`` (:mod:`dynsplat_ns.schedules`): the densification stop,
  the static warm-up of the motion model and the horizon of learning-rate decays; explicit values are kept.

``config.yml`` keeps the flags as given (None = auto); the values actually used are printed when training starts and
are in ``trainer.config`` (which nerfstudio also writes to the tensorboard/wandb "config" entry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.checkpoints.files import CheckpointMixin
from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.schedules import DEFAULT_MAX_STEPS, fit_optimizer_groups, static_warmup_steps, stop_split_at
from dynsplat_ns.training import distributed


@dataclass
class DynsplatTrainerConfig(TrainerConfig):
    """nerfstudio's TrainerConfig for dynsplat methods: its step schedules follow ``--max-num-iterations``."""

    _target: type = field(default_factory=lambda: DynsplatTrainer)
    """Trainer class to instantiate."""
    fit_schedules: bool = True
    """Fit the "auto" (None) step values to --max-num-iterations: learning-rate decays end at the last step,
    densification (--pipeline.model.stop-split-at) stops at 75 % of the run and the static warm-up of the motion
    model (--pipeline.model.motion.static-warmup-steps; 4DGS) ends at 15 %. False: they are set for a 20000-step run
    (decays over 20000 steps, densification stops at 15000, warm-up 3000) whatever the run length. Values given
    explicitly are always kept. On the 3000-step demo: 28.1 -> 30.2 dB test PSNR, and faster."""


@dataclass(frozen=True)
class ResolvedSchedules:
    """What :func:`resolve_run_schedules` derived (for the log line)."""

    run_length: int
    """Run length the "auto" values were derived for."""
    auto: dict[str, int]
    """Derived step values by flag name (only those that were "auto")."""
    decay_groups: tuple[str, ...]
    """Optimizer groups whose learning-rate decay horizon was "auto"."""
    motion_groups: dict[str, dict[str, Any]]
    """Optimizer groups built from the motion model's config and the model config's ``extra_optimizer_configs``."""


def resolve_run_schedules(config: TrainerConfig) -> tuple[TrainerConfig, ResolvedSchedules]:
    """A copy of ``config`` with every derived value made concrete (the input is not changed).

    Args:
        config: a dynsplat trainer config, as parsed by tyro or loaded from ``config.yml``.

    Returns:
        The config the run uses (motion optimizer groups added, "auto" values resolved) and what was derived.

    Raises:
        DynsplatConfigError: when ``config.optimizers`` already has a motion group that differs from the one the
            motion flags give (e.g. an old ``config.yml``); the motion flags are the only source of those groups.
    """
    steps = config.max_num_iterations if getattr(config, "fit_schedules", True) else DEFAULT_MAX_STEPS
    model = config.pipeline.model
    motion = getattr(model, "motion", None)
    auto: dict[str, int] = {}
    model_changes: dict[str, Any] = {}
    if getattr(model, "stop_split_at", 0) is None:
        auto["stop_split_at"] = model_changes["stop_split_at"] = stop_split_at(None, steps)
    motion_groups: dict[str, dict[str, Any]] = {}
    if motion is not None:
        if getattr(motion, "static_warmup_steps", 0) is None:
            warmup = auto["motion.static_warmup_steps"] = static_warmup_steps(None, steps)
            model_changes["motion"] = dataclasses.replace(motion, static_warmup_steps=warmup)
        motion_groups = fit_optimizer_groups(motion.optimizer_configs(steps), steps)
    clash = sorted(name for name, group in motion_groups.items() if config.optimizers.get(name, group) != group)
    if clash:
        flags = [f.name.replace("_", "-") for f in dataclasses.fields(motion) if f.name.endswith("_lr")]
        raise DynsplatConfigError(
            f"the config's optimizers has entries for the motion parameter groups {clash}, but those groups are built "
            f"from the motion model's flags ({', '.join('--pipeline.model.motion.' + f for f in flags) or 'none'}); "
            "remove the entries and set the rates with those flags"
        )
    # Groups of the model's own global parameters (e.g. deblur trajectories), from its config's optional hook.
    hook = getattr(model, "extra_optimizer_configs", None)
    model_groups = fit_optimizer_groups(hook(steps), steps) if callable(hook) else {}
    clash = sorted(name for name, group in model_groups.items() if config.optimizers.get(name, group) != group)
    if clash:
        flags = [f.name.replace("_", "-") for f in dataclasses.fields(model) if f.name.endswith("_lr")]
        raise DynsplatConfigError(
            f"the config's optimizers has entries for the model parameter groups {clash}, but those groups are built "
            f"from the model's flags ({', '.join('--pipeline.model.' + f for f in flags) or 'none'}); "
            "remove the entries and set the rates with those flags"
        )
    decay_groups = tuple(
        name
        for name, group in config.optimizers.items()
        if group.get("scheduler") is not None and getattr(group["scheduler"], "max_steps", 0) is None
    )
    motion_groups = {**motion_groups, **model_groups}
    optimizers = {**fit_optimizer_groups(config.optimizers, steps), **motion_groups}
    pipeline = config.pipeline
    if model_changes:
        pipeline = dataclasses.replace(pipeline, model=dataclasses.replace(model, **model_changes))
    resolved = dataclasses.replace(config, optimizers=optimizers, pipeline=pipeline)
    return resolved, ResolvedSchedules(steps, auto, decay_groups, motion_groups)


def describe(info: ResolvedSchedules) -> str:
    """One line for the log: the values derived for this run."""
    parts = [f"{name} {value}" for name, value in info.auto.items()]
    if info.decay_groups:
        parts.append(f"learning-rate decay over {info.run_length} steps ({', '.join(info.decay_groups)})")
    for name, group in info.motion_groups.items():
        lr, scheduler = group["optimizer"].lr, group.get("scheduler")
        final = getattr(scheduler, "lr_final", None)
        horizon = getattr(scheduler, "max_steps", None)
        decay = f" -> {final:g}" + (f" over {horizon} steps" if horizon else "") if final is not None else ""
        parts.append(f"{name} lr {lr:g}{decay}")
    return f"dynsplat schedules for {info.run_length} steps: " + "; ".join(parts)


class DynsplatTrainer(CheckpointMixin, Trainer):
    """Trainer of every dynsplat method: nerfstudio's, on the config with its derived values resolved.

    Args:
        config: the run's config (as parsed or loaded; "auto" values may be None).
        local_rank: local rank of the process.
        world_size: world size of the process.
    """

    config: DynsplatTrainerConfig

    def __init__(self, config: TrainerConfig, local_rank: int = 0, world_size: int = 1) -> None:
        resolved, info = resolve_run_schedules(config)
        super().__init__(resolved, local_rank=local_rank, world_size=world_size)
        if distributed.active() and self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)  # NCCL collectives run on this rank's device
        if distributed.rank() == 0:
            CONSOLE.print(describe(info))

    # ---- several ranks (dynsplat_ns.training.distributed; all no-ops with one process) -------------------------------
    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        """nerfstudio's setup; with several ranks, then rank 0's model on every rank and files written by rank 0 only
        (the model densifies in lock-step: the pipeline builds it with ``ranks``, see models/strategies.py)."""
        super().setup(test_mode=test_mode)
        distributed.broadcast_model(self.pipeline.model)
        outputs = getattr(self.pipeline.datamanager, "train_dataparser_outputs", None)
        if distributed.rank() != 0 and outputs is not None:
            outputs.save_dataparser_transform = lambda path: None  # rank 0 writes dataparser_transforms.json

    def setup_optimizers(self) -> Optimizers:
        """nerfstudio's optimizers; with several ranks they average the gradients across ranks before each step."""
        if not distributed.active():
            return super().setup_optimizers()
        return distributed.RankAveragedOptimizers(self.config.optimizers.copy(), self.pipeline.get_param_groups())

    def eval_iteration(self, step: int) -> None:
        """nerfstudio's evaluation, on rank 0 only (it alone logs; the others go on training)."""
        if distributed.rank() == 0:
            super().eval_iteration(step)
