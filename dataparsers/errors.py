"""The dataparser error type: :class:`DataParserError`, raised for bad input data and naming the offending file."""

from __future__ import annotations

from dynsplat_ns.errors import InputFileError


class DataParserError(InputFileError):
    """Bad input data. The message always starts with the offending file, then says what is wrong with it.

    A :class:`~dynsplat_ns.errors.DynsplatError` (``ns-*`` tools report it in one line) and a ``ValueError``.

    Attributes:
        path: The offending file or folder.
        problem: What is wrong with it.
    """
