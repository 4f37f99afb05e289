"""The dataparser error type: :class:`DataParserError`, raised for bad input data and naming the offending file."""

from __future__ import annotations

from pathlib import Path

from dynsplat_ns.errors import InputFileError


class DataParserError(InputFileError):
    """Bad input data. The message always starts with the offending file, then says what is wrong with it.

    A :class:`~dynsplat_ns.errors.DynsplatError` (``ns-*`` tools report it in one line) and a ``ValueError``.

    Attributes:
        path: The offending file or folder.
        problem: What is wrong with it.
    """


class MissingSplitError(DataParserError):
    """The data has no frames for a split that was asked for (e.g. no test views): ``path`` is the file that defines
    the split (or would), ``split`` the split's name. Methods that need that split may explain what to do instead."""

    def __init__(self, path: str | Path, problem: str, split: str = "test"):
        super().__init__(path, problem)
        self.split = split

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.split))
