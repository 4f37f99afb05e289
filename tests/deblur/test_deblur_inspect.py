"""``dynsplat-deblur-inspect`` (issue 12 §3): per training image a PNG strip input | re-blurred | sharp and a CSV row
of the learned blur; a run of another method gets one clear error."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import parse
from PIL import Image

from dynsplat_ns.scenes.d2rf import make_d2rf_scene
from dynsplat_ns.tools.deblur_inspect import COLUMNS, main

BIN = Path(sys.executable).parent


def test_a_run_of_another_method_is_one_clear_error(dnerf_scene, tmp_path, capsys):
    import yaml

    config = parse("dynsplat-som", "--output-dir", str(tmp_path), "dynsplat-dnerf", "--data", str(dnerf_scene))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text(yaml.dump(config))
    assert main(["--load-config", str(run / "config.yml"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dynsplat-som run, not dynsplat-deblur" in err[0] and "config.yml" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # one ns-train start-up (about 25 s on 2 shared cores)
def test_strips_and_csv_of_a_defocus_run(tmp_path):
    scene = make_d2rf_scene(tmp_path / "scene", width=48, height=32, n_times=4, seed=0, blur=("defocus",))
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "ns-train"), "dynsplat-deblur", "--output-dir", str(tmp_path / "out"), "--experiment-name", "s",
           "--timestamp", "r", "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "12",
           "--steps-per-save", "12", "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "100000",
           "--pipeline.model.defocus", "True", "--pipeline.model.num-virtual-views", "3",
           "dynsplat-d2rf", "--data", str(scene)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "inspect"
    assert main(["--load-config", str(tmp_path / "out/s/dynsplat-deblur/r/config.yml"), "--output-dir", str(out)]) == 0
    with open(out / "blur.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and tuple(rows[0]) == COLUMNS  # the four left (training) views
    assert [r["image"] for r in rows] == [f"images_bokeh/{i:06d}_left" for i in range(4)]
    for r in rows:
        assert 0.1 <= float(r["exposure_fraction"]) <= 0.9
        assert float(r["focus"]) > 0 and float(r["aperture"]) >= 0 and float(r["trajectory_translation"]) >= 0
        assert float(r["reblurred_psnr"]) > 10 and float(r["sharp_psnr"]) > 10
    assert any(float(r["aperture"]) > 0 for r in rows)  # 12 steps open some apertures on defocused images
    strips = sorted(out.glob("*.png"))
    assert len(strips) == 4
    strip = np.asarray(Image.open(strips[2]))  # 0002_images_bokeh_000002_left.png
    assert strip.shape == (32, 3 * 48, 3)
    source, blurred, sharp = strip[:, :48], strip[:, 48:96], strip[:, 96:]
    training_image = np.asarray(Image.open(scene / "images_bokeh" / "000002_left.jpg").convert("RGB"))
    assert np.abs(source.astype(int) - training_image.astype(int)).max() <= 1  # the input is the training image
    assert not np.array_equal(blurred, sharp)  # the prediction is re-blurred (K views, defocus)
