"""Small compatibility shims between nerfstudio 1.1.5, torch ≥ 2.6 and CPU-only machines (each idempotent).

Nothing here runs at import time: :class:`~dynsplat_ns.training.pipeline.DynsplatPipeline` calls the shims when a
dynsplat pipeline is set up (nerfstudio imports every installed plugin for every ``ns-*`` command, so import-time code
would reach runs of other methods too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def numpy_scalar_types() -> list[Any]:
    """What ``torch.load(weights_only=True)`` must allow to read numpy scalars and dtypes from a pickle."""
    try:  # numpy ≥ 2
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return [scalar, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]


def allow_nerfstudio_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` (torch ≥ 2.6's default) read nerfstudio 1.1.5 checkpoints.

    nerfstudio's exponential-decay scheduler stores numpy float64 learning rates in the checkpoint, which torch's
    safe unpickler rejects, so ``ns-eval``/``ns-render``/``ns-export``/resume fail. We allow exactly those numpy
    scalar types. Checkpoints written by :class:`~dynsplat_ns.checkpoints.files.CheckpointMixin` hold plain floats
    instead
    (see :func:`plain_numbers`); this is for the ones written before it.

    Called when a dynsplat pipeline is set up, which ``eval_setup`` (``ns-eval``/``ns-render``/``ns-export``/
    ``ns-viewer``) and ``Trainer.setup`` (``--load-dir``) do before they load the checkpoint: nerfstudio calls
    ``torch.load`` itself there, so a scoped ``torch.serialization.safe_globals`` context cannot reach it.
    """
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(numpy_scalar_types())


def plain_numbers(value: Any) -> Any:
    """``value`` with every numpy scalar inside (nested dicts, lists, tuples) replaced by the Python number it holds,
    so that ``torch.load(weights_only=True)`` reads it without extra safe globals. Tensors are left as they are."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(plain_numbers(v) for v in value)
    return value
