"""Step schedules that follow the run length ("auto" values are None until the trainer knows the run length).

A dynsplat config keeps every value that is derived from the run length as ``None`` ("auto"): the densification stop
(``--pipeline.model.stop-split-at``), the static warm-up of a motion model
(``--pipeline.model.motion.static-warmup-steps``) and the horizon of learning-rate decays
(``--optimizers.<group>.scheduler.max-steps``). :class:`dynsplat_ns.training.trainer.DynsplatTrainer` replaces them with
concrete numbers for ``--max-num-iterations`` when a run starts (and logs them); a value given explicitly is kept as
it is. A model built outside the trainer (tests, ``ns-eval``) resolves them for :data:`DEFAULT_MAX_STEPS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

#: Run length the dynsplat defaults were written for (also the methods' default ``--max-num-iterations``).
DEFAULT_MAX_STEPS = 20000
#: Densification stops at this fraction of the run (splatfacto's 15000 of 20000).
STOP_SPLIT_FRACTION = 0.75
#: The static warm-up of a motion model whose warm-up is "auto" lasts this fraction of the run (4DGS: 3000 of 20000).
STATIC_WARMUP_FRACTION = 0.15


def decaying_adam(lr: float, final_fraction: float, max_steps: int) -> dict[str, Any]:
    """One nerfstudio optimizer entry: Adam (eps 1e-15) at ``lr``, decaying exponentially to ``final_fraction · lr``
    over ``max_steps`` (the motion models' and blur components' groups)."""
    return {
        "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
        "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr * final_fraction, max_steps=max_steps),
    }


@dataclass
class RunLengthExponentialDecaySchedulerConfig(ExponentialDecaySchedulerConfig):
    """nerfstudio's exponential decay whose horizon is, by default, the whole run."""

    max_steps: int | None = None  # type: ignore[assignment]
    """Steps over which the rate decays from its initial value to lr_final; None ("auto"): --max-num-iterations."""


def stop_split_at(value: int | None, run_length: int = DEFAULT_MAX_STEPS) -> int:
    """The densification stop: ``value``, or :data:`STOP_SPLIT_FRACTION` of ``run_length`` when it is None."""
    return int(value) if value is not None else max(1, round(run_length * STOP_SPLIT_FRACTION))


def static_warmup_steps(value: int | None, run_length: int = DEFAULT_MAX_STEPS) -> int:
    """The static warm-up: ``value``, or :data:`STATIC_WARMUP_FRACTION` of ``run_length`` when it is None."""
    return int(value) if value is not None else round(run_length * STATIC_WARMUP_FRACTION)


def fit_optimizer_groups(groups: dict[str, dict[str, Any]], run_length: int) -> dict[str, dict[str, Any]]:
    """A copy of nerfstudio optimizer groups whose "auto" scheduler horizons (``max_steps`` None) are ``run_length``.

    Args:
        groups: ``{name: {"optimizer": ..., "scheduler": ... or None}}`` (``TrainerConfig.optimizers`` shape).
        run_length: training steps of the run.
    """
    out = {}
    for name, group in groups.items():
        scheduler = group.get("scheduler")
        if scheduler is not None and dataclasses.is_dataclass(scheduler) and getattr(scheduler, "max_steps", 0) is None:
            group = {**group, "scheduler": dataclasses.replace(scheduler, max_steps=run_length)}
        out[name] = group
    return out
