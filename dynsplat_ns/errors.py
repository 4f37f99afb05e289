"""dynsplat's own error types, and how the ``ns-*`` tools report them: one line, no traceback.

Every error raised for something the user can fix (bad input data, a flag that does not fit the data) derives from
:class:`DynsplatError`. When a dynsplat pipeline is set up (``ns-train``, ``ns-eval``, ``ns-render``,
``ns-viewer``), :func:`exit_on_user_error` turns such an error into a clean exit with a one-line message on stderr;
set the environment variable ``DYNSPLAT_DEBUG=1`` to get the full traceback instead. Anything else (a bug) keeps its
traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Environment variable that keeps full tracebacks (any value but "", "0", "false", "no", "off").
DEBUG_ENV = "DYNSPLAT_DEBUG"


class DynsplatError(Exception):
    """Base of dynsplat's errors about the user's input or flags; its message says what is wrong in one line."""


class DynsplatConfigError(DynsplatError, ValueError):
    """A flag or config value that cannot work (e.g. with the data it was given)."""


class InputFileError(DynsplatError, ValueError):
    """Bad input file. The message always starts with the offending file, then says what is wrong with it.

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


class ImageFileError(InputFileError):
    """An image (or mask) file that cannot be read or decoded (missing, truncated, not an image)."""


def debug_enabled() -> bool:
    """Whether ``DYNSPLAT_DEBUG`` asks for full tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def one_line(error: BaseException) -> str:
    """The message the user sees for ``error``: a single line."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return f"dynsplat error: {text or type(error).__name__}  (set {DEBUG_ENV}=1 for the traceback)"


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turns a :class:`DynsplatError` raised inside the block into ``SystemExit`` with a one-line message.

    Python prints that message on stderr, without a traceback, and exits with status 1. The original error stays
    attached as ``__cause__``; with ``DYNSPLAT_DEBUG`` set it propagates unchanged (full traceback).
    """
    try:
        yield
    except DynsplatError as err:
        if debug_enabled():
            raise
        raise SystemExit(one_line(err)) from err
