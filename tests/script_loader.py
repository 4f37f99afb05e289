"""Scripts of the repository that are not on ``sys.path`` (``benchmarks/``, ``examples/``), loaded by path as modules
for tests of their functions, as a user would run or copy them."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """The module of ``REPO_ROOT / relative`` (e.g. ``"benchmarks/deblur.py"``), registered in ``sys.modules`` under a
    name of its own (dataclasses resolve annotations through it)."""
    path = REPO_ROOT / relative
    spec = importlib.util.spec_from_file_location("dynsplat_script_" + re.sub(r"\W", "_", relative), path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
