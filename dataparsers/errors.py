"""The dataparser error type: :class:`DataParserError`, raised for bad input data and naming the offending file."""

from __future__ import annotations

from pathlib import Path


class DataParserError(ValueError):
    """Bad input data. The message always starts with the offending file, then says what is wrong with it.

    Attributes:
        path: The offending file or folder.
        problem: What is wrong with it.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))
