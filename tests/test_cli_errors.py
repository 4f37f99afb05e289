"""Bad input through the real ``ns-*`` tools: one line naming the file and the problem, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.errors import DEBUG_ENV, DynsplatConfigError, DynsplatError, ImageFileError, exit_on_user_error
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    env.update(TORCHDYNAMO_DISABLE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def ns_train(data: Path, out: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """``ns-train dynsplat-4dgs`` for 2 steps on CPU; returns the process and the run folder (its config.yml is
    written before the pipeline is set up)."""
    proc = run(
        [
            str(BIN / "ns-train"), "dynsplat-4dgs",
            "--output-dir", str(out), "--experiment-name", "bad", "--timestamp", "run",
            "--machine.device-type", "cpu", "--machine.num-devices", "1", "--vis", "tensorboard",
            "--max-num-iterations", "2", "--steps-per-save", "1000", "--steps-per-eval-image", "1000",
            "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "0",
            "dynsplat-dnerf", "--data", str(data),
        ],
        cwd=out,
    )
    return proc, out / "bad" / "dynsplat-4dgs" / "run"


def assert_one_line_error(proc: subprocess.CompletedProcess, path: Path, problem: str) -> None:
    """Non-zero exit, no traceback anywhere, and the last line of output names ``path`` and says ``problem``."""
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert lines, output[-3000:]
    last = lines[-1]
    assert last.startswith("dynsplat error: "), last
    assert f"{path}: " in last and problem in last, last


@pytest.mark.slow
def test_malformed_transforms_json_ns_train_and_ns_eval(dnerf_scene_copy: Path, tmp_path: Path):
    bad = dnerf_scene_copy / "transforms_train.json"
    bad.write_text('{"camera_angle_x": 0.69, "frames": [')
    proc, run_dir = ns_train(dnerf_scene_copy, tmp_path)
    assert_one_line_error(proc, bad, "malformed JSON")

    # ns-eval/ns-render/ns-viewer set the pipeline up the same way (eval_setup): the same one line.
    proc = run([str(BIN / "ns-eval"), "--load-config", str(run_dir / "config.yml"),
                "--output-path", str(tmp_path / "eval.json")], cwd=tmp_path)
    assert_one_line_error(proc, bad, "malformed JSON")


@pytest.mark.slow
def test_missing_data_folder(tmp_path: Path):
    missing = tmp_path / "no_such_scene"
    proc, _ = ns_train(missing, tmp_path)
    assert_one_line_error(proc, missing, "not found")


@pytest.mark.slow
def test_truncated_png_in_training_split(dnerf_scene_copy: Path, tmp_path: Path):
    frames = json.loads((dnerf_scene_copy / "transforms_train.json").read_text())["frames"]
    png = (dnerf_scene_copy / frames[3]["file_path"]).with_suffix(".png")
    data = png.read_bytes()
    png.write_bytes(data[: len(data) * 2 // 3])
    proc, _ = ns_train(dnerf_scene_copy, tmp_path)
    assert_one_line_error(proc, png, "cannot decode image")
    assert "truncated" in proc.stderr.splitlines()[-1]


def test_training_datamanager_decodes_every_image_at_setup(dnerf_scene_copy: Path):
    """ns-train's datamanager (test_mode "val") finds a broken eval image at setup, not at the first evaluation;
    ns-eval/ns-render's ("test") decode lazily and name the file when they do."""
    broken = {}
    for split in ("val", "test"):  # ns-train evaluates on "val", ns-eval on "test"
        frames = json.loads((dnerf_scene_copy / f"transforms_{split}.json").read_text())["frames"]
        broken[split] = (dnerf_scene_copy / frames[1]["file_path"]).with_suffix(".png")
        data = broken[split].read_bytes()
        broken[split].write_bytes(data[: len(data) // 2])  # header intact: the dataparser accepts it
    config = DynsplatDatamanagerConfig(dataparser=DNeRFDataParserConfig(data=dnerf_scene_copy))
    with pytest.raises(SystemExit) as exc:
        config.setup(device="cpu", test_mode="val")
    assert isinstance(exc.value.__cause__, ImageFileError) and exc.value.__cause__.path == broken["val"]
    assert str(exc.value.code).startswith(f"dynsplat error: {broken['val']}: cannot decode image")

    manager = config.setup(device="cpu", test_mode="test")  # nothing decoded yet
    with pytest.raises(ImageFileError) as err:
        manager.eval_dataset.get_data(1)
    assert err.value.path == broken["test"] and "cannot decode image" in err.value.problem


def test_exit_on_user_error_is_one_line_and_debug_keeps_the_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    error = DynsplatConfigError("a problem\nover two lines")
    with pytest.raises(SystemExit) as exc, exit_on_user_error():
        raise error
    assert exc.value.code == f"dynsplat error: a problem over two lines  (set {DEBUG_ENV}=1 for the traceback)"
    assert exc.value.__cause__ is error
    assert isinstance(error, ValueError) and isinstance(error, DynsplatError)

    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(DynsplatConfigError), exit_on_user_error():
        raise error
    with pytest.raises(KeyError), exit_on_user_error():  # not ours: untouched
        raise KeyError("bug")
