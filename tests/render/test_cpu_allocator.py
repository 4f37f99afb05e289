"""The glibc malloc tuning of the torch backend: applied once on Linux, skipped when opted out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = (
    "import dynsplat_ns.render.cpu_allocator as m; first = m.tune_cpu_allocator(); "
    "print(first, m.tune_cpu_allocator(), m._done)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc-only")
@pytest.mark.parametrize(
    ("env", "expected"), [({}, "True True True"), ({"DYNSPLAT_MALLOPT": "0"}, "False False False")]
)
def test_tune_cpu_allocator_once_and_opt_out(env, expected):
    full_env = {k: v for k, v in os.environ.items() if k != "DYNSPLAT_MALLOPT"} | env
    out = subprocess.run([sys.executable, "-c", CHECK], env=full_env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()
