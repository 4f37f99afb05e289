"""The plugin leaves the rest of nerfstudio alone: loading it the way nerfstudio does (entry points, for every ns-*
command) changes nothing that a run of a built-in method sees.

Two subprocesses import nerfstudio's method and dataparser registries, its ns-* script modules and tyro's ns-train
parse of ``splatfacto``: one with the dynsplat entry points hidden, one with them. Everything a built-in run depends on
must be identical: the splatfacto config (as built and as parsed by ns-train), nerfstudio's functions and classes
(``Viewer.__init__`` among them; compared by the file and line of their code), the environment (PATH included),
torch's safe globals, and nothing written under the cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Imports nerfstudio as ns-train/ns-viewer/ns-eval/ns-render/ns-export do, with (argv[1] == "with") or without the
#: dynsplat entry points, and prints a JSON fingerprint of what a built-in method's run would see.
PROBE = r"""
import importlib.metadata as metadata
import inspect, json, os, sys, types

with_plugin = sys.argv[1] == "with"
if not with_plugin:  # hide dynsplat's entry points from nerfstudio's plugin discovery
    real_entry_points = metadata.entry_points

    def entry_points(**params):
        found = real_entry_points(**params)
        if isinstance(found, metadata.EntryPoints):
            return metadata.EntryPoints(ep for ep in found if not ep.value.startswith("dynsplat_ns"))
        return found

    metadata.entry_points = entry_points

import torch
import tyro
import yaml
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion, all_methods
from nerfstudio.plugins.registry import discover_methods
from nerfstudio.plugins.registry_dataparser import discover_dataparsers
import nerfstudio.scripts.train, nerfstudio.scripts.eval, nerfstudio.scripts.render, nerfstudio.scripts.exporter
import nerfstudio.scripts.viewer.run_viewer
from nerfstudio.viewer.viewer import Viewer

methods, _ = discover_methods()
dataparsers, _ = discover_dataparsers()
assert ("dynsplat-4dgs" in all_methods and "dynsplat-4dgs" in methods) == with_plugin, sorted(methods)
assert ("dynsplat-dnerf" in dataparsers) == with_plugin, sorted(dataparsers)
parsed = tyro.cli(AnnotatedBaseConfigUnion, args=["splatfacto", "--data", "scene"])


def where(obj):
    # Where a function's (or a wrapper's) code lives: a replaced function shows another file or line.
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    wrapped = "wrapped " if hasattr(obj, "__wrapped__") else ""
    if code is not None:
        return f"{wrapped}{code.co_filename}:{code.co_firstlineno}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def describe(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return repr(value)
    if inspect.isclass(value):
        members = {k: where(v) for k, v in vars(value).items() if inspect.isfunction(v) or isinstance(v, property)}
        return {"class": f"{value.__module__}.{value.__qualname__}", "members": members}
    if inspect.isfunction(value) or inspect.ismethod(value):
        return where(value)
    return None


modules = {}
for name, module in sorted(sys.modules.items()):
    if isinstance(module, types.ModuleType) and (name.startswith("nerfstudio") or name == "torch.serialization"):
        modules[name] = {k: d for k, v in list(vars(module).items()) if (d := describe(v)) is not None}

print(json.dumps({
    "splatfacto": yaml.dump(all_methods["splatfacto"]),
    "splatfacto_parsed": yaml.dump(parsed),
    "viewer_init": where(Viewer.__init__),
    "environ": dict(os.environ),
    "safe_globals": sorted(f"{getattr(g, '__module__', '?')}.{getattr(g, '__qualname__', repr(g))}"
                           for g in torch.serialization.get_safe_globals()),
    "modules": modules,
}))
"""


#: Module attributes the baseline ("without") process replaces itself to hide the plugin.
HIDING = {"nerfstudio.plugins.registry.entry_points", "nerfstudio.plugins.registry_dataparser.entry_points"}


def probe(tmp_path: Path) -> tuple[dict, dict]:
    """The fingerprints (without the plugin, with it); both processes run at once, in the same environment."""
    cache = tmp_path / "cache"  # XDG_CACHE_HOME of both (the plugin's ffmpeg link used to go there)
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "NERFSTUDIO_METHOD_CONFIGS"}
    env.update({"TORCHDYNAMO_DISABLE": "1", "XDG_CACHE_HOME": str(cache), "PATH": f"{Path(sys.executable).parent}"
                f"{os.pathsep}/usr/bin{os.pathsep}/bin"})  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE, which],
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=(tmp_path / f"{which}.json").open("w"),
            stderr=(tmp_path / f"{which}.log").open("w"),
        )  # fmt: skip
        for which in ("without", "with")
    ]
    results = []
    for proc, which in zip(procs, ("without", "with"), strict=True):
        assert proc.wait(timeout=300) == 0, (tmp_path / f"{which}.log").read_text()[-5000:]
        results.append(json.loads((tmp_path / f"{which}.json").read_text().strip().splitlines()[-1]))
    results[1]["cache_files"] = sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))
    return results[0], results[1]


def test_loading_the_plugin_changes_nothing_for_builtin_methods(tmp_path):
    from importlib.metadata import entry_points

    if "dynsplat-4dgs" not in entry_points(group="nerfstudio.method_configs").names:
        pytest.skip("dynsplat-ns is not pip-installed (entry points unavailable)")
    without, with_ = probe(tmp_path)

    assert with_["splatfacto"] == without["splatfacto"]
    assert with_["splatfacto_parsed"] == without["splatfacto_parsed"]
    assert with_["viewer_init"] == without["viewer_init"], "nerfstudio's Viewer.__init__ was replaced"
    assert with_["environ"].get("PATH") == without["environ"].get("PATH")
    assert with_["environ"] == without["environ"]
    assert with_["safe_globals"] == without["safe_globals"], "torch safe globals were added"
    ours = [name for name in with_["cache_files"] if "dynsplat" in name]
    assert not ours, f"the plugin wrote under the cache folder: {ours}"
    changed = {
        f"{name}.{attr}"
        for name, attrs in without["modules"].items()
        for attr, value in attrs.items()
        if name in with_["modules"] and with_["modules"][name].get(attr, value) != value
    } - HIDING  # the baseline process's own filter of the entry points
    assert not changed, f"nerfstudio/torch attributes changed by the plugin: {sorted(changed)[:20]}"
