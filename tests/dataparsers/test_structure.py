"""Structure of the dataparsers package: an acyclic import graph, leaf modules that stay leaves, no dead names.

The graph is read from the source with ``ast`` (nothing is imported), counting every import wherever it sits:
module level, inside functions (the usual way to hide a cycle) and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import dynsplat_ns.dataparsers as package

PACKAGE = "dynsplat_ns.dataparsers"
PACKAGE_DIR = Path(package.__file__).resolve().parent
#: Modules that may import nothing from the package but the error type (small, self-contained helpers).
LEAVES = {"errors": set(), "files": {"errors"}, "times": set(), "images": {"errors"}, "points": {"errors"}}


def _modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(PACKAGE_DIR.glob("*.py"))
        if path.stem != "__init__"
    }


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """``{module: {package modules it imports}}`` over every import statement anywhere in each module."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:  # from .x import y / from . import x
                    base = node.module
                elif node.level == 0 and node.module and node.module.startswith(PACKAGE):
                    base = node.module[len(PACKAGE) :].lstrip(".") or None
                else:
                    continue
                if base is None:  # from . import x (or from dynsplat_ns.dataparsers import x): x is a module
                    targets = [alias.name for alias in node.names]
                else:
                    targets = [base.split(".")[0]]
            elif isinstance(node, ast.Import):
                targets = [
                    alias.name[len(PACKAGE) + 1 :].split(".")[0]
                    for alias in node.names
                    if alias.name.startswith(PACKAGE + ".")
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_graph_reader_sees_hidden_imports():
    """The reader counts function-level, TYPE_CHECKING and absolute imports, so a cycle cannot hide from it."""
    source = {
        "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
        "b": "def f():\n    from dynsplat_ns.dataparsers.c import g\n",
        "c": "import dynsplat_ns.dataparsers.d\n",
        "d": "def h():\n    from . import a\n",
    }
    graph = import_graph({name: ast.parse(text) for name, text in source.items()})
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "d", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_dataparser_imports_are_acyclic():
    graph = import_graph(_modules())
    assert {"base", "outputs", "subsets", "dnerf", "files", "times"} <= set(graph)  # the reader found the package
    assert "outputs" in graph["base"] and "errors" in graph["files"]  # ... and its imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in dynsplat_ns.dataparsers: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_modules_stay_leaves(leaf: str):
    graph = import_graph(_modules())
    assert graph[leaf] <= LEAVES[leaf], f"{leaf}.py imports {sorted(graph[leaf] - LEAVES[leaf])} from the package"


def test_format_readers_are_not_imported_by_shared_modules():
    """Shared modules (base and below) never import a format (D-NeRF, LLFF, D2RF, EyefulTower, DyCheck)."""
    graph = import_graph(_modules())
    formats = {"dnerf", "llff", "d2rf", "eyeful", "dycheck"}
    assert formats <= set(graph), f"format modules not found: {sorted(formats - set(graph))}"
    for name, imports in graph.items():
        if name not in formats:
            assert not imports & formats, f"{name}.py imports the format module(s) {sorted(imports & formats)}"


def test_one_dnerf_reader_module():
    assert importlib.util.find_spec(f"{PACKAGE}.dnerf_scene") is None
    from dynsplat_ns.dataparsers import dnerf

    assert dnerf.DNeRF.read_scene.__module__ == dnerf.__name__


def test_dead_names_are_gone(dnerf_scene: Path):
    from dynsplat_ns.dataparsers.base import DynsplatDataParser
    from dynsplat_ns.dataparsers.dnerf import DNeRF, DNeRFDataParserConfig

    for name in ("prepare_images", "seed_ply_path", "seed_points", "common_metadata"):
        assert not hasattr(DynsplatDataParser, name), name
    parser = DNeRFDataParserConfig(data=dnerf_scene).setup()
    assert isinstance(parser, DNeRF)
    assert not hasattr(parser, "_splits") and not hasattr(DNeRF, "_split_meta")


def test_split_names_are_defined_once():
    """``SPLITS`` (and the image extensions) live in one module each; others import them."""
    defined: dict[str, list[str]] = {"SPLITS": [], "IMAGE_EXTENSIONS": [], "IMAGE_SUFFIXES": []}
    for name, tree in _modules().items():
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in defined:
                    defined[target.id].append(name)
    assert defined == {"SPLITS": ["scene"], "IMAGE_EXTENSIONS": ["files"], "IMAGE_SUFFIXES": []}


def test_modules_are_small():
    for path in PACKAGE_DIR.glob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines < 500, f"{path.name} has {lines} lines"
