"""``dynsplat-make-scene``: every layout writes a scene its dataparser reads (the console script, as users run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynsplat_ns.scenes.cli import LAYOUTS, main

#: Tiny-scene options per case, and a file each case must write; a case is a layout, or "layout:variant".
CASES = {
    "dnerf": (["--size", "8", "--n-train", "2", "--n-val", "0", "--n-test", "1"], "transforms_train.json"),
    "dnerf:bounce": (["--size", "8", "--n-train", "2", "--n-val", "0", "--n-test", "1", "--scene", "bounce"],
                     "transforms_train.json"),
    "llff": (["--width", "16", "--height", "12", "--n-frames", "3"], "poses_bounds.npy"),
    "d2rf": (["--width", "16", "--height", "8", "--n-times", "2"], "poses_bounds.npy"),
    "eyeful": (["--n-positions", "2", "--n-cameras", "2"], "splits.json"),
    "dycheck": (["--width", "8", "--height", "6", "--n-times", "1"], "dataset.json"),
    "ring360": (["--n-views", "3", "--width", "16", "--height", "12", "--supersample", "1"], "cameras.json"),
}  # fmt: skip


def _layout(case: str) -> str:
    return case.split(":")[0]


def test_every_layout_has_a_case():
    assert {_layout(case) for case in CASES} == set(LAYOUTS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_writes_its_files(case: str, tmp_path: Path):
    args, expected = CASES[case]
    assert main([_layout(case), str(tmp_path / "s"), *args]) == 0
    assert any(p.name == expected for p in (tmp_path / "s").rglob("*")), expected


def test_dnerf_scene_option_picks_the_scene(tmp_path: Path):
    """``--scene bounce`` renders another scene than the default spheres (same cameras, same frame files)."""
    frames: dict[str, dict[Path, bytes]] = {}
    for case in ("dnerf", "dnerf:bounce"):
        out = tmp_path / case.replace(":", "_")
        assert main([_layout(case), str(out), *CASES[case][0]]) == 0
        frames[case] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.png"))}
    spheres, bounce = frames["dnerf"], frames["dnerf:bounce"]
    assert len(spheres) == 3 and spheres.keys() == bounce.keys()
    assert all(spheres[name] != bounce[name] for name in spheres), "--scene bounce rendered the spheres"


def test_console_script_and_errors(tmp_path: Path, capsys):
    script = Path(sys.executable).with_name("dynsplat-make-scene")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "dynsplat_ns.scenes.cli"]
    done = subprocess.run([*exe, "dnerf", str(tmp_path / "s"), *CASES["dnerf"][0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s" / "transforms_train.json").is_file()
    assert main(["nope", str(tmp_path / "x")]) == 2
    assert "unknown layout 'nope'" in capsys.readouterr().err
    assert main([]) == 2


def test_d2rf_texture_and_motion_scale_reach_the_scene(tmp_path: Path, monkeypatch):
    import dynsplat_ns.scenes.d2rf as d2rf
    from dynsplat_ns.scenes.synthetic import default_scene

    seen = {}

    def fake_make(out_dir, *args, scene=None, **kwargs):
        seen["scene"] = scene
        return Path(out_dir)

    monkeypatch.setattr(d2rf, "make_d2rf_scene", fake_make)
    assert d2rf.main([str(tmp_path / "s"), "--checker", "0.6", "--motion-scale", "0.25"]) == 0
    scene, full = seen["scene"], default_scene()
    assert scene.checker == 0.6
    for got, ref in zip(scene.spheres, full.spheres, strict=True):
        assert got.amp_cos == tuple(0.25 * a for a in ref.amp_cos)
        assert got.amp_sin == tuple(0.25 * a for a in ref.amp_sin)
