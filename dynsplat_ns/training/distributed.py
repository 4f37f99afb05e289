"""Data-parallel training on torch.distributed without DDP (gloo on CPU, NCCL on CUDA).

Every rank holds all Gaussians and renders its own cameras (:mod:`dynsplat_ns.training.camera_batches`). The model is
never
wrapped in ``DistributedDataParallel``: densification replaces the Gaussian parameters, which a DDP wrapper would keep
stale references to. Instead:

* :func:`broadcast_model` copies rank 0's parameters and buffers to every rank once, after setup;
* :class:`RankAveragedOptimizers` averages the gradient of every optimised parameter (Gaussians, motion, camera
  optimizer, per-image tables) across ranks right before each optimizer step;
* the model, built with ``ranks`` > 1 by the pipeline, densifies with
  :class:`~dynsplat_ns.models.strategies.RankSyncedStrategy` (statistics summed across ranks before each refine,
  splits with rank 0's random state) and prunes near the union of the cameras every rank has rendered
  (:class:`~dynsplat_ns.models.strategies.RankSyncedNearCameraPruner`).

All of it is a no-op with one process (nothing initialised, or a world of 1). Only rank 0 writes checkpoints, logs, the
viewer and evaluation output (nerfstudio's ``check_main_thread`` reads the rank from torch.distributed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from nerfstudio.engine.optimizers import Optimizers
from torch import Tensor

from dynsplat_ns.models.strategies import distributed_active

#: Environment that torchrun (and ``srun`` with these exported) sets for each process.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


#: Whether torch.distributed is initialised with more than one rank (the strategies' own test, one definition).
active = distributed_active


def rank() -> int:
    """Global rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@dataclasses.dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a torchrun / SLURM launch."""

    rank: int
    """Global rank (``RANK``)."""
    local_rank: int
    """Rank on this node (``LOCAL_RANK``): the CUDA device index."""
    world_size: int
    """All ranks (``WORLD_SIZE``)."""
    local_world_size: int
    """Ranks on this node (``LOCAL_WORLD_SIZE``; ``WORLD_SIZE`` when unset)."""


def launch_env(environ: dict[str, str] | None = None) -> LaunchEnv:
    """The launch described by torchrun's environment; one process (rank 0 of 1) when ``WORLD_SIZE`` is unset."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    return LaunchEnv(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
    )


def init_process_group(device_type: str, env: LaunchEnv, timeout: timedelta = timedelta(minutes=30)) -> None:
    """``init_process_group`` from torchrun's environment (``env://``: ``MASTER_ADDR``/``MASTER_PORT``): NCCL for
    CUDA, gloo otherwise; also nerfstudio's per-node group (``comms.LOCAL_PROCESS_GROUP``), as its launcher makes it.
    """
    from nerfstudio.utils import comms

    if device_type == "cuda":
        torch.cuda.set_device(env.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                            timeout=timeout)  # fmt: skip
    per_node = max(env.local_world_size, 1)
    for node in range(max(env.world_size // per_node, 1)):  # every rank creates every group, in the same order
        group = dist.new_group(list(range(node * per_node, min((node + 1) * per_node, env.world_size))))
        if node == env.rank // per_node:
            comms.LOCAL_PROCESS_GROUP = group



def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` of rank ``src`` on every rank (the value itself without torch.distributed)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_model(module: torch.nn.Module) -> None:
    """Copies rank 0's parameters and buffers into every rank's ``module`` (same names and shapes required)."""
    if not active():
        return
    tensors = list(module.state_dict(keep_vars=True).items())
    shapes = [(name, tuple(t.shape)) for name, t in tensors]
    reference = broadcast_object(shapes)
    if reference != shapes:
        diff = sorted(set(shapes) ^ set(reference))[:5]
        raise RuntimeError(f"rank {rank()} holds other tensors than rank 0 after setup (first differences: {diff})")
    for _, tensor in tensors:
        data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
        if data.numel():
            dist.broadcast(data, src=0)


@torch.no_grad()
def average_gradients(params: Iterable[Tensor]) -> None:
    """Replaces each parameter's ``.grad`` by its mean over the ranks, one all-reduce per device and dtype.

    A parameter without a gradient on some ranks counts as zero there; it gets the mean when any rank has one, and
    stays without a gradient when none has (so optimizers skip it on every rank alike).
    """
    if not active():
        return
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for p in dict.fromkeys(params):  # unique, in order (the same order on every rank)
        buckets.setdefault((p.device, p.dtype), []).append(p)
    world = world_size()
    for (device, dtype), group in buckets.items():
        flat = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device, dtype=dtype)
                for p in group]  # fmt: skip
        flags = torch.tensor([p.grad is not None for p in group], device=device, dtype=dtype)
        buffer = torch.cat([*flat, flags])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        offset = 0
        for p, present in zip(group, buffer[-len(group) :].tolist(), strict=True):
            n = p.numel()
            if present > 0:
                mean = buffer[offset : offset + n].view_as(p) / world
                if p.grad is None:
                    p.grad = mean.clone()
                else:
                    p.grad.copy_(mean)
            offset += n


class RankAveragedOptimizers(Optimizers):
    """nerfstudio's Optimizers whose steps first average the stepped groups' gradients across ranks (the groups'
    current parameters, which densification replaces: read from each optimizer's ``param_groups``)."""

    def _average(self, groups: Iterable[str]) -> None:
        average_gradients(p for name in groups for g in self.optimizers[name].param_groups for p in g["params"])

    def optimizer_step(self, param_group_name: str) -> None:
        self._average([param_group_name])
        super().optimizer_step(param_group_name)

    def optimizer_scaler_step_all(self, grad_scaler) -> None:
        self._average(self.optimizers)
        super().optimizer_scaler_step_all(grad_scaler)

    def optimizer_scaler_step_some(self, grad_scaler, param_groups: list[str]) -> None:
        self._average(param_groups)
        super().optimizer_scaler_step_some(grad_scaler, param_groups)

    def optimizer_step_all(self) -> None:
        self._average(self.optimizers)
        super().optimizer_step_all()
