"""The shared split policy (dynsplat_ns.dataparsers.subsets): hold-outs, split_indices.json, train subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.dataparsers.errors import DataParserError
from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig
from dynsplat_ns.dataparsers.llff import LLFFDataParserConfig
from dynsplat_ns.dataparsers.subsets import holdout_split, read_split_indices, resolve_splits, subset_evenly

PARSERS = {"llff": LLFFDataParserConfig, "d2rf": D2RFDataParserConfig, "eyeful": EyefulDataParserConfig}


def indices(kind: str, data: Path, split: str = "train", **config) -> list[int]:
    return PARSERS[kind](data=data, **config).setup().get_dataparser_outputs(split=split).metadata["frame_indices"]


def test_holdout_split_both_conventions():
    assert holdout_split(10, 4) == {"train": [1, 2, 3, 5, 6, 7, 9], "test": [0, 4, 8]}
    assert holdout_split(6, 2, hold_multiples=False) == {"train": [0, 2, 4], "test": [1, 3, 5]}
    assert holdout_split(3, 0) == {"train": [0, 1, 2], "test": []}


@pytest.mark.parametrize(
    "n, fraction, count, expected",
    [
        (10, 1.0, None, list(range(10))),
        (10, 0.5, None, [0, 2, 4, 7, 9]),
        (10, 0.01, None, [0, 9]),
        (10, 1.0, 3, [0, 4, 9]),  # round(4.5) → 4 (banker's rounding of linspace)
        (10, 1.0, 2, [0, 9]),
        (10, 1.0, 50, list(range(10))),
        (1, 0.5, None, [0]),
    ],
)
def test_subset_evenly_keeps_first_and_last(n: int, fraction: float, count, expected: list):
    kept = subset_evenly(list(range(n)), fraction, count)
    assert kept == expected
    assert kept[0] == 0 and kept[-1] == n - 1


def test_subset_works_on_arbitrary_indices():
    assert subset_evenly([3, 5, 8, 13, 21], count=3) == [3, 8, 21]


def test_resolve_splits_val_defaults_to_test(tmp_path: Path):
    splits = resolve_splits({"train": [0, 1, 2, 3], "test": [4]}, 5, None, count=2)
    assert splits == {"train": [0, 3], "val": [4], "test": [4]}
    path = tmp_path / "split_indices.json"
    path.write_text(json.dumps({"train": [4, 0], "test": [1], "val": [2]}))
    assert resolve_splits({"train": [0], "test": [1]}, 5, path) == {"train": [0, 4], "val": [2], "test": [1]}


@pytest.mark.parametrize(
    "content, words",
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"train": [0]}', "missing 'test'"),
        ('{"train": [0], "test": [1], "extra": []}', "unknown keys ['extra']"),
        ('{"train": [0, 1.5], "test": [1]}', "frame indices must be integers"),
        ('{"train": [0, true], "test": [1]}', "frame indices must be integers"),
        ('{"train": [0, 12], "test": [1]}', "'train' index 12 is out of range: the scene has 12 frames"),
        ('{"train": [0, -1], "test": [1]}', "index -1 is out of range"),
        ('{"train": [0, 0], "test": [1]}', "more than once"),
        ('{"train": "0-5", "test": [1]}', "must be a list"),
        ('{"train": [0,', "malformed JSON"),
    ],
)
def test_split_indices_errors_name_the_file(tmp_path: Path, content: str, words: str):
    path = tmp_path / "split_indices.json"
    path.write_text(content)
    with pytest.raises(DataParserError) as info:
        read_split_indices(path, 12)
    assert info.value.path == path and words in str(info.value)


@pytest.mark.parametrize("kind", ["llff", "d2rf", "eyeful"])
def test_train_fraction_and_count(kind: str, request: pytest.FixtureRequest):
    data = request.getfixturevalue(f"{kind}_scene")
    full = indices(kind, data)
    by_count = indices(kind, data, train_count=3)
    assert len(by_count) == 3 and by_count[0] == full[0] and by_count[-1] == full[-1]
    by_fraction = indices(kind, data, train_fraction=0.5)
    assert len(by_fraction) == -(-len(full) // 2) and by_fraction[0] == full[0] and by_fraction[-1] == full[-1]
    assert set(by_fraction) <= set(full)
    assert indices(kind, data, "test", train_count=2) == indices(kind, data, "test")  # test is never thinned


@pytest.mark.parametrize("kind", ["llff", "d2rf", "eyeful"])
def test_split_indices_json_in_the_data_folder_overrides_the_split(kind: str, request: pytest.FixtureRequest):
    data = request.getfixturevalue(f"{kind}_scene_copy")
    (data / "split_indices.json").write_text(json.dumps({"train": [5, 1, 2], "test": [3, 7]}))
    assert indices(kind, data) == [1, 2, 5]
    assert indices(kind, data, "test") == [3, 7] and indices(kind, data, "val") == [3, 7]
    assert indices(kind, data, train_count=2) == [1, 5]


def test_split_indices_path_option(llff_scene: Path, tmp_path: Path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"train": [0, 1], "test": [2], "val": [3]}))
    assert indices("llff", llff_scene, "val", split_indices=path) == [3]
    with pytest.raises(DataParserError, match="split_indices file not found"):
        indices("llff", llff_scene, split_indices=tmp_path / "missing.json")


def test_empty_split_from_split_indices_names_it(llff_scene_copy: Path):
    (llff_scene_copy / "split_indices.json").write_text(json.dumps({"train": [0, 1], "test": []}))
    with pytest.raises(DataParserError) as info:
        indices("llff", llff_scene_copy, "test")
    assert info.value.path.name == "split_indices.json" and "test split is empty" in str(info.value)
