"""benchmarks/defocus_diagnostics.py: the learned lens against the generator's, in the run's units."""

from __future__ import annotations

import json

import pytest
import torch
from script_loader import load_script


@pytest.fixture(scope="module")
def diag():
    return load_script("benchmarks/defocus_diagnostics.py")


def truth(focus: list[float], aperture: float) -> dict:
    views = {f"{i:06d}_left": {"focus_distance": f, "aperture": aperture} for i, f in enumerate(focus)}
    return {"settings": {"aperture": aperture, "max_coc_px": 8.0}, "views": views}


def state(focus: list[float], b: float, z0: float = 1.5) -> dict[str, torch.Tensor]:
    n = len(focus)
    return {
        "_model.defocus.focus_rel": z0 / torch.tensor(focus),
        "_model.defocus.ref_depth": torch.full((n,), z0),
        "_model.defocus.coc_sq": torch.tensor([b * b]),
    }


def test_a_found_lens_reports_the_gaussian_ratio_and_no_focus_error(diag):
    scale, aperture, focus = 0.5, 80.0, [3.0, 3.5, 4.2]
    b = diag.DISC_TO_GAUSSIAN * aperture * scale / 1.5  # c = b |z0/z - q| = 0.6 · aperture · |1/z - 1/F|
    names = [f"{i:06d}_left" for i in range(3)]
    r = diag.lens_report(state([f * scale for f in focus], b), truth(focus, aperture), names, scale)
    assert r["aperture_true"] == pytest.approx(40.0)
    assert r["aperture_ratio"] == pytest.approx(diag.DISC_TO_GAUSSIAN, rel=1e-5)
    assert r["coc_error_max_px"] == pytest.approx(0.0, abs=1e-4)
    assert r["focus_corr"] == pytest.approx(1.0, abs=1e-5)


def test_a_wrong_focus_and_a_shut_aperture_show(diag):
    scale, aperture, focus = 1.0, 60.0, [3.0, 4.0]
    learned = [3.0, 6.0]  # the second view's focus is off by 1/4 - 1/6 in inverse depth
    r = diag.lens_report(state(learned, 0.0), truth(focus, aperture), ["000000_left", "000001_left"], scale)
    assert r["aperture"] == 0.0 and r["aperture_ratio"] == 0.0
    assert r["coc_error_max_px"] == pytest.approx(60.0 * (1 / 4 - 1 / 6), rel=1e-5)
    assert r["coc_error_mean_px"] == pytest.approx(60.0 * (1 / 4 - 1 / 6) / 2, rel=1e-5)


def test_a_scene_without_ground_truth_is_one_error_line(diag, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "nerfstudio_models").mkdir(parents=True)
    torch.save({"pipeline": state([1.0], 1.0)}, run / "nerfstudio_models" / "step-000000001.ckpt")
    (run / "dataparser_transforms.json").write_text(json.dumps({"scale": 1.0}))
    (run / "config.yml").write_text("pipeline: null\n")
    assert diag.main([str(run), "--scene", str(tmp_path / "scene")]) == 2
    assert "blur_gt.json not found" in capsys.readouterr().err
