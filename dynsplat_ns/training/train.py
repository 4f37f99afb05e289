"""``ns-train`` for torchrun and SLURM: ``torchrun --nproc-per-node N -m dynsplat_ns.training.train dynsplat-som ...``.

Takes exactly the arguments of ``ns-train`` (nerfstudio's own tyro CLI over every method, plugins included) and runs
one data-parallel rank per process from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``): gloo on CPU, NCCL on CUDA (``--machine.device-type``), one
CUDA device per local rank. See :mod:`dynsplat_ns.training.distributed` for what the ranks share. Without torchrun's
environment it is ``ns-train`` (and then honours ``--machine.num-devices``). Also installed as ``dynsplat-train``.
"""

from __future__ import annotations

import os
import sys

#: Launch variables that mark a torchrun (or ``srun`` exporting them) process.
_LAUNCH_MARKERS = ("RANK", "WORLD_SIZE")


def _prepare(config):
    """What nerfstudio's ``scripts.train.main`` does to the parsed config before launching."""
    import yaml
    from nerfstudio.utils.rich_utils import CONSOLE

    if config.data:
        CONSOLE.log("Using --data alias for --data.pipeline.datamanager.data")
        config.pipeline.datamanager.data = config.data
    if config.prompt:
        CONSOLE.log("Using --prompt alias for --data.pipeline.model.prompt")
        config.pipeline.model.prompt = config.prompt
    if config.load_config:
        CONSOLE.log(f"Loading pre-set config from: {config.load_config}")
        config = yaml.load(config.load_config.read_text(), Loader=yaml.Loader)
    return config


def run_ranks(config) -> None:
    """Trains ``config`` as this process's rank of a torchrun launch (torch.distributed set up and torn down here).

    Args:
        config: a parsed ``ns-train`` config (``TrainerConfig``).
    """
    import torch.distributed as dist
    from nerfstudio.scripts.train import train_loop
    from nerfstudio.utils import profiler
    from nerfstudio.utils.rich_utils import CONSOLE

    from dynsplat_ns.training import distributed

    env = distributed.launch_env()
    config = _prepare(config)
    device_type = config.machine.device_type
    if device_type == "mps":
        raise SystemExit("dynsplat-train: torch.distributed needs --machine.device-type cpu or cuda")
    if config.machine.num_devices != 1 or config.machine.num_machines != 1:
        CONSOLE.print("dynsplat-train: --machine.num-devices/num-machines are ignored; torchrun sets the ranks")
    distributed.init_process_group(device_type, env)
    try:
        if env.rank == 0:
            config.set_timestamp()
        config.timestamp = distributed.broadcast_object(config.timestamp)  # one output folder for every rank
        if env.rank == 0:
            config.print_to_terminal()
            config.save_config()
        if distributed.active():
            dist.barrier()  # config.yml exists before any rank reads or writes the run folder
        try:
            train_loop(env.local_rank, env.world_size, config, global_rank=env.rank)
        finally:
            profiler.flush_profiler(config.logging)
    finally:
        dist.destroy_process_group()


def entrypoint() -> None:
    """Console script ``dynsplat-train`` and ``python -m dynsplat_ns.training.train``: ``ns-train``'s arguments."""
    import tyro
    from nerfstudio.configs.config_utils import convert_markup_to_ansi
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
    from nerfstudio.scripts import train as ns_train

    tyro.extras.set_accent_color("bright_yellow")
    config = tyro.cli(AnnotatedBaseConfigUnion, description=convert_markup_to_ansi(ns_train.__doc__ or ""))
    if not all(name in os.environ for name in _LAUNCH_MARKERS):
        ns_train.main(config)  # not under torchrun: exactly ns-train
        return
    run_ranks(config)


if __name__ == "__main__":
    sys.exit(entrypoint())
