"""Packaging: entry points, package mapping, no bare `dataparsers` module, no hard-coded CUDA."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_entry_points_registered_and_loadable():
    methods = {ep.name: ep for ep in entry_points(group="nerfstudio.method_configs")}
    parsers = {ep.name: ep for ep in entry_points(group="nerfstudio.dataparser_configs")}
    assert "dynsplat-4dgs" in methods
    assert "dynsplat-dnerf" in parsers
    spec = methods["dynsplat-4dgs"].load()
    assert spec.config.method_name == "dynsplat-4dgs"
    assert parsers["dynsplat-dnerf"].load().config is not None


def test_no_bare_dataparsers_module_imported():
    code = (
        "import sys, importlib.metadata as m\n"
        "[ep.load() for g in ('nerfstudio.method_configs','nerfstudio.dataparser_configs') "
        "for ep in m.entry_points(group=g) if ep.name.startswith('dynsplat')]\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('dataparsers', 'method_configs')]\n"
        "assert not bad, bad\n"
        "import dynsplat_ns.dataparsers, dynsplat_ns.method_configs\n"
        "assert dynsplat_ns.dataparsers.__file__.replace('\\\\', '/').endswith('dataparsers/__init__.py')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_importing_package_is_cheap():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, dynsplat_ns; print('torch' in sys.modules, dynsplat_ns.__version__)"],
        check=True, capture_output=True, text=True, cwd="/",
    )
    assert out.stdout.split() == ["False", "0.1.0"]


def test_no_hard_coded_cuda_or_downloads():
    pattern = re.compile(r"\.cuda\(\)|device=\"cuda\"|urlopen|load_state_dict_from_url|hub\.load\(")
    hits = []
    for folder in ("dynsplat_ns", "dataparsers", "method_configs"):
        for path in (ROOT / folder).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and not line.strip().startswith("#"):
                    hits.append(f"{path}:{i}: {line.strip()}")
    assert not hits, hits


def test_ns_train_help_lists_methods():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ns-train"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dynsplat-4dgs" in out.stdout
