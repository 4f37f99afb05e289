"""benchmarks/deblur.py's table: the recovered fraction comes from the three runs a row names, in the blur's metric."""

from __future__ import annotations

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/deblur.py")


def run(name: str, psnr: float, masked: float) -> dict:
    return {"run_dir": f"runs/{name}", "psnr": psnr, "masked_psnr": masked}


def test_recovered_fraction(bench):
    assert bench.recovered_fraction(27.0, 25.0, 29.0) == pytest.approx(0.5)
    assert bench.recovered_fraction(24.0, 25.0, 29.0) == pytest.approx(-0.25)  # worse than not deblurring
    assert bench.recovered_fraction(27.0, 25.0, 25.0) is None  # the blur costs nothing
    assert bench.recovered_fraction(None, 25.0, 29.0) is None


def test_rows_name_their_three_runs_and_use_the_blurs_metric(bench):
    runs = {
        ("defocus", 11, "deblur"): run("d", 27.0, 20.0), ("defocus", 11, "som"): run("s", 25.0, 19.0),
        ("defocus", 11, "som-sharp"): run("x", 29.0, 30.0),
        ("motion", 11, "deblur"): run("md", 30.0, 26.0), ("motion", 11, "som"): run("ms", 30.1, 22.0),
        ("motion", 11, "som-sharp"): run("mx", 30.2, 30.0),
    }  # fmt: skip
    rows = {r["kind"]: r for r in bench.kind_rows(runs, ["defocus", "motion"], [11])}
    assert rows["defocus"]["runs"] == ["runs/d", "runs/s", "runs/x"]
    assert rows["defocus"]["metric"] == "psnr" and rows["defocus"]["recovered"] == pytest.approx(0.5)
    assert rows["defocus"]["cost"] == pytest.approx(4.0)
    # object motion lives in the moving pixels: masked PSNR (whole image would say the blur costs nothing)
    assert rows["motion"]["metric"] == "masked_psnr" and rows["motion"]["recovered"] == pytest.approx(0.5)
    assert rows["motion"]["gain_psnr"] == pytest.approx(-0.1)


def test_every_kind_trains_the_same_steps_and_the_baseline_gets_the_common_flags(bench):
    assert not hasattr(bench, "KIND_STEPS")  # one step budget for every blur kind
    for kind, flags in bench.KIND_DEBLUR_FLAGS.items():
        assert "--pipeline.model.use-scale-regularization" not in flags, kind  # given to SoM too (KIND_COMMON_FLAGS)
    assert not set(bench.SCENE_SEEDS["tune"]) & set(bench.SCENE_SEEDS["report"])
    assert bench.scene_variation("defocus", 11) != bench.scene_variation("defocus", 12)
