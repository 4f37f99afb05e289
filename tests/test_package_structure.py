"""Structure of the whole package: no import cycles, arrows only point down the layers, no private names of others.

The graph is read from the source with ``ast`` (nothing is imported), counting every import wherever it sits: module
level, inside functions (the usual way to hide a cycle) and under ``if TYPE_CHECKING:``. ``dataparsers/`` and
``method_configs/`` count as ``dynsplat_ns.dataparsers`` / ``dynsplat_ns.method_configs`` (their installed names).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder of each top-level part of the package.
FOLDERS = {"dynsplat_ns": ROOT / "dynsplat_ns", "dynsplat_ns.dataparsers": ROOT / "dataparsers",
           "dynsplat_ns.method_configs": ROOT / "method_configs"}  # fmt: skip

#: The layers, lowest first: a part may import its own layer's parts and lower ones, never a higher one.
#: A part is a folder of dynsplat_ns (``render``) or a module at its root (``time``).
LAYERS: list[set[str]] = [
    {"errors"},  # dynsplat's error types: one-line errors for every ns-* tool
    {"compat", "time", "rotations", "gaussians", "losses", "schedules", "video"},  # shared basics
    {"kernels", "scenes", "dataparsers"},  # compiled kernels; scene generators; dataset readers
    {"render", "checkpoints"},  # rasterize(); checkpoint files and state remapping
    {"motion"},  # geometry only: never draws images
    {"priors"},  # depth priors, motion masks, seed points
    {"models"},  # DynamicSplatModel and its parts: knows no blur type, no viewer, no training loop
    {"deblur"},  # blur components and the model composing them
    {"training", "viewer"},  # trainer, pipeline, datamanager, ranks; ns-viewer integration
    {"tools", "method_configs"},  # console scripts; nerfstudio method entry points
    {"_moved"},  # old import paths of moved modules (config.yml files of earlier runs name them)
]
#: Pairs within one layer whose arrow may only point one way (part → part it may import).
SAME_LAYER_ORDER = {("training", "viewer")}


def module_files() -> dict[str, Path]:
    """Dotted module name → source file, for every module of the package."""
    files: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if package == "dynsplat_ns" and rel.parts[0] in ("dataparsers", "method_configs"):
                continue  # symlinks in some checkouts
            parts = [p for p in rel.parts if p != "__init__"]
            files[".".join([package, *parts])] = path
    return files


def resolve(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(files: dict[str, Path]) -> dict[str, set[tuple[str, str | None]]]:
    """``{module: {(imported module, imported name or None)}}`` for every import of a dynsplat_ns module."""
    graph: dict[str, set[tuple[str, str | None]]] = {}
    for module, path in files.items():
        found: set[tuple[str, str | None]] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update((a.name, None) for a in node.names if a.name.startswith("dynsplat_ns"))
            elif isinstance(node, ast.ImportFrom):
                target = resolve(module, path, node)
                if not target or not target.startswith("dynsplat_ns"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add((sub, None) if sub in files else (target, alias.name))
        graph[module] = found
    return graph


def part(module: str) -> str:
    """The layer part of a module: its folder under dynsplat_ns, or its root module's name."""
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def layer(name: str) -> int:
    for index, parts in enumerate(LAYERS):
        if name in parts:
            return index
    raise AssertionError(f"{name!r} is in no layer of tests/test_package_structure.py: add it where it belongs")


def owner(target: str, files: dict[str, Path]) -> str | None:
    """The package module that ``target`` (a module or a package) is."""
    while target and target not in files:
        target = target.rpartition(".")[0]
    return target or None


@pytest.fixture(scope="module")
def graph():
    files = module_files()
    return files, imports(files)


def test_every_part_has_a_layer(graph):
    files, _ = graph
    for module in files:
        if part(module) != "__init__":
            layer(part(module))


def upward_arrows(files: dict[str, Path], edges: dict[str, set[tuple[str, str | None]]]) -> list[str]:
    """Every import of a part from a higher layer (or a same-layer part not allowed by ``SAME_LAYER_ORDER``)."""
    upward = []
    for module, targets in edges.items():
        src = part(module)
        for target, _ in targets:
            dst = part(owner(target, files) or target)
            if dst == "__init__" or src == dst or src == "__init__":
                continue
            if layer(dst) > layer(src) or (layer(dst) == layer(src) and (src, dst) not in SAME_LAYER_ORDER):
                upward.append(f"{module} imports {target}")
    return sorted(upward)


def test_no_arrow_points_up(graph):
    upward = upward_arrows(*graph)
    assert not upward, "imports that point up (or sideways) the layers:\n" + "\n".join(upward)


def test_no_import_cycle(graph):
    files, edges = graph
    adjacency = {m: {owner(t, files) for t, _ in ts} - {None, m} for m, ts in edges.items()}
    # a package's __init__ importing its own submodules is not a cycle of concern: drop package → own child edges
    for module, targets in adjacency.items():
        if files[module].name == "__init__.py":
            adjacency[module] = {t for t in targets if not t.startswith(module + ".")}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(adjacency.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(adjacency):
        if start not in state and (cycle := visit(start, [start])):
            pytest.fail("import cycle: " + " → ".join(cycle))


def test_no_private_name_of_another_module(graph):
    files, edges = graph
    reaching = [
        f"{module} imports {name} from {target}"
        for module, targets in edges.items()
        for target, name in targets
        if name and name.startswith("_") and not name.startswith("__") and owner(target, files) != module
    ]
    # attribute access on an imported package module: ``cpu_kernels._state``
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {
            (a.asname or a.name.split(".")[-1])
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (resolve(module, path, node) or "").startswith("dynsplat_ns")
            for a in node.names
            if f"{resolve(module, path, node)}.{a.name}" in files
        }
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
                reaching.append(f"{module} reads {node.value.id}.{node.attr}")
    assert not reaching, "private names used outside their module:\n" + "\n".join(sorted(reaching))


def test_the_checker_sees_an_upward_arrow():
    """The rule itself: models importing deblur (a higher layer) and viewer importing training are reported."""
    files = {"dynsplat_ns.models.a": Path("a.py"), "dynsplat_ns.deblur.b": Path("b.py"),
             "dynsplat_ns.viewer": Path("v.py"), "dynsplat_ns.training.c": Path("c.py")}  # fmt: skip
    edges = {"dynsplat_ns.models.a": {("dynsplat_ns.deblur.b", None)},
             "dynsplat_ns.deblur.b": {("dynsplat_ns.models.a", "X")},
             "dynsplat_ns.viewer": {("dynsplat_ns.training.c", None)},
             "dynsplat_ns.training.c": {("dynsplat_ns.viewer", None)}}  # fmt: skip
    assert upward_arrows(files, edges) == [
        "dynsplat_ns.models.a imports dynsplat_ns.deblur.b",
        "dynsplat_ns.viewer imports dynsplat_ns.training.c",
    ]
