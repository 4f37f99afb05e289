"""Per-rank training recorder shared by the distributed tests (``tests/distributed_driver.py`` under torchrun and
``tests/ns_train_shim/sitecustomize.py`` under ``ns-train --machine.num-devices``).

:func:`record_training` hooks a set-up :class:`~dynsplat_ns.training.trainer.DynsplatTrainer`: every refinement is
counted,
every step's camera indices, Gaussian count and parameters (after densification) are appended to ``record``, and at
the end of training ``record`` is saved to ``RECORD_DIR/rank{r}.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

from dynsplat_ns.training import distributed


def record_training(trainer: Any, record: dict[str, Any], record_dir: Path) -> None:
    """Fill ``record`` (keys ``steps``, ``counts``, ``params``, ``refines``, ``cameras``) while ``trainer`` trains."""
    model = trainer.pipeline.model
    for key in ("steps", "counts", "params", "cameras"):
        record.setdefault(key, [])
    record.setdefault("refines", 0)
    grow = model.strategy._grow_gs

    def counting_grow(*args, **kwargs):
        record["refines"] += 1
        return grow(*args, **kwargs)

    model.strategy._grow_gs = counting_grow
    datamanager = trainer.pipeline.datamanager
    indices = datamanager.next_train_indices

    def recording_indices():
        record["cameras"].append(indices())
        return record["cameras"][-1]

    datamanager.next_train_indices = recording_indices

    def snapshot(step: int) -> None:
        record["steps"].append(step)
        record["counts"].append(int(model.num_points))
        record["params"].append({n: p.detach().clone() for n, p in model.named_parameters()})

    def save(step: int) -> None:
        record_dir.mkdir(parents=True, exist_ok=True)
        torch.save(record, record_dir / f"rank{distributed.rank()}.pt")

    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], snapshot))
    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], save))
