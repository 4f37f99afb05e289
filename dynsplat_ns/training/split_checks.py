"""Input checks that run when a pipeline is set up, before training starts: a model that needs a test split.

A model config says why it needs the data's test split with a ``test_split_reason`` (``dynsplat-deblur`` trains on
blurry images and is scored by its sharp renders against the test split, e.g. D2RF's all-in-focus right views). Data
without a test split (e.g. ``dynsplat-d2rf --llffhold 1``, a D-NeRF folder without
``transforms_val.json``/``transforms_test.json``) fails in the dataparser with a
:class:`~dynsplat_ns.dataparsers.errors.MissingSplitError`; :func:`explain_missing_test_split` turns it into one error
that says why the model needs the split and which option gives it one (the generic message is kept for models that
do not need one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dynsplat_ns.dataparsers.errors import DataParserError, MissingSplitError

#: Dataparser options that hold views out for the test split (LLFF / D2RF ``llffhold``, EyefulTower ``holdout``).
HOLDOUT_OPTIONS = ("llffhold", "holdout")


def _parser_name(dataparser_config: Any) -> str:
    """The dataparser's ``ns-train`` subcommand (e.g. ``dynsplat-d2rf``), or "the dataparser" when unknown."""
    try:
        from nerfstudio.configs.dataparser_configs import all_dataparsers  # ns-train's subcommands (plugins too)

        return next(name for name, cfg in all_dataparsers.items() if type(cfg) is type(dataparser_config))
    except (ImportError, StopIteration):
        return "the dataparser"


def split_hint(dataparser_config: Any) -> str:
    """What gives this dataparser's data a test split: its hold-out option at its default, a split_indices.json."""
    if not dataclasses.is_dataclass(dataparser_config):
        return "a dataparser setting that holds views out for testing"
    fields = {f.name: f for f in dataclasses.fields(dataparser_config)}
    hints = [
        f"{_parser_name(dataparser_config)} --{name} {fields[name].default} (its default)"
        for name in HOLDOUT_OPTIONS
        if name in fields and fields[name].default is not dataclasses.MISSING
    ]
    if "split_indices" in fields:
        hints.append('a split_indices.json {"train": [...], "test": [...]} in the data folder (or --split-indices)')
    if type(dataparser_config).__name__.startswith("DNeRF"):
        hints.insert(0, "a transforms_test.json next to transforms_train.json")
    return " or ".join(hints) or "a dataparser setting that holds views out for testing"


@contextmanager
def explain_missing_test_split(pipeline_config: Any) -> Iterator[None]:
    """Around the pipeline's setup: a :class:`MissingSplitError` of an eval split, with a model whose config has a
    ``test_split_reason``, becomes one :class:`DataParserError` naming the same file that says why the model needs
    the split and how to get one.

    Args:
        pipeline_config: The pipeline config being set up (its ``model`` and ``datamanager.dataparser``).
    """
    try:
        yield
    except MissingSplitError as err:
        reason = getattr(getattr(pipeline_config, "model", None), "test_split_reason", None)
        if err.split == "train" or not reason:
            raise
        dataparser = getattr(getattr(pipeline_config, "datamanager", None), "dataparser", None)
        raise DataParserError(
            err.path,
            f"{reason}, and this data has none ({err.problem}); give it test views with {split_hint(dataparser)}",
        ) from err
