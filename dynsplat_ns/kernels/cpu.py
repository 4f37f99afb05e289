"""Lazy loader of the compiled CPU kernels (``csrc/*.cpp``, one C++/OpenMP torch extension): the rasterizer's
projection, block lists and compositor, and the HexPlane feature lookup.

Nothing is compiled at import time. The first call of :func:`load_cpu_kernels` in a process builds the extension with
``torch.utils.cpp_extension.load`` (about a minute, once per user and source/flag version: the artefact is cached in
torch's extensions directory, ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``) or loads the cached build
(about a second). When that is impossible (no C++ compiler or ninja, a failed build, opted out) it returns None and,
unless opted out, warns once; callers then use the pure-torch backend.

Opt out with the environment variable ``DYNSPLAT_CPU_KERNELS=0``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["CXX_FLAGS", "OPT_OUT_ENV", "SOURCES", "cpu_kernels_available", "load_cpu_kernels", "reset_cpu_kernels"]

#: Set to "0" to never build or use the compiled CPU kernels.
OPT_OUT_ENV = "DYNSPLAT_CPU_KERNELS"
#: The C++ sources of the extension (torch bindings; torch-free kernels, which compile in seconds). The build's cache
#: key hashes them and the headers next to them (a changed file gets a fresh build directory).
SOURCES = tuple(
    Path(__file__).with_name("csrc") / name
    for name in (
        "bindings.cpp", "projection_kernels.cpp", "lists_kernels.cpp", "composite_kernels.cpp", "composite_rows.cpp",
        "hexplane_kernels.cpp",
    )
)
#: Compiler flags. -fno-trapping-math and -ffinite-math-only let GCC vectorise the per-pixel loops' selects and
#: min (inputs are finite); neither changes a result.
CXX_FLAGS = ("-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only")

_state: dict[str, object] = {"tried": False, "module": None, "error": None}
_lock = threading.Lock()  # the viewer renders from its own thread: one build attempt per process


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() in ("0", "false", "no", "off")


def _cpu_flags() -> list[str]:
    """Vector ISA flags: AVX2 + FMA where this x86-64 CPU has them (part of the cache key), else none."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= set(flags) else []


def _build_key(flags: list[str]) -> str:
    """Cache key of a build: torch version, flags and the contents of every file in ``csrc`` (headers included), so
    that checkouts with different kernels never share (and rebuild back and forth) one build directory."""
    digest = hashlib.sha1(" ".join([torch.__version__, *flags]).encode())
    for path in sorted(SOURCES[0].parent.glob("*")):
        if path.suffix in (".cpp", ".h"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def _build() -> ModuleType:
    from torch.utils import cpp_extension  # lazy: pulls in setuptools

    missing = [str(path) for path in SOURCES if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"C++ sources not installed: {', '.join(missing)}")
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} is not on PATH)")
    cpp_extension.verify_ninja_availability()
    flags = [*CXX_FLAGS, *_cpu_flags()]
    name = f"dynsplat_cpu_kernels_{_build_key(flags)}"
    build_dir = Path(cpp_extension._get_build_directory(name, False))  # honours $TORCH_EXTENSIONS_DIR
    if not (build_dir / f"{name}.so").exists():  # say why the first call pauses
        print(f"dynsplat: compiling the CPU kernels into {build_dir} (once per user, about a minute)", file=sys.stderr)
    sources = [str(path) for path in SOURCES]
    return cpp_extension.load(name=name, sources=sources, extra_cflags=flags, extra_ldflags=["-fopenmp"], verbose=False)


def load_cpu_kernels() -> ModuleType | None:
    """The compiled kernels, built or loaded on the first call of the process; None when unavailable.

    Returns:
        The extension module (``project_forward``, ``project_backward``, ``block_lists``, ``composite_forward``,
        ``composite_backward``, ``hexplane_forward``, ``hexplane_backward``), or None when opted out
        (``DYNSPLAT_CPU_KERNELS=0``) or when the build failed (then one ``RuntimeWarning`` per process says why).
    """
    if _opted_out():
        return None
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["module"] = _build()
                except Exception as err:  # any build/load failure means "fall back to torch"
                    _state["error"] = f"{type(err).__name__}: {str(err).strip()[-800:]}"
                    warnings.warn(
                        f"dynsplat: the compiled CPU kernels are unavailable ({_state['error']}); using the "
                        f"pure-torch rasterizer and HexPlane lookup (set {OPT_OUT_ENV}=0 to silence this)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                _state["tried"] = True
    return _state["module"]  # type: ignore[return-value]


def cpu_kernels_available() -> bool:
    """Whether the compiled CPU kernels can be used (builds or loads them on the first call of the process)."""
    return load_cpu_kernels() is not None


def reset_cpu_kernels() -> None:
    """Forget the outcome of the last load attempt (tests; a later call tries again)."""
    _state.update(tried=False, module=None, error=None)
