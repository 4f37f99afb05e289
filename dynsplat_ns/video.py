"""Video support without a system ffmpeg: expose imageio-ffmpeg's static binary as ``ffmpeg`` for ``ns-render``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: The module of ``ns-render``; :func:`ensure_ffmpeg_for_ns_render` acts only in processes that imported it.
NS_RENDER_MODULE = "nerfstudio.scripts.render"


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


def ensure_ffmpeg_for_ns_render() -> str | None:
    """:func:`ensure_ffmpeg`, only inside ``ns-render`` (the one ``ns-*`` command that writes videos); elsewhere
    nothing is linked and PATH stays as it is. Called when a dynsplat pipeline is set up, which ``ns-render`` does
    (in ``eval_setup``) before it looks for ffmpeg.

    Returns:
        The ffmpeg executable ``ns-render`` will use, or None (none available, or not inside ``ns-render``).
    """
    if NS_RENDER_MODULE not in sys.modules:
        return None
    return ensure_ffmpeg()
