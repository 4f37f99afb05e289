"""Shared dataparser helpers (dynsplat_ns.dataparsers .base, .errors, .files, .images, .points, .times)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynsplat_ns.dataparsers.base import parse_alpha_color
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.files import load_json
from dynsplat_ns.dataparsers.images import check_image_sizes
from dynsplat_ns.dataparsers.points import random_seed_points, read_ply_points, transform_points
from dynsplat_ns.dataparsers.times import count_frames, normalize_times

# ----------------------------------------------------------------------------------------------------------------------
# Errors, JSON, image headers
# ----------------------------------------------------------------------------------------------------------------------


def test_data_parser_error_names_file_and_problem():
    err = DataParserError(Path("/x/transforms_train.json"), "file not found")
    assert isinstance(err, ValueError)
    assert str(err) == "/x/transforms_train.json: file not found"
    assert err.path == Path("/x/transforms_train.json") and err.problem == "file not found"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_load_json_reports_position(tmp_path: Path):
    bad = tmp_path / "t.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(DataParserError, match=r"t\.json: malformed JSON at line 2"):
        load_json(bad)
    with pytest.raises(DataParserError, match="missing.json: file not found"):
        load_json(tmp_path / "missing.json")


def test_check_image_sizes_names_the_odd_file(tmp_path: Path):
    files = []
    for i, size in enumerate([(8, 6), (8, 6), (7, 6), (8, 6)]):
        files.append(tmp_path / f"im{i}.png")
        Image.new("RGBA", size).save(files[-1])
    assert check_image_sizes([files[0], files[1], files[3]]) == (8, 6)
    with pytest.raises(DataParserError, match=r"im2\.png: image size 7x6 differs .* 8x6"):
        check_image_sizes(files)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataParserError, match=r"junk\.png: cannot read image"):
        check_image_sizes([files[0], tmp_path / "junk.png"])


# ----------------------------------------------------------------------------------------------------------------------
# Config values
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [("white", [1, 1, 1]), ("BLACK", [0, 0, 0]), ("0.1,0.2,0.3", [0.1, 0.2, 0.3]), ("0.5 0.5 1", [0.5, 0.5, 1.0])],
)
def test_parse_alpha_color(spec: str, expected: list):
    torch.testing.assert_close(parse_alpha_color(spec), torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("spec", ["none", "None", None])
def test_parse_alpha_color_none(spec):
    assert parse_alpha_color(spec) is None


@pytest.mark.parametrize("spec", ["purple", "0.1,0.2", "1,2,3", "a,b,c"])
def test_parse_alpha_color_rejects(spec: str):
    with pytest.raises(ValueError, match="alpha_color"):
        parse_alpha_color(spec)


# ----------------------------------------------------------------------------------------------------------------------
# Times
# ----------------------------------------------------------------------------------------------------------------------


def test_times_in_unit_range_are_kept():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(normalize_times([0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=1e-7)


def test_times_outside_unit_range_are_rescaled_with_warning():
    with pytest.warns(UserWarning, match=r"scene: times span \[2, 6\]"):
        t = normalize_times([2.0, 4.0, 6.0], source="scene")
    np.testing.assert_allclose(t, [0.0, 0.5, 1.0])
    assert t.dtype == np.float32


def test_times_shared_range_and_minmax_mode():
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(normalize_times([3.0, 4.0], t_range=(0.0, 8.0)), [0.375, 0.5])
    np.testing.assert_allclose(normalize_times([0.2, 0.6], mode="minmax"), [0.0, 1.0])


@pytest.mark.parametrize("times", [[0.5, 0.5, 0.5], [7.0, 7.0], [0.0]])
def test_constant_times_are_zero(times: list):
    np.testing.assert_array_equal(normalize_times(times), np.zeros(len(times)))


# ----------------------------------------------------------------------------------------------------------------------
# Seed points
# ----------------------------------------------------------------------------------------------------------------------


def test_random_seed_points_deterministic_and_in_box():
    aabb = torch.tensor([[-1.0, -2.0, 0.0], [1.0, 2.0, 0.5]])
    xyz, rgb = random_seed_points(aabb, 1000, seed=1)
    assert xyz.shape == (1000, 3) and xyz.dtype == torch.float32 and rgb.dtype == torch.uint8
    assert ((xyz >= aabb[0]) & (xyz <= aabb[1])).all()
    assert torch.equal(random_seed_points(aabb, 1000, seed=1)[0], xyz)
    assert random_seed_points(aabb, 0)[0].shape == (0, 3)


def test_transform_points():
    transform = torch.tensor([[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    out = transform_points(torch.tensor([[1.0, 0.0, 0.0]]), transform, scale=2.0)
    torch.testing.assert_close(out, torch.tensor([[2.0, 2.0, 0.0]]))


_XYZ = np.array([[0.0, 1.0, 2.0], [-1.5, 0.25, 3.0], [1e-3, -2.0, 0.5]], dtype=np.float32)
_RGB = np.array([[255, 0, 10], [1, 2, 3], [128, 64, 32]], dtype=np.uint8)


def _write_ply(path: Path, fmt: str, colors: bool, float_colors: bool = False, face: bool = False) -> None:
    props = [("x", "float"), ("y", "float"), ("z", "float")]
    if colors:
        kind = "float" if float_colors else "uchar"
        props += [("red", kind), ("green", kind), ("blue", kind)]
    header = ["ply", f"format {fmt} 1.0", "comment written by the test", f"element vertex {len(_XYZ)}"]
    header += [f"property {kind} {name}" for name, kind in props]
    if face:
        header += ["element face 1", "property list uchar int vertex_indices"]
    header += ["end_header"]
    cols = [_XYZ.astype(np.float64)]
    if colors:
        cols.append(_RGB / 255.0 if float_colors else _RGB.astype(np.float64))
    table = np.concatenate(cols, axis=1)
    if fmt == "ascii":
        fmt_value = [repr] * 3 + [repr if float_colors else (lambda v: str(int(v)))] * (len(props) - 3)
        body = "".join(" ".join(f(float(v)) for f, v in zip(fmt_value, row, strict=True)) + "\n" for row in table)
        path.write_text("\n".join(header) + "\n" + body + ("3 0 1 2\n" if face else ""))
        return
    endian = "<" if fmt == "binary_little_endian" else ">"
    dtype = np.dtype([(n, endian + ("f4" if k == "float" else "u1")) for n, k in props])
    records = np.empty(len(_XYZ), dtype=dtype)
    for i, (name, _) in enumerate(props):
        records[name] = table[:, i]
    face_bytes = np.array([3], "u1").tobytes() + np.array([0, 1, 2], endian + "i4").tobytes() if face else b""
    path.write_bytes(("\n".join(header) + "\n").encode() + records.tobytes() + face_bytes)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("colors", [True, False])
def test_read_ply_points(tmp_path: Path, fmt: str, colors: bool):
    path = tmp_path / "p.ply"
    _write_ply(path, fmt, colors, face=True)
    xyz, rgb = read_ply_points(path)
    assert xyz.dtype == np.float32
    np.testing.assert_allclose(xyz, _XYZ, rtol=1e-6)
    if colors:
        assert rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb, _RGB)
    else:
        assert rgb is None


def test_read_ply_float_colors(tmp_path: Path):
    _write_ply(tmp_path / "f.ply", "binary_little_endian", colors=True, float_colors=True)
    np.testing.assert_array_equal(read_ply_points(tmp_path / "f.ply")[1], _RGB)


@pytest.mark.parametrize("names", [("diffuse_red", "diffuse_green", "diffuse_blue"), ("r", "g", "b")])
def test_read_ply_other_color_names(tmp_path: Path, names: tuple):
    header = ["ply", "format ascii 1.0", "element vertex 2", *(f"property float {a}" for a in "xyz")]
    header += [f"property ushort {n}" for n in names] + ["end_header"]
    (tmp_path / "c.ply").write_text("\n".join([*header, "0 0 0 10 300 0", "1 1 1 255 1 2"]) + "\n")
    np.testing.assert_array_equal(read_ply_points(tmp_path / "c.ply")[1], [[10, 255, 0], [255, 1, 2]])


def test_read_ply_float_colors_above_one_are_not_rescaled(tmp_path: Path):
    header = ["ply", "format ascii 1.0", "element vertex 2", *(f"property double {a}" for a in "xyz")]
    header += [f"property float {c}" for c in ("red", "green", "blue")] + ["end_header"]
    (tmp_path / "c.ply").write_text("\n".join([*header, "0 0 0 0.5 1 0", "1 1 1 200 12.4 3"]) + "\n")
    np.testing.assert_array_equal(read_ply_points(tmp_path / "c.ply")[1], [[0, 1, 0], [200, 12, 3]])


@pytest.mark.parametrize("fmt", ["ascii", "binary_big_endian"])
def test_read_ply_vertex_after_other_elements(tmp_path: Path, fmt: str):
    header = ["ply", f"format {fmt} 1.0", "element face 1", "property list uchar int vertex_indices"]
    header += ["element vertex 2", *(f"property double {a}" for a in "xyz"), "element edge 0", "property int v1"]
    header += ["end_header"]
    xyz = np.array([[1.0, 2.0, 3.0], [-4.0, 5.5, 1e-9]])
    if fmt == "ascii":
        body = ("3 0 1 1\n" + "".join(" ".join(map(repr, row)) + "\n" for row in xyz.tolist())).encode()
    else:
        body = np.array([3], "u1").tobytes() + np.array([0, 1, 1], ">i4").tobytes() + xyz.astype(">f8").tobytes()
    (tmp_path / "v.ply").write_bytes(("\n".join(header) + "\n").encode() + body)
    out, rgb = read_ply_points(tmp_path / "v.ply")
    assert out.dtype == np.float32 and rgb is None
    np.testing.assert_allclose(out, xyz.astype(np.float32))


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian"])
def test_read_ply_empty_vertex_element(tmp_path: Path, fmt: str):
    header = ["ply", f"format {fmt} 1.0", "element vertex 0", *(f"property float {a}" for a in "xyz"), "end_header"]
    (tmp_path / "e.ply").write_text("\n".join(header) + "\n")
    xyz, rgb = read_ply_points(tmp_path / "e.ply")
    assert xyz.shape == (0, 3) and xyz.dtype == np.float32 and rgb is None


_XYZ_HEADER = b"property float x\nproperty float y\nproperty float z\n"


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"hello", "not a PLY file"),
        (b"", "not a PLY file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a PLY file"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n", "ends before 'end_header'"),
        (b"ply\nformat binary_middle_endian 1.0\nelement vertex 0\nend_header\n", "malformed PLY header"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quaternion x\nend_header\n1\n", "malformed PLY header"),
        (b"ply\nformat ascii 1.0\nelement vertex many\nend_header\n", "malformed PLY header"),
        (b"ply\nformat ascii 1.0\nelement vertex -2\n" + _XYZ_HEADER + b"end_header\n", "element counts"),
        (b"ply\nformat ascii 1.0\ncomment caf\xc3\xa9\nelement vertex 0\nend_header\n", "non-ASCII"),
        (b"ply\nformat ascii 1.0\nelement face 0\nend_header\n", "no 'vertex' element"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n", "lacks x, y, z"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
         b"property list uchar float z\nend_header\n1 2 1 3\n", "'z' is a list"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\n" + _XYZ_HEADER + b"end_header\n1 2 3\n", "truncated PLY"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n" + _XYZ_HEADER + b"end_header\n\x00\x00",
         "truncated PLY"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\n" + _XYZ_HEADER + b"end_header\n1 2 3\n1 two 3\n",
         "malformed PLY data"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\n" + _XYZ_HEADER + b"end_header\n1 2 3 4\n",
         "malformed PLY data"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\n" + _XYZ_HEADER + b"end_header\n1 2 3\nnan 0 0\n",
         "NaN or inf"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\n" + _XYZ_HEADER + b"end_header\n1 inf 3\n", "NaN or inf"),
    ],
)  # fmt: skip
def test_read_ply_errors_name_the_file(tmp_path: Path, content: bytes, problem: str):
    path = tmp_path / "broken.ply"
    path.write_bytes(content)
    with pytest.raises(DataParserError) as info:
        read_ply_points(path)
    assert info.value.path.name == "broken.ply" and str(info.value).startswith(f"{path}: ")
    assert problem in info.value.problem


def test_read_ply_missing_file(tmp_path: Path):
    with pytest.raises(DataParserError, match=r"absent\.ply: PLY file not found"):
        read_ply_points(tmp_path / "absent.ply")


# ----------------------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "times, expected",
    [(None, 1), ([], 1), ([0.5], 1), ([0.0, 0.5, 0.5, 1.0], 3), (np.linspace(0, 1, 12, dtype=np.float32), 12)],
)
def test_count_frames(times, expected: int):
    assert count_frames(times) == expected
    if times is not None:
        assert count_frames(torch.as_tensor(np.asarray(times, dtype=np.float32))[:, None]) == expected
