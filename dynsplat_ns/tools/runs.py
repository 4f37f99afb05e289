"""Shared by the dynsplat tools: find and load a trained run (config.yml, checkpoint, cameras) with clear errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class ToolError(Exception):
    """A problem with the user's input: printed as ``error: ...`` without a traceback (exit status 2)."""


def run_tool(fn: Callable[[], Any]) -> int:
    """Run a tool's body; :class:`ToolError` (and dataparser errors) become one ``error:`` line and exit status 2."""
    try:
        fn()
    except ToolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def resolve_config(path: Path | str) -> Path:
    """The ``config.yml`` of a run given as the run folder or the file itself.

    Raises:
        ToolError: Nothing there, or no config.yml (not a folder written by ns-train).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ToolError(f"{path}: no such run folder (pass the folder ns-train wrote, holding config.yml)")
    config = path / "config.yml" if path.is_dir() else path
    if not config.is_file():
        raise ToolError(f"{path}: not a run folder: {config.name} not found (ns-train writes config.yml there)")
    return config


def load_config(path: Path | str):
    """The run's TrainerConfig, with its output paths pointed at the run folder when it was moved.

    Args:
        path: Run folder or its config.yml.

    Raises:
        ToolError: Not a run folder, or config.yml is not a nerfstudio TrainerConfig.
    """
    import yaml
    from nerfstudio.engine.trainer import TrainerConfig

    import dynsplat_ns.training.pipeline  # noqa: F401  (checkpoint loading shims)

    config_path = resolve_config(path)
    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    except Exception as err:  # yaml raises many types; say which file
        raise ToolError(f"{config_path}: cannot read the run config: {err}") from None
    if not isinstance(config, TrainerConfig):
        raise ToolError(f"{config_path}: not a nerfstudio run config (ns-train writes one per run)")
    relocate(config, config_path.parent)
    return config


def relocate(config, run_dir: Path) -> None:
    """Point ``config``'s output folder at ``run_dir`` when the run was moved (or trained from another folder)."""
    run_dir = run_dir.resolve()
    try:
        if Path(config.get_base_dir()).resolve() == run_dir:
            return
    except (OSError, RuntimeError):
        pass
    if run_dir.parent.name == config.method_name and len(run_dir.parents) >= 3:
        config.output_dir = run_dir.parents[2]
        config.experiment_name = run_dir.parents[1].name
        config.timestamp = run_dir.name


def latest_checkpoint(config) -> Path:
    """The newest ``step-*.ckpt`` of a run.

    Raises:
        ToolError: The run has no checkpoint yet.
    """
    ckpt_dir = Path(config.get_checkpoint_dir())
    ckpts = sorted(ckpt_dir.glob("step-*.ckpt")) if ckpt_dir.is_dir() else []
    if not ckpts:
        raise ToolError(f"{ckpt_dir}: no checkpoint (step-*.ckpt); train longer or check --steps-per-save")
    return max(ckpts, key=lambda p: int(p.stem.split("-")[-1]))


def checkpoint_step(path: Path | str) -> int | None:
    """Training step in a checkpoint file name (``step-000000123.ckpt`` → 123)."""
    try:
        return int(Path(path).stem.split("-")[-1])
    except ValueError:
        return None


def load_pipeline(path: Path | str, test_mode: str = "inference"):
    """``(config, pipeline, checkpoint, step)`` through nerfstudio's ``eval_setup`` (model in eval mode).

    Args:
        path: Run folder or its config.yml.
        test_mode: 'inference' (no eval images), 'test' or 'val'.
    """
    from nerfstudio.utils.eval_utils import eval_setup

    config_path = resolve_config(path)
    load_config(config_path)  # clear errors before nerfstudio's asserts
    run_dir = config_path.parent

    def update(config):
        relocate(config, run_dir)
        latest_checkpoint(config)
        return config

    return eval_setup(config_path, test_mode=test_mode, update_config_callback=update)


def dataparser_outputs(config, split: str = "train"):
    """Run the run's dataparser (as its datamanager does) for one split; cameras are in nerfstudio's world.

    Raises:
        ToolError: The dataset cannot be read (e.g. it moved); the message says which and how to fix it.
    """
    datamanager = config.pipeline.datamanager
    parser_config = datamanager.dataparser
    if getattr(datamanager, "data", None) is not None:
        parser_config.data = Path(datamanager.data)
    try:
        return parser_config.setup().get_dataparser_outputs(split=split)
    except Exception as err:  # dataparsers raise their own error types; keep the message, drop the traceback
        raise ToolError(
            f"cannot read the run's {split} split from {getattr(parser_config, 'data', '?')}: {err} "
            "(the dataset must be where training found it)"
        ) from None


@dataclass
class CameraSet:
    """Cameras as plain arrays in nerfstudio's world (OpenGL: x right, y up, looking down −z)."""

    c2w: np.ndarray
    """[N, 3, 4] camera-to-world."""
    times: np.ndarray | None
    """[N] times in [0, 1], or None without times."""
    names: list[str]
    """[N] image names (``parent/stem``) or labels."""
    width: np.ndarray
    """[N] image widths in pixels."""
    height: np.ndarray
    """[N] image heights in pixels."""
    fy: np.ndarray
    """[N] vertical focal lengths in pixels."""

    @property
    def positions(self) -> np.ndarray:
        """[N, 3] camera centres."""
        return self.c2w[:, :3, 3]

    @property
    def forwards(self) -> np.ndarray:
        """[N, 3] unit viewing directions (−z axis)."""
        f = -self.c2w[:, :3, 2]
        return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)

    def __len__(self) -> int:
        return int(self.c2w.shape[0])


def camera_set(cameras, image_filenames=None) -> CameraSet:
    """A :class:`CameraSet` from nerfstudio ``Cameras`` (and the split's image files for names)."""
    from dynsplat_ns.training.pipeline import image_key

    n = int(cameras.camera_to_worlds.shape[0])
    times = None if cameras.times is None else cameras.times.reshape(-1).double().cpu().numpy()
    names = (
        [image_key(f) for f in image_filenames] if image_filenames is not None else [f"camera_{i}" for i in range(n)]
    )
    return CameraSet(
        c2w=cameras.camera_to_worlds.double().cpu().numpy().reshape(n, 3, 4),
        times=times,
        names=names,
        width=cameras.width.reshape(-1).cpu().numpy().astype(int),
        height=cameras.height.reshape(-1).cpu().numpy().astype(int),
        fy=cameras.fy.reshape(-1).double().cpu().numpy(),
    )


def split_cameras(config, split: str = "train") -> CameraSet:
    """One split's cameras of a run (by running its dataparser)."""
    outputs = dataparser_outputs(config, split)
    return camera_set(outputs.cameras, outputs.image_filenames)


def gaussian_centroid(config, min_opacity: float = 0.1) -> np.ndarray:
    """Centroid of the run's canonical Gaussians (those with opacity ≥ ``min_opacity``; all if none are).

    Raises:
        ToolError: No checkpoint, or it has no Gaussian means.
    """
    from dynsplat_ns.compat import numpy_scalar_types

    ckpt = latest_checkpoint(config)
    with torch.serialization.safe_globals(numpy_scalar_types()):  # checkpoints written before plain_numbers()
        state = torch.load(ckpt, map_location="cpu")["pipeline"]
    means = state.get("_model.gauss_params.means")
    if means is None or means.numel() == 0:
        raise ToolError(f"{ckpt}: no Gaussians in the checkpoint (is this a splatting run?)")
    opacities = state.get("_model.gauss_params.opacities")
    keep = torch.ones(means.shape[0], dtype=torch.bool)
    if opacities is not None:
        keep = torch.sigmoid(opacities.reshape(-1).float()) >= min_opacity
        if not bool(keep.any()):
            keep[:] = True
    return means[keep].double().mean(dim=0).numpy()


def check_time(value: float, name: str = "time") -> float:
    """``value`` if it is a finite time in [0, 1], else :class:`ToolError` naming the option."""
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ToolError(f"{name}={value!r}: times must lie in [0, 1] (dynsplat normalises every dataset's times)")
    return float(value)
