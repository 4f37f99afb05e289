"""Bad D2RF input: one DataParserError naming the offending file, and nothing written into the data folder."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError


def _edit_npy(edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / "poses_bounds.npy"
        np.save(path, edit(np.load(path)))

    return apply


def _nan_pose(arr: np.ndarray) -> np.ndarray:
    arr[5, 3] = np.nan
    return arr


def _camera_model(model_id: int) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / "sparse" / "0" / "cameras.bin"
        raw = bytearray(path.read_bytes())
        raw[12:16] = struct.pack("<i", model_id)  # uint64 count, int32 camera_id, then int32 model_id
        path.write_bytes(bytes(raw))

    return apply


def _nan_colmap_pose(data: Path) -> None:
    path = data / "sparse" / "0" / "images.bin"
    raw = bytearray(path.read_bytes())
    raw[12:20] = struct.pack("<d", float("nan"))  # uint64 count, int32 image_id, then qw
    path.write_bytes(bytes(raw))


def _rename(src: str, dst: str) -> Callable[[Path], None]:
    return lambda d: (d / "images_bokeh" / src).rename(d / "images_bokeh" / dst)


def _resize(data: Path) -> None:
    path = data / "images_bokeh" / "000002_left.jpg"
    Image.open(path).resize((60, 32)).save(path)


def _resize_mask(folder: str, name: str, size: tuple[int, int]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        path = data / folder / name
        Image.open(path).resize(size).save(path)

    return apply


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# (id, corrupt the copy, config, split, file the message must name, words it must contain)
CASES = [
    ("data-folder-missing", lambda d: shutil.rmtree(d), {}, "train", "d2rf", "not found"),
    ("poses-bounds-missing", lambda d: (d / "poses_bounds.npy").unlink(), {}, "train", "poses_bounds.npy",
     "file not found"),
    ("poses-bounds-malformed", lambda d: (d / "poses_bounds.npy").write_bytes(b"nonsense"), {}, "train",
     "poses_bounds.npy", "malformed .npy"),
    ("poses-bounds-shape", _edit_npy(lambda a: a[:, :16]), {}, "train", "poses_bounds.npy",
     "expected shape (N, 17)"),
    ("poses-bounds-odd-rows", _edit_npy(lambda a: a[:11]), {}, "train", "poses_bounds.npy",
     "has 11 rows; D2RF stores a left and a right view per time step"),
    ("pose-count-below-images", _edit_npy(lambda a: a[:10]), {}, "train", "images_bokeh",
     "holds 12 images but poses_bounds.npy has 10 poses"),
    ("pose-nan", _edit_npy(_nan_pose), {}, "test", "poses_bounds.npy", "row 5: pose contains NaN or inf"),
    ("colmap-pose-nan", _nan_colmap_pose, {}, "train", "images.bin", "NaN or inf"),
    ("image-source-folder-missing", lambda d: shutil.rmtree(d / "images_2"), {"image_source": "half-res"}, "train",
     "images_2", "image folder not found"),
    ("sharp-view-missing", lambda d: (d / "images" / "000003_right.jpg").unlink(), {}, "test", "000003_right.jpg",
     "sharp image not found"),
    ("bad-view-name", _rename("000001_left.jpg", "frame1_left.jpg"), {}, "train", "frame1_left.jpg",
     "not a D2RF view name"),
    ("unpaired-views", _rename("000001_right.jpg", "000009_right.jpg"), {}, "train", "000002_left.jpg",
     "expected 000001_right after 000001_left"),
    ("unknown-colmap-camera-model", _camera_model(99), {}, "train", "cameras.bin",
     "unknown COLMAP camera model id 99"),
    ("unsupported-colmap-camera-model", _camera_model(8), {}, "train", "cameras.bin",
     "unsupported camera model SIMPLE_RADIAL_FISHEYE"),
    ("colmap-image-unregistered", lambda d: (d / "images_bokeh" / "000002_left.jpg").rename(
        d / "images_bokeh" / "000002_left_.jpg"), {}, "train", "000002_left_.jpg", "not a D2RF view name"),
    ("images-bin-truncated", lambda d: (d / "sparse" / "0" / "images.bin").write_bytes(b"\x0c" + b"\x00" * 20), {},
     "train", "images.bin", "malformed COLMAP binary"),
    ("images-bin-missing", lambda d: (d / "sparse" / "0" / "images.bin").unlink(), {}, "train", "images.bin",
     "file not found"),
    ("motion-mask-missing", lambda d: (d / "motion_masks" / "000004_right.png").unlink(), {}, "train",
     "000004_right.png", "motion mask not found"),
    ("mixed-image-sizes", _resize, {}, "train", "000002_left.jpg", "image size 60x32 differs"),
    ("image-corrupt", lambda d: (d / "images_bokeh" / "000000_left.jpg").write_bytes(b"\xff\xd8 broken"), {},
     "train", "000000_left.jpg", "cannot read image"),
    ("empty-test-split", lambda d: None, {"llffhold": 1}, "test", "poses_bounds.npy", "test split is empty"),
    ("motion-mask-size", _resize_mask("motion_masks", "000002_left.png", (40, 24)), {}, "train", "000002_left.png",
     "motion mask size 40x24 does not fit the 64x32 images: a mask must be the image size divided (or multiplied) by "
     "a whole number, ±1 px (expected e.g. 128x64, 64x32, 32x16, 21x11, 16x8)"),
    ("background-mask-size", _resize_mask("background_mask", "000003_right.jpg", (50, 40)), {}, "test",
     "000003_right.jpg", "background mask size 50x40 does not fit the 64x32 images"),
    ("motion-mask-size-half-res", _resize_mask("motion_masks", "000000_left.png", (24, 16)),
     {"image_source": "half-res"}, "train", "000000_left.png", "motion mask size 24x16 does not fit the 32x16 images"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt, config, split, file_name, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_one_error_naming_the_file(
    d2rf_scene_copy: Path, tmp_path: Path, corrupt, config: dict, split: str, file_name: str, words: str
):
    corrupt(d2rf_scene_copy)
    before = _snapshot(d2rf_scene_copy)
    parser = D2RFDataParserConfig(data=d2rf_scene_copy, cache_dir=tmp_path / "cache", **config).setup()
    with pytest.raises(DataParserError) as info:
        parser.get_dataparser_outputs(split=split)
    message = str(info.value)
    assert Path(info.value.path).name == file_name and file_name in message
    assert words in message
    assert _snapshot(d2rf_scene_copy) == before


@pytest.mark.parametrize("size", [(32, 16), (33, 15), (64, 32), (21, 11), (22, 10), (16, 8), (128, 64), (127, 65)])
def test_masks_at_the_image_size_times_or_over_a_whole_number_are_accepted(d2rf_scene_copy: Path, size):
    """Masks at double, full, half, third or quarter resolution of the 64x32 images (±1 px per side) parse, and the
    shipped layout parses with half-resolution images (full-resolution background masks, half-resolution motion
    masks)."""
    _resize_mask("motion_masks", "000002_left.png", size)(d2rf_scene_copy)
    outputs = D2RFDataParserConfig(data=d2rf_scene_copy).setup().get_dataparser_outputs(split="train")
    assert Path(outputs.metadata["motion_mask_filenames"][2]).name == "000002_left.png"
    half = D2RFDataParserConfig(data=d2rf_scene_copy, image_source="half-res").setup()
    assert len(half.get_dataparser_outputs(split="test").metadata["background_mask_filenames"]) == 6


def test_missing_registration_in_images_bin(d2rf_scene_copy: Path):
    """A view whose name images.bin does not know: the error names images.bin and the view."""
    from dynsplat_ns.dataparsers import colmap
    from dynsplat_ns.scenes.colmap_writer import ColmapImage, write_images

    _, images = colmap.read_images(d2rf_scene_copy / "sparse" / "0")
    kept = [ColmapImage(im.id, im.name, im.camera_id, np.eye(4)) for im in images.values() if "000003" not in im.name]
    write_images(d2rf_scene_copy / "sparse" / "0" / "images.bin", kept)
    with pytest.raises(DataParserError, match=r"images\.bin: has no image named 000003_left"):
        D2RFDataParserConfig(data=d2rf_scene_copy).setup().get_dataparser_outputs("train")


@pytest.mark.parametrize(
    "option, value",
    [("image_source", "blurry"), ("eval_image_source", "bokeh"), ("pose_source", "gps"), ("llffhold", -2)],
)
def test_bad_config_values_name_the_option(d2rf_scene: Path, option: str, value):
    with pytest.raises(ValueError, match=option):
        D2RFDataParserConfig(data=d2rf_scene, **{option: value}).setup()
