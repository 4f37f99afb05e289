"""Pipeline that reports what dynsplat evaluations need and resumes across frame subsets.

Evaluation (``ns-eval``): LPIPS as null when its weights are absent, the Gaussian count, a per-time breakdown and,
when the eval split has dynamic-region masks, masked PSNR/SSIM — on top of nerfstudio's psnr/ssim/fps/num_rays_per_sec.

Resume (``ns-train --load-dir``): the checkpoint stores the training image names (pipeline extra state), so per-image
parameters are matched by name when the dataset changed (a frame subset), and optimizer state is re-attached to the
model's current parameters (splatfacto replaces the Gaussian tensors when loading, after the optimizers were built).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE

from dynsplat_ns.compat import allow_nerfstudio_checkpoints
from dynsplat_ns.models.metrics import (
    dynamic_mask_from_metadata,
    mask_declares_dynamic,
    per_time_breakdown,
)
from dynsplat_ns.video import ensure_ffmpeg

# ns-eval/ns-render/ns-export import this module (through config.yml) before loading a checkpoint or writing video.
allow_nerfstudio_checkpoints()
ensure_ffmpeg()

#: Metrics averaged over the masked (dynamic) region when masks exist.
MASKED_METRICS = ("masked_psnr", "masked_ssim", "masked_fraction")


def image_key(path: str | Path) -> str:
    """Name that identifies a training image across runs: ``parent/stem`` (``train/r_003``), independent of the
    data folder's location and of downscaled-image caches (which keep the relative layout)."""
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"


def match_image_names(old: list[str], new: list[str]) -> list[int]:
    """For each image key in ``new``, the index of the same image in ``old`` (-1 when it is not there).

    Keys are :func:`image_key` strings (``parent/stem``); where the full key does not match, a ``stem`` that is unique
    on both sides matches (e.g. ``images_4/0001`` ↔ ``images_8/0001``).
    """
    by_key = {k: i for i, k in enumerate(old)}
    out = [by_key.get(k, -1) for k in new]
    stems_old = [k.rsplit("/", 1)[-1] for k in old]
    stems_new = [k.rsplit("/", 1)[-1] for k in new]
    unique_old = {s: i for i, s in enumerate(stems_old) if stems_old.count(s) == 1}
    taken = {i for i in out if i >= 0}
    for j, idx in enumerate(out):
        s = stems_new[j]
        if idx < 0 and s in unique_old and stems_new.count(s) == 1 and unique_old[s] not in taken:
            out[j] = unique_old[s]
            taken.add(out[j])
    return out


def fit_optimizer_state(state: dict, param: torch.Tensor, row_map: list[int] | None) -> dict:
    """Adapt one parameter's optimizer state (e.g. Adam's exp_avg/exp_avg_sq) to ``param``'s shape.

    Args:
        state: The loaded state of the parameter.
        param: The model's current parameter.
        row_map: For per-image parameters, the old row of each new row (-1: none); rows without one start at zero.

    Returns:
        The state (unchanged when shapes agree, rows remapped when ``row_map`` applies), or ``{}`` (fresh state)
        when it cannot be fitted.
    """
    out: dict = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape == param.shape:
            out[name] = value
        elif row_map is not None and len(row_map) == param.shape[0] and value.shape[1:] == param.shape[1:]:
            fitted = torch.zeros(param.shape, dtype=value.dtype, device=value.device)
            rows = torch.as_tensor(row_map, dtype=torch.long)
            keep = (rows >= 0) & (rows < value.shape[0])
            fitted[keep.to(value.device)] = value[rows[keep].to(value.device)]
            out[name] = fitted
        else:
            return {}
    return out


class _RecordingLoader:
    """Wraps an eval loader of (camera, batch): records each camera's time and adds the image's dynamic-region mask
    from the eval dataparser's metadata as ``batch["dynamic_mask"]`` (batches are per-call copies)."""

    def __init__(self, loader, metadata: dict | None) -> None:
        self.loader = loader
        self.metadata = metadata or {}
        self.times: list[float | None] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for camera, batch in self.loader:
            times = getattr(camera, "times", None)
            self.times.append(None if times is None else float(times.reshape(-1)[0]))
            batch = dict(batch)
            size = tuple(batch["image"].shape[:2])
            mask = dynamic_mask_from_metadata(self.metadata, int(batch.get("image_idx", len(self.times) - 1)), size)
            if mask is None and batch.get("mask") is not None and mask_declares_dynamic(self.metadata):
                mask = batch["mask"]
            if mask is not None:
                batch["dynamic_mask"] = mask
            yield camera, batch


@dataclass
class DynsplatPipelineConfig(VanillaPipelineConfig):
    """nerfstudio's vanilla pipeline with dynsplat's evaluation summary and frame-subset resume."""

    _target: type = field(default_factory=lambda: DynsplatPipeline)
    """Pipeline class to instantiate."""


class DynsplatPipeline(VanillaPipeline):
    """VanillaPipeline whose ``ns-eval`` results have one shape on every machine and whose checkpoints resume on a
    different set of training images."""

    _loaded_extra_state: dict | None = None

    # ---- checkpoint state ----------------------------------------------------------------------------------------
    @property
    def train_image_names(self) -> list[str]:
        """Training image files of this pipeline's dataset (as the dataparser reported them)."""
        outputs = getattr(self.datamanager, "train_dataparser_outputs", None)
        if outputs is None:
            dataset = getattr(self.datamanager, "train_dataset", None)
            outputs = getattr(dataset, "_dataparser_outputs", None)
        return [str(p) for p in outputs.image_filenames] if outputs is not None else []

    def get_extra_state(self) -> dict[str, Any]:
        """Saved in every checkpoint: training image names and number of frames (to adapt per-image/per-frame
        parameters when resuming on other data)."""
        metadata = getattr(self.model, "kwargs", {}).get("metadata") or {}
        return {
            "train_image_names": [image_key(n) for n in self.train_image_names],
            "num_frames": int(metadata.get("num_frames") or 1),
        }

    def set_extra_state(self, state: Any) -> None:
        """Keeps the loaded extra state (read in :meth:`load_state_dict`)."""
        self._loaded_extra_state = state if isinstance(state, dict) else None

    def load_state_dict(self, state_dict, strict: bool | None = None):  # type: ignore[override]
        """Loads a checkpoint; tells the model how the checkpoint's training images map onto this dataset's."""
        extra = state_dict.get("_extra_state")
        info: dict[str, Any] = {}
        if isinstance(extra, dict):
            old = list(extra.get("train_image_names") or [])
            new = [image_key(n) for n in self.train_image_names]
            if old and new:
                info["row_map"] = match_image_names(old, new)
                info["old_num_images"] = len(old)
                unmatched = sum(1 for i in info["row_map"] if i < 0)
                if len(old) != len(new) or unmatched or info["row_map"] != list(range(len(new))):
                    CONSOLE.print(
                        f"Checkpoint trained on {len(old)} images, this dataset has {len(new)}: per-image "
                        f"parameters matched by image name ({len(new) - unmatched} matched, {unmatched} re-initialised)"
                    )
            info["old_num_frames"] = extra.get("num_frames")
        self.model._resume_info = info
        try:
            return super().load_state_dict(state_dict, strict=strict)
        finally:
            self.model._resume_info = None

    def get_training_callbacks(self, training_callback_attributes):
        """nerfstudio's callbacks; first re-attaches the optimizers to the model's current parameters (the Trainer
        calls this after loading a checkpoint)."""
        optimizers = getattr(training_callback_attributes, "optimizers", None)
        if optimizers is not None:
            self._relink_optimizers(optimizers)
        return super().get_training_callbacks(training_callback_attributes)

    def _relink_optimizers(self, optimizers) -> None:
        """Point every optimizer at the model's current parameter objects, carrying (and fitting) their state.

        splatfacto's ``load_state_dict`` replaces the Gaussian tensors after the Trainer built the optimizers, and a
        frame-subset resume changes per-image parameter shapes; without this the optimizers would step stale
        tensors or crash on mismatched Adam moments.
        """
        names = {id(p): n for n, p in self.model.named_parameters()}
        row_maps: dict[str, list[int]] = getattr(self.model, "_row_maps", None) or {}
        for group_name, params in self.get_param_groups().items():
            opt = optimizers.optimizers.get(group_name)
            if opt is None:
                continue
            flat = [p for group in opt.param_groups for p in group["params"]]
            if len(flat) != len(params):
                CONSOLE.print(f"[yellow]optimizer {group_name!r}: parameter count changed; its state is reset")
                for p in flat:
                    opt.state.pop(p, None)
                opt.param_groups[0]["params"] = list(params)
                for group in opt.param_groups[1:]:
                    group["params"] = []
            else:
                it = iter(params)
                for group in opt.param_groups:
                    for i, old in enumerate(group["params"]):
                        new = next(it)
                        state = opt.state.pop(old, None)
                        group["params"][i] = new
                        if state:
                            fitted = fit_optimizer_state(state, new, row_maps.get(names.get(id(new), "")))
                            if fitted:
                                opt.state[new] = fitted
            if hasattr(optimizers, "parameters"):
                optimizers.parameters[group_name] = list(params)

    # ---- evaluation ----------------------------------------------------------------------------------------------
    def get_average_eval_image_metrics(
        self, step: int | None = None, output_path: Path | None = None, get_std: bool = False
    ):
        """nerfstudio's averages (psnr, ssim, lpips, fps, num_rays_per_sec, ±std) plus ``lpips`` null (and
        ``lpips_hint``) without weights, ``gaussian_count``, ``num_images``, ``per_time`` and, with dynamic-region
        masks, ``masked_psnr``/``masked_ssim``/``masked_fraction`` (+ ``masked_num_images``).

        During training (``step`` given) only the float entries are returned, so the Trainer can log them.
        """
        loader = _RecordingLoader(self.datamanager.fixed_indices_eval_dataloader, self._eval_metadata())
        self.model._eval_log = []
        try:
            metrics = self.get_average_image_metrics(loader, "eval", step, output_path, get_std)
            records = list(self.model._eval_log)
        finally:
            self.model._eval_log = None
        metrics.update(self._summaries(loader.times, records))
        lpips = getattr(self.model, "lpips", None)
        if "lpips" not in metrics:
            metrics["lpips"] = None
            hint = getattr(lpips, "hint", None)
            if hint:
                metrics["lpips_hint"] = hint
        if hasattr(self.model, "num_points"):
            metrics["gaussian_count"] = int(self.model.num_points)
        if step is not None:
            return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return metrics

    def _eval_metadata(self) -> dict:
        dataset = getattr(self.datamanager, "eval_dataset", None)
        return dict(getattr(dataset, "metadata", None) or {})

    @staticmethod
    def _summaries(times: list[float | None], records: list[dict]) -> dict[str, Any]:
        """``num_images``, masked-region averages and the ``per_time`` table from the per-image records."""
        out: dict[str, Any] = {"num_images": len(records)}
        for key in MASKED_METRICS:
            values = [float(r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if values:
                out[key] = sum(values) / len(values)
        if any(key in out for key in MASKED_METRICS):
            out["masked_num_images"] = sum(1 for r in records if "masked_fraction" in r)
        if len(times) == len(records) and any(t is not None for t in times):
            out["per_time"] = per_time_breakdown(times, records)
        return out
