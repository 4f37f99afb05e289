"""Crash-safe checkpoints for dynsplat runs: atomic writes, and resume skips an unreadable newest checkpoint.

nerfstudio's ``Trainer.save_checkpoint`` writes ``step-N.ckpt`` in place, so a crash or SIGKILL during the write leaves
a truncated newest checkpoint, and ``--load-dir`` (which always picks the newest) then fails. :class:`CheckpointMixin`
(mixed into :class:`dynsplat_ns.training.trainer.DynsplatTrainer`) writes each checkpoint to a temporary file in the
same folder
and renames it into place, and on resume falls back past checkpoints that cannot be read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from nerfstudio.utils.decorators import check_main_thread
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.compat import plain_numbers
from dynsplat_ns.errors import DynsplatError, exit_on_user_error

#: A complete checkpoint's file name (nerfstudio's format, ``step-{step:09d}.ckpt``).
CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.ckpt$")
#: A temporary file of :func:`save_atomically`. nerfstudio's ``eval_setup`` reads the step of every file in the folder
#: as the text between the first ``-`` and the first ``.``: this name reads as a negative step, so a leftover temporary
#: file (from a killed writer) never counts as the newest checkpoint there.
TEMP_NAME = re.compile(r"^step--\d+\.\d+\.tmp$")


class CheckpointError(DynsplatError):
    """A checkpoint that was asked for cannot be loaded. The message names the file and says what is wrong."""


def checkpoint_name(step: int) -> str:
    """nerfstudio's file name of the checkpoint of ``step``."""
    return f"step-{step:09d}.ckpt"


def temp_name(step: int) -> str:
    """Name of the temporary file the checkpoint of ``step`` is written to by this process (see ``TEMP_NAME``)."""
    return f"step--{step:09d}.{os.getpid()}.tmp"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The complete-looking checkpoints in ``folder`` as ``(step, path)``, oldest first; temporary files and anything
    else not named like a checkpoint are ignored."""
    found = []
    for path in Path(folder).iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    """Makes the folder's entries (a rename) durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """``torch.save(state, path)`` such that ``path`` is either absent or complete, whenever the process dies.

    The state is written to a temporary file in the same folder, flushed and fsynced, renamed over ``path``
    (``os.replace``, atomic on one file system), and the folder is fsynced so the rename survives a power loss.
    On an error the temporary file is removed and the error raised.
    """
    path = Path(path)
    match = CHECKPOINT_NAME.match(path.name)
    tmp = path.with_name(temp_name(int(match.group(1))) if match else f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_stale_temp_files(folder: Path) -> None:
    """Removes the temporary files that killed writers left in ``folder`` (this process's writes are complete)."""
    for path in Path(folder).iterdir():
        if TEMP_NAME.match(path.name):
            path.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` of a checkpoint on CPU.

    Raises:
        CheckpointError: The file does not exist or cannot be read (truncated by a crash, corrupt, not a checkpoint);
            the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ... per damage
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: checkpoint cannot be read (truncated or corrupt? {reason})") from err
    if not isinstance(state, dict) or "step" not in state or "pipeline" not in state:
        raise CheckpointError(f"{path}: not a nerfstudio checkpoint (no 'step'/'pipeline' entries)")
    return state


def read_latest_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The newest readable checkpoint in ``folder`` and its state; each unreadable newer one is skipped with one
    warning that names it.

    Raises:
        CheckpointError: The folder holds no checkpoint, or none of them can be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder does not exist")
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(f"{folder}: no checkpoint (step-*.ckpt) in this folder")
    skipped: list[str] = []
    for _, path in reversed(found):
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            warning = f"Warning: skipping {err}; trying the previous one"
            CONSOLE.print(warning, style="bold yellow", markup=False, soft_wrap=True)
            skipped.append(str(err))
            continue
        return path, state
    raise CheckpointError(f"{folder}: no readable checkpoint ({'; '.join(skipped)})")


class CheckpointMixin:
    """Overrides of nerfstudio's ``Trainer.save_checkpoint`` / ``Trainer._load_checkpoint`` for crash safety.

    * Saving writes atomically (:func:`save_atomically`) with plain Python numbers instead of numpy scalars (so
      ``torch.load(weights_only=True)`` reads the file with no extra safe globals), then keeps nerfstudio's
      ``save_only_latest_checkpoint`` clean-up and removes temporary files left by killed writers.
    * ``--load-dir`` without ``--load-step`` loads the newest checkpoint that can be read, warning once about each
      newer one it skips; an explicit ``--load-step`` or ``--load-checkpoint`` that cannot be read is an error naming
      the file (:class:`CheckpointError`).
    """

    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        """Save the model and optimizers (nerfstudio's contents), atomically.

        Args:
            step: Number of steps in training for the given checkpoint.
        """
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path: Path = self.checkpoint_dir / checkpoint_name(step)
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        state = {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for (k, v) in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for (k, v) in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }
        save_atomically(plain_numbers(state), ckpt_path)
        if self.config.save_only_latest_checkpoint:
            for f in self.checkpoint_dir.glob("*.ckpt"):
                if f != ckpt_path:
                    f.unlink()
        remove_stale_temp_files(self.checkpoint_dir)

    def _load_checkpoint(self) -> None:
        """Loads pipeline, optimizers, schedulers and grad scaler from ``--load-dir`` / ``--load-checkpoint``."""
        load_dir, load_checkpoint = self.config.load_dir, self.config.load_checkpoint
        if load_dir is None and load_checkpoint is None:
            super()._load_checkpoint()  # type: ignore[misc]  (nerfstudio: "training from scratch")
            return
        with exit_on_user_error():  # one line naming the file, no traceback (see dynsplat_ns.errors)
            if load_dir is not None and self.config.load_step is None:
                CONSOLE.print("Loading latest Nerfstudio checkpoint from load_dir...")
                load_path, state = read_latest_checkpoint(Path(load_dir))
            elif load_dir is not None:
                load_path = Path(load_dir) / checkpoint_name(self.config.load_step)
                state = read_checkpoint(load_path)
            else:
                load_path = Path(load_checkpoint)
                state = read_checkpoint(load_path)
        self._start_step = state["step"] + 1
        self.pipeline.load_pipeline(state["pipeline"], state["step"])
        self.optimizers.load_optimizers(state["optimizers"])
        if "schedulers" in state and self.config.load_scheduler:
            self.optimizers.load_schedulers(state["schedulers"])
        self.grad_scaler.load_state_dict(state["scalers"])
        CONSOLE.print(f"Done loading Nerfstudio checkpoint from {load_path}", soft_wrap=True)
