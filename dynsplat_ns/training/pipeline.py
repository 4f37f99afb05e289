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

from dynsplat_ns.checkpoints.state import ResumeInfo, RowMap
from dynsplat_ns.compat import allow_nerfstudio_checkpoints
from dynsplat_ns.errors import exit_on_user_error
from dynsplat_ns.models.metrics import (
    REGION_MASKS,
    REGION_METRICS,
    dynamic_mask_from_metadata,
    per_time_breakdown,
    undistort_mask,
)
from dynsplat_ns.models.pose_refine import REFINED_REGION_METRICS, refined_metrics
from dynsplat_ns.training.split_checks import explain_missing_test_split
from dynsplat_ns.video import ensure_ffmpeg_for_ns_render
from dynsplat_ns.viewer import DynsplatViewerControl, use_saved_viewer_host

#: Metrics averaged over a masked region (dynamic: ``masked_*``; covisible: ``covisible_*``; with test-time pose
#: refinement also ``refined_masked_*``, ``refined_covisible_*``) when masks exist.
MASKED_METRICS = REGION_METRICS + REFINED_REGION_METRICS


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
    """Wraps an eval loader of (camera, batch): records each camera's time and adds the image's region masks from the
    eval dataparser's metadata (``batch["dynamic_mask"]``, ``batch["covisible_mask"]``; see ``REGION_MASKS``), mapped
    like the cached image when its camera is distorted (``source_cameras``: the dataparser's, before undistortion).
    Batches are per-call copies."""

    def __init__(self, loader, metadata: dict | None, source_cameras=None) -> None:
        self.loader = loader
        self.metadata = metadata or {}
        self.source_cameras = source_cameras
        self.times: list[float | None] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for camera, batch in self.loader:
            times = getattr(camera, "times", None)
            self.times.append(None if times is None else float(times.reshape(-1)[0]))
            batch = dict(batch)
            size = tuple(batch["image"].shape[:2])
            index = int(batch.get("image_idx", len(self.times) - 1))
            source = None if self.source_cameras is None else self.source_cameras[index]
            for region in REGION_MASKS:
                mask = dynamic_mask_from_metadata(self.metadata, index, None, region.metadata_key)
                if mask is None:
                    continue
                mask = undistort_mask(mask, source) if source is not None else mask
                batch[region.batch_key] = dynamic_mask_from_metadata({"m": [mask]}, 0, size, "m")
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
    _row_maps: dict[str, RowMap] | None = None  # per-image rows matched by the last load_state_dict

    def __init__(self, config: DynsplatPipelineConfig, device: str, test_mode: str = "val", **kwargs: Any) -> None:
        """nerfstudio's setup (datamanager, dataparser, model); an error of ours in the user's data or flags ends the
        ``ns-*`` command with one line naming the file and the problem (see :mod:`dynsplat_ns.errors`)."""
        # What dynsplat runs need from the process, done here rather than at import (nerfstudio imports every plugin
        # for every ns-* command); eval_setup and Trainer.setup set up the pipeline before they torch.load.
        allow_nerfstudio_checkpoints()  # checkpoints written before CheckpointMixin (numpy scalars)
        ensure_ffmpeg_for_ns_render()  # ns-render only
        use_saved_viewer_host()  # ns-viewer only
        world_size = int(kwargs.pop("world_size", 1))
        with exit_on_user_error(), explain_missing_test_split(config):  # e.g. dynsplat-deblur needs a test split
            self._build(config, device, test_mode, world_size, **kwargs)
        # nerfstudio's Viewer sets up the ViewerControls of the pipeline it shows: CPU "Max res", first view.
        self.viewer_defaults = DynsplatViewerControl()

    def _build(
        self,
        config: DynsplatPipelineConfig,
        device: str,
        test_mode: str,
        world_size: int,
        local_rank: int = 0,
        grad_scaler: Any = None,
    ) -> None:
        """VanillaPipeline's setup (datamanager, then the model over its training data), except that the model learns
        what the run needs to pick its densification strategy once (views per step, ranks) and is never DDP-wrapped:
        densification replaces the Gaussian parameters, and the ranks are kept in step by
        :mod:`dynsplat_ns.training.distributed` (gradient averaging) and the model's rank-synced strategy."""
        torch.nn.Module.__init__(self)
        self.config = config
        self.test_mode = test_mode
        # One datamanager per rank over every training image: each rank picks its share (camera_batches.py).
        self.datamanager = config.datamanager.setup(
            device=device, test_mode=test_mode, world_size=1, local_rank=local_rank
        )
        metadata = self.datamanager.train_dataparser_outputs.metadata
        seed_points = (metadata["points3D_xyz"], metadata["points3D_rgb"]) if "points3D_xyz" in metadata else None
        self.datamanager.to(device)
        dataset = self.datamanager.train_dataset
        self._model = config.model.setup(
            scene_box=dataset.scene_box,
            num_train_data=len(dataset),
            metadata=dataset.metadata,
            device=device,
            grad_scaler=grad_scaler,
            seed_points=seed_points,
            views_per_step=int(getattr(self.datamanager.config, "cameras_per_step", 1)),
            ranks=world_size,
        )
        self.model.to(device)
        self.world_size = world_size

    def get_train_loss_dict(self, step: int):
        """nerfstudio's training step; with ``--pipeline.datamanager.cameras-per-step`` K > 1, K cameras rendered
        together and the losses averaged over them (:mod:`dynsplat_ns.models.multi_view`)."""
        if getattr(self.datamanager.config, "cameras_per_step", 1) == 1:
            return super().get_train_loss_dict(step)
        from dynsplat_ns.models.multi_view import multi_view_train_step

        cameras, batches = self.datamanager.next_train_views(step)
        with exit_on_user_error():
            return multi_view_train_step(self.model, cameras, batches)

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
        """Loads a checkpoint as nerfstudio's pipeline does, except that the model's part goes to the model's
        ``load_checkpoint_state`` together with how the checkpoint's training images map onto this dataset's
        (:meth:`_checkpoint_resume_info`); the per-image row maps it returns are kept for :meth:`_relink_optimizers`.

        ``strict`` as nerfstudio: None/False retries a failed strict load non-strictly, True raises.
        """
        resume = self._checkpoint_resume_info(state_dict.get("_extra_state"))
        model_state = {k[len("_model.") :]: v for k, v in state_dict.items() if k.startswith("_model.")}
        if model_state and all(k.startswith("module.") for k in model_state):  # saved from a DDP-wrapped model
            model_state = {k[len("module.") :]: v for k, v in model_state.items()}
        try:
            self._row_maps = self.model.load_checkpoint_state(model_state, resume, strict=True)
        except RuntimeError:
            if strict:
                raise
            self._row_maps = self.model.load_checkpoint_state(model_state, resume, strict=False)
        pipeline_state = {k: v for k, v in state_dict.items() if not k.startswith("_model.")}
        return torch.nn.Module.load_state_dict(self, pipeline_state, strict=False)

    def _checkpoint_resume_info(self, extra: object) -> ResumeInfo:
        """What a checkpoint's extra state (:meth:`get_extra_state`) says about its training images, relative to
        this pipeline's dataset."""
        old = list(extra.get("train_image_names") or []) if isinstance(extra, dict) else []
        new = [image_key(n) for n in self.train_image_names]
        if not (old and new):
            return ResumeInfo()
        row_map = match_image_names(old, new)
        unmatched = sum(1 for i in row_map if i < 0)
        if len(old) != len(new) or unmatched or row_map != list(range(len(new))):
            CONSOLE.print(
                f"Checkpoint trained on {len(old)} images, this dataset has {len(new)}: per-image "
                f"parameters matched by image name ({len(new) - unmatched} matched, {unmatched} re-initialised)"
            )
        return ResumeInfo(row_map=tuple(row_map), old_num_images=len(old))

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
        row_maps = self._row_maps or {}
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
                            fitted = self._fit_state(state, new, row_maps.get(names.get(id(new), "")))
                            if fitted:
                                opt.state[new] = fitted
            if hasattr(optimizers, "parameters"):
                optimizers.parameters[group_name] = list(params)

    @staticmethod
    def _fit_state(state: dict, param: torch.Tensor, row_map: RowMap | None) -> dict:
        """:func:`fit_optimizer_state` along a per-image tensor's image axis (``row_map.axis``)."""
        if row_map is None or row_map.axis == 0:
            return fit_optimizer_state(state, param, None if row_map is None else list(row_map.rows))
        axis = row_map.axis

        def move(value, src, dst):
            return value.movedim(src, dst) if isinstance(value, torch.Tensor) and value.dim() > axis else value

        front = {k: move(v, axis, 0) for k, v in state.items()}
        fitted = fit_optimizer_state(front, move(param, axis, 0), list(row_map.rows))
        return {k: move(v, 0, axis) for k, v in fitted.items()}

    # ---- evaluation ----------------------------------------------------------------------------------------------
    #: Per-image timings of the eval loop: averaged, but left out of the per-time table.
    _TIMING_METRICS = ("num_rays_per_sec", "fps")

    def get_average_eval_image_metrics(
        self, step: int | None = None, output_path: Path | None = None, get_std: bool = False
    ):
        """nerfstudio's averages (psnr, ssim, lpips, fps, num_rays_per_sec, ±std) plus ``lpips`` null (and
        ``lpips_hint``) without weights, ``gaussian_count``, ``num_images``, ``per_time`` and, with dynamic-region
        masks, ``masked_psnr``/``masked_ssim``/``masked_fraction`` (+ ``masked_num_images``) and, with covisibility
        masks (DyCheck), ``covisible_psnr``/``covisible_ssim``/``covisible_fraction`` (+ ``covisible_num_images``).
        With ``--pipeline.model.eval-pose-refine-steps N`` also each metric at the refined test pose as
        ``refined_<metric>`` (:mod:`dynsplat_ns.models.pose_refine`), with ``pose_refine_steps``/``pose_refine_lr``.

        During training (``step`` given) only the float entries are returned, so the Trainer can log them.
        """
        records, times = self._eval_records(output_path)
        metrics = self._averages(records, get_std)
        per_image = [{k: v for k, v in r.items() if k not in self._TIMING_METRICS} for r in records]
        metrics.update(self._summaries(times, per_image))
        lpips = getattr(self.model, "lpips", None)
        if "lpips" not in metrics:
            metrics["lpips"] = None
            hint = getattr(lpips, "hint", None)
            if hint:
                metrics["lpips_hint"] = hint
        if hasattr(self.model, "num_points"):
            metrics["gaussian_count"] = int(self.model.num_points)
        refine_steps = int(getattr(getattr(self.model, "config", None), "eval_pose_refine_steps", 0) or 0)
        if refine_steps > 0:  # refined_* metrics are in the results: say how they were obtained
            metrics["pose_refine_steps"] = refine_steps
            metrics["pose_refine_lr"] = float(self.model.config.eval_pose_refine_lr)
        if step is not None:
            return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return metrics

    def _eval_records(self, output_path: Path | None) -> tuple[list[dict[str, float]], list[float | None]]:
        """Renders every eval image (nerfstudio's loop, with per-image results kept).

        Returns:
            Per image: the model's metrics with masked-region metrics where the image has a dynamic-region mask, and
            ``num_rays_per_sec``/``fps`` timed as nerfstudio does (render + metrics); and each camera's time.
        """
        from time import perf_counter

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from torchvision.utils import save_image

        dataset = getattr(self.datamanager, "eval_dataset", None)
        source_cameras = getattr(getattr(dataset, "_dataparser_outputs", None), "cameras", None)
        loader = _RecordingLoader(self.datamanager.fixed_indices_eval_dataloader, self._eval_metadata(), source_cameras)
        if output_path is not None:
            output_path.mkdir(exist_ok=True, parents=True)
        records: list[dict[str, float]] = []
        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), TimeElapsedColumn())
        self.eval()
        try:
            with Progress(*columns, MofNCompleteColumn(), transient=True) as progress:
                task = progress.add_task("[green]Evaluating all images...", total=len(loader))
                for idx, (camera, batch) in enumerate(loader):
                    start = perf_counter()
                    outputs = self.model.get_outputs_for_camera(camera=camera)
                    metrics, images = self.model.get_image_metrics_and_images(outputs, batch, region_metrics=True)
                    num_rays = int(camera.height.reshape(-1)[0]) * int(camera.width.reshape(-1)[0])
                    metrics["num_rays_per_sec"] = num_rays / max(perf_counter() - start, 1e-9)
                    metrics["fps"] = metrics["num_rays_per_sec"] / num_rays
                    metrics.update(refined_metrics(self.model, camera, batch))  # refined_*: pose refinement on
                    records.append(metrics)
                    for key, image in images.items() if output_path is not None else ():
                        save_image(image.permute(2, 0, 1).cpu(), output_path / f"eval_{key}_{idx:04d}.png")
                    progress.advance(task)
        finally:
            self.train()
        return records, loader.times

    @staticmethod
    def _averages(records: list[dict[str, float]], get_std: bool) -> dict[str, float]:
        """Mean (and with ``get_std`` the standard deviation as ``<key>_std``, as nerfstudio) of every metric all
        images have; the masked-region ones are averaged over the masked images only (:meth:`_summaries`)."""
        keys = [k for k in (records[0] if records else {}) if k not in MASKED_METRICS]
        out: dict[str, float] = {}
        for key in keys:
            values = [r.get(key) for r in records]
            if not all(isinstance(v, (int, float)) for v in values):
                continue
            tensor = torch.tensor(values, dtype=torch.float64)
            out[key] = float(tensor.mean())
            if get_std:
                out[f"{key}_std"] = float(tensor.std())
        return out

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
        for prefix in dict.fromkeys(region.prefix for region in REGION_MASKS):
            if any(key.startswith(f"{prefix}_") for key in out):
                out[f"{prefix}_num_images"] = sum(1 for r in records if f"{prefix}_fraction" in r)
        if len(times) == len(records) and any(t is not None for t in times):
            out["per_time"] = per_time_breakdown(times, records)
        return out
