"""Building a trainer from ``ns-train`` flags up to its first step, for the flag tests (tests/test_cli_flags.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from cli_helpers import parse
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.utils import writer


@dataclasses.dataclass
class Built:
    """A trainer set up from the command line, after one training iteration."""

    config: Any
    trainer: Any
    loss_dict: dict
    initial: dict[str, torch.Tensor]
    """The Gaussian parameters after setup, before the training step."""

    @property
    def model(self):
        return self.trainer.pipeline.model

    @property
    def strategy(self):
        return self.model.strategy

    def group(self, name: str) -> dict:
        """The torch param group of an optimizer group (flag or Python spelling)."""
        return self.trainer.optimizers.optimizers[name.replace("-", "_")].param_groups[0]

    def used_optimizer(self, name: str) -> Any:
        """The optimizer config nerfstudio's Optimizers steps the group with (it reads max_norm from there)."""
        return self.trainer.optimizers.config[name.replace("-", "_")]["optimizer"]

    def lr_at(self, name: str, step: int) -> float:
        """The learning rate the group's scheduler gives at ``step``."""
        pg = self.group(name)
        return pg["initial_lr"] * self.trainer.optimizers.schedulers[name].lr_lambdas[0](step)

    def train_outputs(self) -> dict:
        """Outputs of one training render (model in train mode, motion active)."""
        camera, _ = self.trainer.pipeline.datamanager.next_train(1)
        self.model.train()
        return self.model.get_outputs(camera.to(self.model.device))


def clear_writers() -> None:
    """Closes and forgets nerfstudio's global event writers (as tests/conftest.py's TRAIN_DRIVER does)."""
    for event_writer in writer.EVENT_WRITERS:
        if hasattr(event_writer, "tb_writer"):
            event_writer.tb_writer.close()
    writer.EVENT_WRITERS.clear()
    writer.EVENT_STORAGE.clear()
    writer.GLOBAL_BUFFER.clear()


def build(args: list[str], scene: Path, tmp: Path, parser_data: Path | None = None) -> Built:
    """``ns-train ARGS dynsplat-dnerf --data SCENE`` up to (and including) its first training step."""
    clear_writers()
    args = [a.format(scene=scene) for a in args]
    config = parse(*args, "--output-dir", str(tmp), "--machine.device-type", "cpu", "--vis", "tensorboard",
                   "dynsplat-dnerf", "--data", str(parser_data or scene))  # fmt: skip
    config.set_timestamp()
    torch.manual_seed(0)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    initial = {k: v.detach().clone() for k, v in trainer.pipeline.model.gauss_params.items()}
    for cb in trainer.callbacks:  # step 0, as Trainer.train() runs it
        cb.run_callback_at_location(0, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    _, loss_dict, _ = trainer.train_iteration(0)
    for cb in trainer.callbacks:
        cb.run_callback_at_location(0, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    return Built(config, trainer, {k: float(v) for k, v in loss_dict.items()}, initial)
