"""The densification strategy of a run, chosen once where the model is built, from what the run needs.

* one view per training step, one rank: gsplat's ``DefaultStrategy``;
* several views per step (``--pipeline.datamanager.cameras-per-step K``): :class:`ViewMaxStrategy`, whose
  screen-size statistic is the maximum over the step's views;
* several ranks (torchrun): :class:`RankSyncedStrategy`, which merges the statistics across ranks before each refine
  and splits with rank 0's random state, so every rank densifies identically; with it, the near-camera pruner sees the
  cameras of every rank (:class:`RankSyncedNearCameraPruner`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.distributed as dist
from gsplat.strategy import DefaultStrategy
from torch import Tensor

from dynsplat_ns.models.near_camera import NearCameraPruner


def distributed_active() -> bool:
    """Whether torch.distributed is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclasses.dataclass
class ViewMaxStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy whose per-Gaussian screen-size statistic (``radii``) is the maximum over all views of
    a step. gsplat 1.4.0 writes it with an indexed assignment, so of several views in one meta that see a Gaussian the
    last one wins ("should be ideally using scatter max", its comment); with one view per step both agree exactly."""

    def _update_state(self, params, state, info, packed: bool = False) -> None:
        track_radii = self.refine_scale2d_stop_iter > 0
        before = state.get("radii") if track_radii else None
        before = None if before is None else before.clone()
        super()._update_state(params, state, info, packed=packed)
        if not track_radii:
            return
        with torch.no_grad():
            if packed:
                ids, radii = info["gaussian_ids"], info["radii"]
            else:
                visible = info["radii"] > 0.0
                ids, radii = torch.where(visible)[1], info["radii"][visible]
            radii = radii / float(max(info["width"], info["height"]))
            base = torch.zeros_like(state["radii"]) if before is None else before
            state["radii"] = base.scatter_reduce(0, ids, radii.to(base.dtype), reduce="amax", include_self=True)

    @classmethod
    def from_strategy(cls, strategy: DefaultStrategy) -> ViewMaxStrategy:
        """A strategy of this class with ``strategy``'s settings."""
        return cls(**{f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy) if f.init})


def rng_state(device: torch.device) -> Tensor:
    """The random state of ``device``'s generator (CPU or CUDA)."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def set_rng_state(state: Tensor, device: torch.device) -> None:
    """Restores ``device``'s generator to ``state``."""
    if device.type == "cuda":
        torch.cuda.set_rng_state(state.cpu(), device)
    else:
        torch.set_rng_state(state.cpu())


@torch.no_grad()
def merge_strategy_state(state: dict[str, Any]) -> None:
    """Sums ``grad2d`` and ``count`` and takes the maximum of ``radii`` over the ranks, in place (what one rank that
    had rendered every rank's cameras would hold)."""
    if not distributed_active():
        return
    for key, op in (("grad2d", dist.ReduceOp.SUM), ("count", dist.ReduceOp.SUM), ("radii", dist.ReduceOp.MAX)):
        value = state.get(key)
        if isinstance(value, Tensor):
            dist.all_reduce(value, op=op)


@dataclasses.dataclass
class RankSyncedStrategy(ViewMaxStrategy):
    """gsplat's DefaultStrategy that refines identically on every rank: before each refine the statistics are merged
    across ranks (:func:`merge_strategy_state`) and the splits draw from rank 0's random state (rank 0 then continues
    as a single process would; the others return to their own state)."""

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step):
        if not distributed_active():
            return super()._grow_gs(params, optimizers, state, step)
        merge_strategy_state(state)
        device = params["means"].device
        own = rng_state(device)
        shared = own.to(device) if device.type == "cuda" else own.clone()
        dist.broadcast(shared, src=0)
        set_rng_state(shared, device)
        try:
            return super()._grow_gs(params, optimizers, state, step)
        finally:
            if dist.get_rank() != 0:
                set_rng_state(own, device)


class RankSyncedNearCameraPruner(NearCameraPruner):
    """NearCameraPruner whose refine-step decision uses the camera centres every rank has rendered."""

    def drop_mask(self, means: Tensor, step: int, strategy) -> Tensor | None:
        refining = strategy.refine_start_iter < step < strategy.refine_stop_iter and step % strategy.refine_every == 0
        if distributed_active() and self.factor > 0 and refining:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, {k: v.tolist() for k, v in self.centres.items()})
            for centres in gathered:
                for key, centre in centres.items():
                    self.centres.setdefault(key, torch.tensor(centre))
        return super().drop_mask(means, step, strategy)


def build_strategy(strategy: DefaultStrategy, views_per_step: int = 1, ranks: int = 1) -> DefaultStrategy:
    """The strategy class the run needs, with ``strategy``'s settings (``strategy`` itself when it is the plain one).

    Args:
        strategy: gsplat's ``DefaultStrategy`` with the model's densification settings.
        views_per_step: Training views rendered per step (``--pipeline.datamanager.cameras-per-step``).
        ranks: Processes training together (torch.distributed world size).
    """
    if ranks > 1:
        return RankSyncedStrategy.from_strategy(strategy)
    if views_per_step > 1:
        return ViewMaxStrategy.from_strategy(strategy)
    return strategy


def build_near_camera_pruner(factor: float, ranks: int = 1) -> NearCameraPruner:
    """The near-camera pruner of a run of ``ranks`` processes (see :class:`RankSyncedNearCameraPruner`)."""
    return RankSyncedNearCameraPruner(factor) if ranks > 1 else NearCameraPruner(factor)
