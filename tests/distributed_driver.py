"""Runs ``dynsplat_ns.training.train`` (one torchrun rank) and records what each step left in the model, for the
distributed
tests: ``torchrun ... tests/distributed_driver.py RECORD_DIR <ns-train arguments>``.

After every step (after densification) the rank stores its model's parameters and Gaussian count; at the end it saves
them to ``RECORD_DIR/rank{r}.pt`` as ``{"steps": [...], "counts": [...], "params": [{name: tensor}, ...],
"refines": n, "cameras": [[image indices of each step]], "strategy": class name}``. Everything else is the real
``dynsplat-train`` path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from rank_recording import record_training

from dynsplat_ns.training.train import run_ranks
from dynsplat_ns.training.trainer import DynsplatTrainer


def main() -> None:
    record_dir, args = Path(sys.argv[1]), sys.argv[2:]
    record: dict = {"strategy": None}  # the rest: rank_recording.record_training
    original_setup = DynsplatTrainer.setup

    def setup(self, test_mode="val"):
        original_setup(self, test_mode=test_mode)
        record["strategy"] = type(self.pipeline.model.strategy).__name__
        record_training(self, record, record_dir)

    DynsplatTrainer.setup = setup
    run_ranks(tyro.cli(AnnotatedBaseConfigUnion, args=args))


if __name__ == "__main__":
    main()
