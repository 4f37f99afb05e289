"""Bad LLFF input: one DataParserError naming the offending file, and nothing written into the data folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.llff import LLFFDataParserConfig


def _edit_npy(edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / "poses_bounds.npy"
        np.save(path, edit(np.load(path)))

    return apply


def _set(row: int, col: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(arr: np.ndarray) -> np.ndarray:
        arr[row, col] = value
        return arr

    return edit


def _resize(data: Path) -> None:
    path = data / "images" / "IMG_0005.png"
    Image.open(path).resize((40, 32)).save(path)


def _partial_images_2(data: Path) -> None:
    shutil.rmtree(data / "images")
    (data / "images_2" / "IMG_0004.png").unlink()


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# (id, corrupt the copy, config, split, file the message must name, words it must contain)
CASES = [
    ("data-folder-missing", lambda d: shutil.rmtree(d), {}, "train", "llff", "not found"),
    ("poses-bounds-missing", lambda d: (d / "poses_bounds.npy").unlink(), {}, "train", "poses_bounds.npy",
     "file not found"),
    ("poses-bounds-malformed", lambda d: (d / "poses_bounds.npy").write_bytes(b"\x93NUMPY garbage"), {}, "train",
     "poses_bounds.npy", "malformed .npy"),
    ("poses-bounds-not-npy", lambda d: (d / "poses_bounds.npy").write_text("1 2 3"), {}, "train",
     "poses_bounds.npy", "malformed .npy"),
    ("poses-bounds-shape-15", _edit_npy(lambda a: a[:, :15]), {}, "train", "poses_bounds.npy",
     "expected shape (N, 17)"),
    ("poses-bounds-shape-1d", _edit_npy(lambda a: a.reshape(-1)), {}, "test", "poses_bounds.npy",
     "got shape (204,)"),
    ("poses-bounds-empty", _edit_npy(lambda a: a[:0]), {}, "train", "poses_bounds.npy", "no rows"),
    ("pose-nan", _edit_npy(_set(3, 7, np.nan)), {}, "train", "poses_bounds.npy", "row 3: pose contains NaN or inf"),
    ("pose-inf", _edit_npy(_set(8, 3, np.inf)), {}, "test", "poses_bounds.npy", "row 8: pose"),
    ("bounds-nan", _edit_npy(_set(2, 16, np.nan)), {}, "train", "poses_bounds.npy", "near/far bounds contain NaN"),
    ("bounds-reversed", _edit_npy(_set(1, 15, 100.0)), {}, "train", "poses_bounds.npy", "0 < near < far"),
    ("focal-zero", _edit_npy(_set(0, 14, 0.0)), {}, "train", "poses_bounds.npy", "focal must be > 0"),
    ("image-count-below-poses", lambda d: (d / "images" / "IMG_0011.png").unlink(), {}, "train", "images",
     "holds 11 images but poses_bounds.npy has 12 poses"),
    ("image-count-above-poses", _edit_npy(lambda a: a[:10]), {}, "train", "images",
     "holds 12 images but poses_bounds.npy has 10 poses"),
    ("images-k-partial", lambda d: (d / "images_2" / "IMG_0004.png").unlink(), {"downscale_factor": 2}, "train",
     "images_2", "holds 11 images"),
    ("no-image-folder", _partial_images_2, {}, "train", "images", "image folder not found"),
    ("image-folder-empty", lambda d: [p.unlink() for p in (d / "images").iterdir()], {}, "train", "images",
     "holds no images"),
    ("mixed-image-sizes", _resize, {}, "train", "IMG_0005.png", "image size 40x32 differs"),
    ("image-corrupt", lambda d: (d / "images" / "IMG_0008.png").write_bytes(b"\x89PNG broken"), {}, "test",
     "IMG_0008.png", "cannot read image"),
    ("images-not-a-rescale", lambda d: [Image.open(p).resize((48, 48)).save(p) for p in (d / "images").iterdir()],
     {}, "train", "IMG_0001.png", "is not a rescale of the 48x32"),
    ("empty-train-split", lambda d: None, {"llffhold": 1}, "train", "poses_bounds.npy", "train split is empty"),
    ("empty-test-split", lambda d: None, {"llffhold": 0}, "test", "poses_bounds.npy", "test split is empty"),
    ("points3d-malformed", lambda d: (d / "sparse" / "0" / "points3D.bin").write_bytes(b"\x05\x00"), {}, "train",
     "points3D.bin", "malformed COLMAP binary"),
    ("sfm-requested-but-missing", lambda d: shutil.rmtree(d / "sparse"), {"seed_points": "sfm"}, "train",
     "points3D.bin", "no SfM points"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt, config, split, file_name, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_one_error_naming_the_file(
    llff_scene_copy: Path, tmp_path: Path, corrupt, config: dict, split: str, file_name: str, words: str
):
    corrupt(llff_scene_copy)
    before = _snapshot(llff_scene_copy)
    parser = LLFFDataParserConfig(data=llff_scene_copy, cache_dir=tmp_path / "cache", **config).setup()
    with pytest.raises(DataParserError) as info:
        parser.get_dataparser_outputs(split=split)
    message = str(info.value)
    assert Path(info.value.path).name == file_name and file_name in message
    assert words in message
    assert _snapshot(llff_scene_copy) == before


@pytest.mark.parametrize(
    "option, value",
    [("llffhold", -1), ("bd_factor", 0.0), ("train_fraction", 0.0), ("train_count", 1), ("orientation_method", "x")],
)
def test_bad_config_values_name_the_option(llff_scene: Path, option: str, value):
    with pytest.raises(ValueError, match=option):
        LLFFDataParserConfig(data=llff_scene, **{option: value}).setup()
