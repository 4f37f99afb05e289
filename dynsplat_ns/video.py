"""Video support without a system ffmpeg: expose imageio-ffmpeg's static binary as ``ffmpeg`` for ``ns-render``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _link_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "dynsplat_ns" / "bin"


def ensure_ffmpeg() -> str | None:
    """Makes ``ffmpeg`` findable on PATH in this process when the system has none.

    ``ns-render`` checks ``shutil.which("ffmpeg")`` and mediapy runs ``ffmpeg``; imageio-ffmpeg (a dependency) ships
    a static binary. We link it as ``ffmpeg`` under ``~/.cache/dynsplat_ns/bin`` and append that folder to PATH.

    Returns:
        The ffmpeg executable that will be used, or None when none is available.
    """
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe = Path(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return None
    link_dir = _link_dir()
    link = link_dir / "ffmpeg"
    try:
        link_dir.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and Path(os.readlink(link)) != exe:
            link.unlink()
        if not link.exists():
            link.symlink_to(exe)
    except OSError:
        return None
    os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + str(link_dir)
    return shutil.which("ffmpeg")
