"""Runs ``dynsplat_ns.train`` (one torchrun rank) and records what each step left in the model, for the distributed
tests: ``torchrun ... tests/distributed_driver.py RECORD_DIR <ns-train arguments>``.

After every step (after densification) the rank stores its model's parameters and Gaussian count; at the end it saves
them to ``RECORD_DIR/rank{r}.pt`` as ``{"steps": [...], "counts": [...], "params": [{name: tensor}, ...],
"refines": n, "cameras": [[image indices of each step]], "strategy": class name}``. Everything else is the real
``dynsplat-train`` path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

from dynsplat_ns import distributed
from dynsplat_ns.train import run_ranks
from dynsplat_ns.trainer import DynsplatTrainer


def main() -> None:
    record_dir, args = Path(sys.argv[1]), sys.argv[2:]
    record: dict = {"steps": [], "counts": [], "params": [], "refines": 0, "strategy": None, "cameras": []}
    original_setup = DynsplatTrainer.setup

    def setup(self, test_mode="val"):
        original_setup(self, test_mode=test_mode)
        model = self.pipeline.model
        record["strategy"] = type(model.strategy).__name__
        grow = model.strategy._grow_gs

        def counting_grow(*a, **kw):
            record["refines"] += 1
            return grow(*a, **kw)

        model.strategy._grow_gs = counting_grow
        datamanager = self.pipeline.datamanager
        indices = datamanager.next_train_indices

        def recording_indices():
            record["cameras"].append(indices())
            return record["cameras"][-1]

        datamanager.next_train_indices = recording_indices

        def snapshot(step: int) -> None:
            record["steps"].append(step)
            record["counts"].append(int(model.num_points))
            record["params"].append({n: p.detach().clone() for n, p in model.named_parameters()})

        def save() -> None:
            record_dir.mkdir(parents=True, exist_ok=True)
            torch.save(record, record_dir / f"rank{distributed.rank()}.pt")

        self.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], snapshot))
        self.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], lambda step: save()))

    DynsplatTrainer.setup = setup
    run_ranks(tyro.cli(AnnotatedBaseConfigUnion, args=args))


if __name__ == "__main__":
    main()
