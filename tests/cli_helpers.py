"""Helpers of the command-line tests: the flags ``ns-train`` shows, and parsing as ``ns-train`` does."""

from __future__ import annotations

import contextlib
import io
import os
import re

import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

_FLAG = re.compile(r"│ (--[a-z0-9][a-z0-9._-]*)")


def cli_flags(*args: str) -> set[str]:
    """The flags in ``ns-train ARGS --help`` (tyro's help; one flag per ``│ --flag`` row)."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")  # utf-8: tyro draws its boxes (and flag rows) with │
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "240"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            tyro.cli(AnnotatedBaseConfigUnion, args=[*args, "--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    out.flush()
    return set(_FLAG.findall(raw.getvalue().decode())) - {"--help"}


def parse(*args: str):
    """``ns-train ARGS`` parsed as nerfstudio's ``ns-train`` does, with its ``--data``/``--prompt`` aliases."""
    config = tyro.cli(AnnotatedBaseConfigUnion, args=list(args))
    if config.data:  # nerfstudio/scripts/train.py main()
        config.pipeline.datamanager.data = config.data
    if config.prompt:
        config.pipeline.model.prompt = config.prompt
    return config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for an ns-viewer started by a test)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(process, port: int, log_path, listening, timeout: float = 300.0) -> None:
    """Waits until ``listening(port)`` holds for a started ``ns-viewer`` ``process``; fails with its log when it exits
    first or ``timeout`` seconds pass."""
    import time

    deadline = time.monotonic() + timeout
    while not listening(port):
        assert process.poll() is None, f"ns-viewer exited with {process.returncode}:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"ns-viewer never listened on {port}:\n{log_path.read_text()}"
        time.sleep(0.25)
