"""File access shared by the dataparsers: folder checks, JSON loading and image-folder listing.

A leaf module (it imports only :mod:`.errors`): every problem is a :class:`~.errors.DataParserError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import DataParserError

#: Image extensions picked up from image folders (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def require_dir(path: Path, what: str = "data folder") -> Path:
    """Return ``path`` if it is a directory, else raise :class:`DataParserError` naming it."""
    path = Path(path)
    if not path.exists():
        raise DataParserError(path, f"{what} not found")
    if not path.is_dir():
        raise DataParserError(path, f"{what} is not a directory")
    return path


def load_json(path: Path) -> Any:
    """Read a JSON file.

    Raises:
        DataParserError: The file is missing, unreadable or not valid JSON (with line and column).
    """
    path = Path(path)
    if not path.exists():
        raise DataParserError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataParserError(path, f"cannot read file: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataParserError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def list_images(folder: Path, what: str = "image folder") -> list[Path]:
    """Image files (png/jpg/jpeg, any case) in ``folder``, sorted by name as LLFF's ``imgs2poses`` orders them.

    Raises:
        DataParserError: The folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataParserError(folder, f"{what} not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataParserError(folder, f"{what} holds no images (.png/.jpg/.jpeg)")
    return files
