"""The README's "How to add a dataparser" recipe works as written: a format that only declares its config and
``read_scene`` gets the base's checks, split policy, times and seed points, and reads a generated scene as
dynsplat-dnerf reads the same frames."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from dynsplat_ns.dataparsers.base import DynsplatDataParser, DynsplatDataParserConfig
from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.files import load_json
from dynsplat_ns.dataparsers.images import image_size
from dynsplat_ns.dataparsers.scene import SceneFrames
from dynsplat_ns.scenes.dnerf import make_dnerf_scene

# ---- the README's example format (relative imports there; absolute here) ---------------------------------------------


@dataclass
class MyFormatDataParserConfig(DynsplatDataParserConfig):
    """My-format dataparser config."""

    _target: type = field(default_factory=lambda: MyFormat)
    """Parser class to instantiate."""
    data: Path = Path("data/myformat/scene")
    """Dataset folder holding frames.json and the images."""


@dataclass
class MyFormat(DynsplatDataParser):
    """Reads ``frames.json``: ``[{"image", "c2w" (4x4 OpenGL), "fx", "time", "split"}, ...]``."""

    config: MyFormatDataParserConfig

    def read_scene(self, split: str) -> SceneFrames:
        source = self.data_dir / "frames.json"
        frames = load_json(source)  # missing / malformed file: DataParserError naming it
        if not isinstance(frames, list) or not frames:
            raise DataParserError(source, "expected a non-empty list of frames")
        files = [self.data_dir / f["image"] for f in frames]
        width, height = image_size(files[0])  # the size fx refers to (header only)
        n = len(frames)
        fx = np.array([f["fx"] for f in frames], dtype=np.float64)
        return SceneFrames(
            image_filenames=files,
            c2w=np.array([f["c2w"] for f in frames], dtype=np.float64),  # [N, 4, 4], OpenGL axes
            fx=fx, fy=fx, cx=np.full(n, width / 2), cy=np.full(n, height / 2),
            width=np.full(n, width), height=np.full(n, height),
            splits={s: [i for i, f in enumerate(frames) if f["split"] == s] for s in ("train", "test")},
            split_source=source,
            pose_source=source,
            times=np.array([f["time"] for f in frames], dtype=np.float64),
        )  # fmt: skip


# ---- tests -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def myformat_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated D-NeRF scene whose train and test frames are also listed in frames.json."""
    scene = make_dnerf_scene(tmp_path_factory.mktemp("myformat") / "scene", size=32, n_train=6, n_val=1, n_test=2)
    frames = []
    for split in ("train", "test"):
        meta = json.loads((scene / f"transforms_{split}.json").read_text())
        fx = 32 / (2 * math.tan(meta["camera_angle_x"] / 2))
        for f in meta["frames"]:
            image = f["file_path"].removeprefix("./") + ".png"
            frames.append({"image": image, "c2w": f["transform_matrix"], "fx": fx, "time": f["time"], "split": split})
    (scene / "frames.json").write_text(json.dumps(frames))
    return scene


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_new_format_reads_like_dnerf(myformat_scene: Path, split: str):
    ours = MyFormatDataParserConfig(data=myformat_scene).setup().get_dataparser_outputs(split=split)
    ref = (
        DNeRFDataParserConfig(data=myformat_scene)
        .setup()
        .get_dataparser_outputs(split="test" if split == "val" else split)
    )
    assert ours.image_filenames == ref.image_filenames
    for key in ("camera_to_worlds", "fx", "fy", "cx", "cy", "width", "height", "times"):
        torch.testing.assert_close(getattr(ours.cameras, key), getattr(ref.cameras, key))
    assert ours.metadata["num_frames"] == ref.metadata["num_frames"] == 6
    torch.testing.assert_close(ours.metadata["background_color"], torch.ones(3))  # alpha_color parsed by the base
    assert ours.metadata["points3D_xyz"].shape == (2000, 3)


def test_new_format_gets_the_base_checks_and_options(myformat_scene: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="scale_factor"):
        MyFormatDataParserConfig(data=myformat_scene, scale_factor=-1.0).setup()
    with pytest.raises(DataParserError, match="data folder not found"):
        MyFormatDataParserConfig(data=tmp_path / "missing").setup().get_dataparser_outputs()
    kept = MyFormatDataParserConfig(data=myformat_scene, train_count=3).setup().get_dataparser_outputs()
    assert kept.metadata["frame_indices"] == [0, 2, 5] and kept.metadata["num_frames"] == 3
