"""The spec of a ``dynsplat-sweep``: methods × scenes × flag grids × step budgets, read from YAML or JSON.

A spec (YAML; JSON is YAML too)::

    name: dnerf                      # names the default output folder (sweeps/NAME-PROFILE)
    split: val                       # what ns-eval scores: test (default) or val (D-NeRF's transforms_val.json)
    steps: [3000]                    # one or several step budgets (--max-num-iterations)
    args: [--machine.device-type, cpu]   # ns-train flags of every run (before the dataparser)
    data_root: ../../../shared/data/dnerf   # scene folders are relative to it (itself relative to this file)
    scene_args: [--downscale-factor, 4]     # dataparser flags of every scene
    methods:                         # label: ns-train method, or {method, args, grid}
      4dgs: dynsplat-4dgs
      som: {method: dynsplat-som, grid: {--pipeline.model.motion.num-bases: [10, 20]}}
      static: {method: dynsplat-4dgs, args: [--pipeline.model.disable-motion, "True"]}
    scenes:                          # label: folder, or {data, dataparser (default dynsplat-dnerf), args}
      hook: hook
    grid:                            # every combination of these flags' values, for every method
      --pipeline.model.opacity-reg: [0.01, 0.003]
    reference:                       # optional: published PSNR printed beside the results
      label: D-NeRF (400²)
      psnr: {hook: 29.25}
    profiles:                        # optional: named overrides of the keys above (--profile NAME)
      quick: {steps: [3000], scene_args: [--downscale-factor, 4]}

A grid value that is a list becomes several arguments (``--pipeline.model.motion.resolution: [[8, 8, 8, 6]]``);
booleans are written ``True``/``False`` as tyro reads them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynsplat_ns.tools.runs import ToolError

#: Keys a spec (and a profile) may hold.
SPEC_KEYS = {"name", "split", "steps", "args", "data_root", "scene_args", "methods", "scenes", "grid", "reference"}
PROFILE_KEYS = SPEC_KEYS - {"name"}


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: a method (with a grid point) on a scene at a step budget."""

    scene: str
    """Scene label (from the spec)."""
    method: str
    """Method label (from the spec)."""
    variant: str
    """Grid point label (``default`` without grid flags), e.g. ``opacity-reg=0.01``."""
    steps: int
    """--max-num-iterations."""
    ns_method: str
    """The ns-train method (e.g. dynsplat-som)."""
    train_args: tuple[str, ...]
    """ns-train flags before the dataparser: common, method and grid ones."""
    dataparser: str
    """The dataparser subcommand (e.g. dynsplat-dnerf)."""
    data: Path
    """Scene folder."""
    dataparser_args: tuple[str, ...]
    """Dataparser flags after ``--data``."""

    @property
    def key(self) -> str:
        """Folder name of the cell: ``scene__method__variant__steps`` (file-name safe)."""
        return safe_name(f"{self.scene}__{self.method}__{self.variant}__{self.steps}")


@dataclass
class SweepSpec:
    """A parsed spec: its cells, split and the optional published reference."""

    name: str
    split: str
    cells: list[Cell]
    reference_label: str | None
    reference_psnr: dict[str, float]


def safe_name(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._=+,-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._=+,-]", "_", text)


def arg_text(value: Any) -> list[str]:
    """Command-line words of a spec value (lists become several words; booleans True/False)."""
    if isinstance(value, (list, tuple)):
        return [word for item in value for word in arg_text(item)]
    if isinstance(value, bool):
        return ["True" if value else "False"]
    return [str(value)]


def _words(value: Any, where: str, source: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ToolError(f"{source}: {where} must be a list of command-line words, got {value!r}")
    return tuple(arg_text(value))


def _grid_points(grid: Any, where: str, source: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Every combination of a ``{flag: [values]}`` grid as (label, words); ``[("default", ())]`` without flags."""
    if grid is None or grid == {}:
        return [("default", ())]
    if not isinstance(grid, dict):
        raise ToolError(f"{source}: {where} must map flags to lists of values, got {grid!r}")
    axes = []
    for flag, values in grid.items():
        if not isinstance(flag, str) or not flag.startswith("--"):
            raise ToolError(f"{source}: {where}: {flag!r} is not a flag (it must start with --)")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ToolError(f"{source}: {where}: {flag} has no values")
        short = flag.lstrip("-").split(".")[-1]
        axes.append([(f"{short}={'x'.join(arg_text(v))}", (flag, *arg_text(v))) for v in values])
    return [(",".join(label for label, _ in combo), tuple(w for _, words in combo for w in words))
            for combo in itertools.product(*axes)]  # fmt: skip


def _steps(value: Any, source: Path) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ToolError(f"{source}: steps must be a positive whole number or a list of them, got {value!r}")
    return [int(v) for v in values]


def load_spec_file(path: Path) -> dict:
    """The spec file's mapping (YAML or JSON).

    Raises:
        ToolError: Missing, unreadable or not a mapping.
    """
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ToolError(f"{path}: no such sweep spec (a YAML or JSON file)")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ToolError(f"{path}: cannot read the sweep spec: {err}") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path}: a sweep spec must be a mapping (methods, scenes, steps, ...)")
    return data


def parse_spec(data: dict, source: Path, profile: str | None = None, data_root: Path | None = None) -> SweepSpec:
    """Cells of a spec mapping (see the module docstring), with ``profile``'s overrides applied.

    Args:
        data: The spec mapping.
        source: The spec file (relative paths start at its folder; named in errors).
        profile: A key of ``profiles`` whose values replace the top-level ones.
        data_root: Replaces the spec's ``data_root``.

    Raises:
        ToolError: Unknown keys, a missing profile, methods or scenes; a malformed value.
    """
    data = dict(data)
    profiles = data.pop("profiles", None) or {}
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise ToolError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(SPEC_KEYS))})")
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ToolError(f"{source}: no profile {profile!r} (profiles: {known})")
        override = profiles[profile] or {}
        bad = sorted(set(override) - PROFILE_KEYS)
        if bad:
            raise ToolError(f"{source}: profile {profile!r}: unknown key(s) {', '.join(bad)}")
        data.update(override)
    split = data.get("split", "test")
    if split not in ("test", "val"):
        raise ToolError(f"{source}: split must be 'test' or 'val', got {split!r}")
    steps = _steps(data.get("steps", 3000), source)
    common = _words(data.get("args"), "args", source)
    scene_args = _words(data.get("scene_args"), "scene_args", source)
    root = data_root if data_root is not None else Path(str(data.get("data_root", ".")))
    root = root if root.is_absolute() else (source.parent / root)
    global_grid = _grid_points(data.get("grid"), "grid", source)

    methods = data.get("methods")
    scenes = data.get("scenes")
    if not isinstance(methods, dict) or not methods:
        raise ToolError(f"{source}: methods must map labels to ns-train methods (e.g. som: dynsplat-som)")
    if not isinstance(scenes, dict) or not scenes:
        raise ToolError(f"{source}: scenes must map labels to scene folders (e.g. hook: hook)")

    parsed_scenes = []
    for label, entry in scenes.items():
        entry = {"data": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
            raise ToolError(f"{source}: scene {label!r} needs a data folder (a string, or {{data: ...}})")
        folder = Path(entry["data"]).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        parser = str(entry.get("dataparser", "dynsplat-dnerf"))
        words = scene_args + _words(entry.get("args"), f"scene {label!r} args", source)
        if split == "val":
            words += ("--eval-split", "val")
        parsed_scenes.append((str(label), parser, folder.resolve(), words))

    cells = []
    for m_label, entry in methods.items():
        entry = {"method": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
            raise ToolError(f"{source}: method {m_label!r} needs an ns-train method (a string, or {{method: ...}})")
        m_args = _words(entry.get("args"), f"method {m_label!r} args", source)
        m_grid = _grid_points(entry.get("grid"), f"method {m_label!r} grid", source)
        for (g_label, g_words), (mg_label, mg_words) in itertools.product(global_grid, m_grid):
            labels = [x for x in (g_label, mg_label) if x != "default"]
            variant = ",".join(labels) or "default"
            for s_label, parser, folder, words in parsed_scenes:
                for n in steps:
                    cells.append(Cell(
                        scene=s_label, method=str(m_label), variant=variant, steps=n, ns_method=entry["method"],
                        train_args=common + m_args + g_words + mg_words, dataparser=parser, data=folder,
                        dataparser_args=words,
                    ))  # fmt: skip
    keys = [c.key for c in cells]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ToolError(f"{source}: labels give the same cell folder twice: {', '.join(dupes)}")
    reference = data.get("reference") or {}
    ref_psnr = reference.get("psnr", {}) if isinstance(reference, dict) else {}
    if not isinstance(ref_psnr, dict):
        raise ToolError(f"{source}: reference.psnr must map scene labels to numbers")
    name = str(data.get("name", Path(source).stem))
    return SweepSpec(
        name=name if profile is None else f"{name}-{profile}",
        split=split,
        cells=cells,
        reference_label=(reference.get("label") if isinstance(reference, dict) else None) or None,
        reference_psnr={str(k): float(v) for k, v in ref_psnr.items()},
    )
