"""Integration: `ns-train dynsplat-4dgs ... dynsplat-eyeful --data SCENE` trains a few CPU steps and evaluates on
the test split (all three parsers share one subprocess; see the ``trained_parsers`` fixture in conftest.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_dynsplat_4dgs_trains_and_evaluates_on_eyeful(trained_parsers: dict):
    run = trained_parsers["eyeful"]
    if not run["registered"]:
        pytest.fail("the dynsplat-eyeful entry point is not registered (pyproject.toml, then pip install -e .)")
    assert run["status"] == "ok", run["status"]
    run_dir = run["run_dir"]
    config = (run_dir / "config.yml").read_text()
    assert "EyefulDataParserConfig" in config
    assert list((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    assert (run_dir / "dataparser_transforms.json").is_file()
    scalars = run["scalars"]
    assert scalars["Eval Images Metrics Dict (all images)/num_images"] == 3  # the whole test split
    assert scalars["Eval Images Metrics Dict (all images)/psnr"] > 0
