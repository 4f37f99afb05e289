"""Every command-line flag of every dynsplat dataparser reaches the parser ``ns-train`` builds (issue 10 §1).

The flags are read from ``ns-train dynsplat-4dgs PARSER --help`` (nerfstudio's own tyro parser). Each is set to a
non-default value, parsed as ``ns-train`` parses it, and the dataparser is set up as the datamanager sets it up: the
parser must use the value, the build must work with it, and a few effects are checked (downscaled image size and
cache, number of training images, their per-frame metadata file lists and random seed points). What each option does
in detail: tests/dataparsers/. Every registered ``dynsplat-*`` dataparser must be listed in PARSERS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli_flags, parse

PARSERS = {"dynsplat-dnerf": "dnerf_scene", "dynsplat-llff": "llff_scene", "dynsplat-d2rf": "d2rf_scene",
           "dynsplat-eyeful": "eyeful_scene", "dynsplat-dycheck": "dycheck_scene"}  # fmt: skip

#: Non-default values per parser; "{scene}"/"{tmp}" are filled in. Flags in SECOND_PARSER_BUILD go to a second build.
_COMMON = {
    "--data": ["{scene}"],
    "--scale-factor": ["2.0"],
    "--downscale-factor": ["2"],
    "--cache-dir": ["{tmp}/cache"],
    "--alpha-color": ["0.5,0.5,0.5"],
    "--seed-points": ["random"],
    "--num-random-points": ["123"],
    "--random-seed": ["5"],
    "--time-normalization": ["minmax"],
    "--orientation-method": ["pca"],
    "--center-method": ["focus"],
    "--auto-scale-poses": ["True"],
    "--train-fraction": ["0.5"],
    "--train-count": ["3"],
    "--split-indices": ["{tmp}/split.json"],
}
PARSER_VALUES: dict[str, dict[str, list[str]]] = {
    "dynsplat-dnerf": {**_COMMON, "--seed-points": ["{tmp}/seed.ply"], "--scene-bound": ["2.5"],
                       "--eval-split": ["val"]},
    # llff: images_2/ exists in the scene, so factor 4 is resized into the cache
    "dynsplat-llff": {**_COMMON, "--downscale-factor": ["4"], "--llffhold": ["4"], "--bd-factor": ["0.5"],
                      "--time-from-order": ["True"], "--orientation-method": ["none"], "--center-method": ["none"]},
    "dynsplat-d2rf": {**_COMMON, "--image-source": ["sharp"], "--eval-image-source": ["same"], "--llffhold": ["3"],
                      "--pose-source": ["poses_bounds"], "--bd-factor": ["0.5"], "--orientation-method": ["none"],
                      "--center-method": ["none"]},
    "dynsplat-eyeful": {**_COMMON, "--seed-points": ["{tmp}/seed.ply"], "--resolution": ["jpeg_2k"],
                        "--transforms-file": ["transforms_half.json"], "--split-source": ["transforms"],
                        "--holdout": ["3"], "--scene-bound": ["3.0"], "--auto-scale-poses": ["False"],
                        "--orientation-method": ["none"], "--center-method": ["none"]},
    # dycheck: --downscale 1 reads rgb/1x (twice the default 2x width), so it goes to the second build; split.json's
    # train [0, 1, 2, 3] = both phone frames and camera 1's two val frames (no depth map: None in depth_filenames)
    "dynsplat-dycheck": {**_COMMON, "--downscale": ["1"], "--use-scene-scale": ["False"]},
}  # fmt: skip
SECOND_PARSER_BUILD = {"--train-count", "--split-indices", "--num-random-points", "--random-seed", "--resolution",
                       "--downscale"}  # fmt: skip


def _write_inputs(tmp: Path) -> None:
    import numpy as np
    from plyfile import PlyData, PlyElement

    pts = np.zeros(7, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    pts["x"] = np.linspace(-0.5, 0.5, 7)
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(tmp / "seed.ply"))
    (tmp / "split.json").write_text(json.dumps({"train": [0, 1, 2, 3], "test": [4, 5]}))


def _parser_build(parser: str, values: dict[str, list[str]], scene: Path, tmp: Path):
    args = [a.format(scene=scene, tmp=tmp) for flag, v in values.items() for a in (flag, *v)]
    config = parse("dynsplat-4dgs", parser, *args)
    dataparser = config.pipeline.datamanager.dataparser.setup()  # as the datamanager does
    return config, dataparser, dataparser.get_dataparser_outputs("train")


def test_every_dataparser_flag_has_a_value():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="nerfstudio.dataparser_configs")}
    registered = {name for name in names if name.startswith("dynsplat-")}
    assert registered == set(PARSERS), f"dataparsers without a flag check: {sorted(registered - set(PARSERS))}"
    for parser in PARSERS:
        flags = cli_flags("dynsplat-4dgs", parser)
        assert {"--data", "--downscale-factor"} <= flags, parser
        unclassified = sorted(flags - set(PARSER_VALUES[parser]))
        assert not unclassified, f"{parser}: flags without a check: {unclassified}"
        stale = sorted(set(PARSER_VALUES[parser]) - flags)
        assert not stale, f"{parser}: checks for flags it does not have: {stale}"


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_dataparser_flags_reach_the_parser(parser, request, tmp_path):
    scene = request.getfixturevalue(PARSERS[parser])
    _write_inputs(tmp_path)
    _, _, default = _parser_build(parser, {"--data": ["{scene}"]}, scene, tmp_path)
    values = PARSER_VALUES[parser]
    first = {f: v for f, v in values.items() if f not in SECOND_PARSER_BUILD}
    second = {"--data": ["{scene}"], **{f: v for f, v in values.items() if f in SECOND_PARSER_BUILD},
              "--seed-points": ["random"]}  # fmt: skip
    problems = []
    factor = int(values["--downscale-factor"][0])
    for batch, checked in ((first, set(first)), (second, SECOND_PARSER_BUILD & set(values))):
        config, dataparser, out = _parser_build(parser, batch, scene, tmp_path)
        defaults = type(dataparser.config)()
        for flag in checked:
            name = flag[2:].replace("-", "_")
            used, default_value = getattr(dataparser.config, name), getattr(defaults, name)
            if used == default_value or used != getattr(config.pipeline.datamanager.dataparser, name):
                problems.append(f"{parser} {flag}: parser uses {used!r} (default {default_value!r})")
        if batch is first:  # what some of them do
            if int(out.cameras.width[0]) != int(default.cameras.width[0]) // factor:
                problems.append(f"{parser} --downscale-factor {factor}: width {int(out.cameras.width[0])}")
            if not any((tmp_path / "cache").rglob("*")):
                problems.append(f"{parser} --cache-dir: nothing cached there")
        else:
            if len(out.image_filenames) != 3:
                problems.append(f"{parser} --train-count 3: {len(out.image_filenames)} training images")
            if out.metadata["points3D_xyz"].shape[0] != 123:
                problems.append(f"{parser} --num-random-points 123: {out.metadata['points3D_xyz'].shape[0]} points")
            if "--downscale" in batch and int(out.cameras.width[0]) != 2 * int(default.cameras.width[0]):
                problems.append(f"{parser} --downscale 1: width {int(out.cameras.width[0])} (2x folder: default)")
            for key, files in (out.metadata or {}).items():  # per-frame lists follow the thinned, re-split frames
                if key.endswith("_filenames") and len(files) != len(out.image_filenames):
                    problems.append(f"{parser}: {len(files)} {key} for {len(out.image_filenames)} images")
    assert not problems, "\n".join(problems)
