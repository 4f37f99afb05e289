"""benchmarks/monocular_dycheck.py: its table groups the runs by configuration and step budget, per scene seed."""

from __future__ import annotations

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/monocular_dycheck.py")


def row(config: str, seed: int, steps: int, psnr: float, cov: float | None) -> dict:
    return {"config": config, "seed": seed, "steps": steps, "psnr": psnr, "covisible_psnr": cov,
            "covisible_ssim": 0.5}  # fmt: skip


def test_summary_groups_by_configuration_and_steps_in_seed_order(bench):
    rows = [row("som", 12, 300, 18.0, 13.0), row("som", 11, 300, 16.0, 11.0), row("som", 11, 3000, 15.0, 12.0),
            row("som+depth", 11, 300, 17.0, None)]  # fmt: skip
    table = {(r["config"], r["steps"]): r for r in bench.summary(rows)}
    assert list(table) == [("som", 300), ("som", 3000), ("som+depth", 300)]
    som = table[("som", 300)]
    assert som["seeds"] == [11, 12] and som["psnr"] == [16.0, 18.0]
    assert som["psnr_mean"] == pytest.approx(17.0) and som["covisible_psnr_mean"] == pytest.approx(12.0)
    assert table[("som+depth", 300)]["covisible_psnr_mean"] is None  # a missing metric gives no mean


def test_tune_and_report_scene_seeds_are_disjoint_and_every_config_is_known(bench):
    assert not set(bench.SCENE_SEEDS["tune"]) & set(bench.SCENE_SEEDS["report"])
    assert "som" in bench.CONFIGS and bench.CONFIGS["som"] == ()  # the defaults, as a user runs them
