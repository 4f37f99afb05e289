"""Small compatibility shims between nerfstudio 1.1.5, torch ≥ 2.6 and CPU-only machines (each idempotent)."""

from __future__ import annotations

import numpy as np
import torch


def allow_nerfstudio_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` (torch ≥ 2.6's default) read nerfstudio 1.1.5 checkpoints.

    nerfstudio's exponential-decay scheduler stores numpy float64 learning rates in the checkpoint, which torch's
    safe unpickler rejects, so ``ns-eval``/``ns-render``/``ns-export``/resume fail. We allow exactly those numpy
    scalar types.
    """
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:
        return
    try:  # numpy ≥ 2
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    add([scalar, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))])
