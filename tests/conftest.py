"""Shared pytest fixtures: small generated scenes (CPU only, nothing downloaded)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO_ROOT / "examples"
if str(EXAMPLES_DIR) not in sys.path:  # examples/ is not a package; its scripts import each other by name
    sys.path.insert(0, str(EXAMPLES_DIR))

import make_dnerf_scene  # noqa: E402

#: How the ``dnerf_scene`` fixture is generated (see ``dnerf_scene_params``).
DNERF_SCENE_PARAMS = {"size": 32, "n_train": 12, "n_val": 4, "n_test": 4, "seed": 0, "motion": True, "supersample": 2}


@pytest.fixture(scope="session")
def dnerf_scene_params() -> dict:
    """The keyword arguments ``dnerf_scene`` was generated with (size, n_train, n_val, n_test, seed, ...)."""
    return dict(DNERF_SCENE_PARAMS)


@pytest.fixture(scope="session")
def dnerf_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny moving-spheres scene in the D-NeRF layout (32 px; 12 train, 4 val, 4 test frames).

    Shared by the whole session: treat it as read-only and use ``dnerf_scene_copy`` to modify it.
    """
    return make_dnerf_scene.make_dnerf_scene(tmp_path_factory.mktemp("dnerf") / "scene", **DNERF_SCENE_PARAMS)


@pytest.fixture
def dnerf_scene_copy(dnerf_scene: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``dnerf_scene`` for tests that edit or corrupt it."""
    return Path(shutil.copytree(dnerf_scene, tmp_path / "scene"))
