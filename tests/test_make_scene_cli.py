"""``dynsplat-make-scene``: every layout writes a scene its dataparser reads (the console script, as users run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynsplat_ns.scenes.cli import LAYOUTS, main

#: Tiny-scene options per layout, and a file each layout must contain.
CASES = {
    "dnerf": (["--size", "8", "--n-train", "2", "--n-val", "0", "--n-test", "1"], "transforms_train.json"),
    "llff": (["--width", "16", "--height", "12", "--n-frames", "3"], "poses_bounds.npy"),
    "d2rf": (["--width", "16", "--height", "8", "--n-times", "2"], "poses_bounds.npy"),
    "eyeful": (["--n-positions", "2", "--n-cameras", "2"], "splits.json"),
}


def test_every_layout_has_a_case():
    assert set(CASES) <= set(LAYOUTS)


@pytest.mark.parametrize("layout", sorted(CASES))
def test_layout_writes_its_files(layout: str, tmp_path: Path):
    args, expected = CASES[layout]
    assert main([layout, str(tmp_path / "s"), *args]) == 0
    assert any(p.name == expected for p in (tmp_path / "s").rglob("*")), expected


def test_console_script_and_errors(tmp_path: Path, capsys):
    script = Path(sys.executable).with_name("dynsplat-make-scene")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "dynsplat_ns.scenes.cli"]
    done = subprocess.run([*exe, "dnerf", str(tmp_path / "s"), *CASES["dnerf"][0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s" / "transforms_train.json").is_file()
    assert main(["nope", str(tmp_path / "x")]) == 2
    assert "unknown layout 'nope'" in capsys.readouterr().err
    assert main([]) == 2
