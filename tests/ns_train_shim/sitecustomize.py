"""Test-only shim for ``tests/test_ns_train_launcher.py``: put this folder on ``PYTHONPATH`` of a real ``ns-train``.

Python imports ``sitecustomize`` at start-up in every process, the workers that ``mp.spawn`` starts included. It
changes two things, each when its module is first imported, and nothing else:

* ``nerfstudio.scripts.train``: the module's own ``torch`` name is replaced by a view of torch whose
  ``cuda.is_available`` is True and ``cuda.device_count`` is 2, so ``_distributed_worker``'s CUDA asserts pass on a
  CPU-only box. Only that module sees it: ``torch.cuda`` everywhere else (our datamanager, nerfstudio's trainer,
  gsplat, torch's Adam) stays the real one. A global patch fails: torch's Adam then checks for CUDA graph capture
  and initialises CUDA ("Found no NVIDIA driver").
* ``dynsplat_ns.training.trainer`` (only with ``DYNSPLAT_TEST_RECORD_DIR`` set): ``DynsplatTrainer.setup`` adds
callbacks that
  record, after every step, the Gaussian count and the model's parameters, plus the cameras each step rendered, the
  number of refines and the classes in play; at the end each rank saves ``RECORD_DIR/rank{r}.pt``.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Device count the patched ``nerfstudio.scripts.train`` reports.
FAKE_DEVICE_COUNT = 2


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``hooks[name](module)`` right after module ``name`` is executed (once)."""

    def __init__(self, hooks: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.hooks = hooks

    def find_spec(self, name, path, target=None):  # noqa: D102 - importlib protocol
        if name not in self.hooks:
            return None
        hook = self.hooks.pop(name)
        spec = None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: types.ModuleType) -> None:
            exec_module(module)
            hook(module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def _torch_claiming_cuda(torch: types.ModuleType) -> types.SimpleNamespace:
    """A stand-in for the ``torch`` module: every attribute is torch's, except ``cuda``'s two queries."""
    cuda = types.SimpleNamespace(**vars(torch.cuda))
    cuda.is_available = lambda: True
    cuda.device_count = lambda: FAKE_DEVICE_COUNT
    view = types.SimpleNamespace(**{k: v for k, v in vars(torch).items() if not k.startswith("__")})
    view.cuda = cuda
    return view


def _patch_launcher(module: types.ModuleType) -> None:
    module.torch = _torch_claiming_cuda(module.torch)


def _patch_trainer(module: types.ModuleType) -> None:
    import torch
    from rank_recording import record_training  # tests/, on PYTHONPATH next to this folder

    from dynsplat_ns.training import distributed

    record_dir = Path(os.environ["DYNSPLAT_TEST_RECORD_DIR"])
    trainer_class = module.DynsplatTrainer
    original_setup = trainer_class.setup

    def setup(self, test_mode="val"):
        original_setup(self, test_mode=test_mode)
        model = self.pipeline.model
        record: dict[str, Any] = {
            "rank": distributed.rank(),
            "world_size": distributed.world_size(), "strategy": type(model.strategy).__name__,
            "optimizers": type(self.optimizers).__name__, "pipeline_model": type(self.pipeline._model).__name__,
            "pipeline_world_size": self.pipeline.world_size, "cuda_available": torch.cuda.is_available(),
            "device": str(self.device), "backend": torch.distributed.get_backend(),
        }  # fmt: skip
        record_training(self, record, record_dir)

    trainer_class.setup = setup


_hooks: dict[str, Callable[[types.ModuleType], None]] = {"nerfstudio.scripts.train": _patch_launcher}
if os.environ.get("DYNSPLAT_TEST_RECORD_DIR"):
    _hooks["dynsplat_ns.training.trainer"] = _patch_trainer
sys.meta_path.insert(0, _AfterImport(_hooks))
