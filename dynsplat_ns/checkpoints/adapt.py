"""Checkpoint adaptation of :class:`~dynsplat_ns.models.dynamic_splat.DynamicSplatModel`: resume or fine-tune on
another set of training images or frames (per-image tables matched by name, per-frame tables resampled in time)."""

from __future__ import annotations

from torch import Tensor

from dynsplat_ns.checkpoints.state import FrameAxes, ResumeInfo, RowMap, adapt_state


class CheckpointAdaptation:
    """Mixin (before ``SplatfactoModel``) for models with ``gauss_params``, ``motion``, ``camera_optimizer``."""

    def load_state_dict(self, dict, **kwargs):  # type: ignore[override]  # noqa: A002
        """``nn.Module``'s entry point: :meth:`load_checkpoint_state` with nothing known about the checkpoint's
        training images (``strict`` as in torch)."""
        self.load_checkpoint_state(dict, ResumeInfo(), strict=kwargs.get("strict", True))

    def load_checkpoint_state(
        self, state: dict[str, Tensor], resume: ResumeInfo | None = None, strict: bool = True
    ) -> dict[str, RowMap]:
        """Loads a checkpoint's model state, adapted to this model where a resume/fine-tune changed the dataset.

        * Gaussian parameters are resized to the checkpoint's count (splatfacto).
        * Per-image tensors (:meth:`per_image_state_keys`) are matched by image name when ``resume`` maps this
          dataset's images onto the checkpoint's; rows of images the checkpoint lacks keep their fresh
          initialisation. Without a mapping, a count mismatch re-initialises them (with a warning).
        * Per-frame tensors (:meth:`per_frame_state_keys`) are resampled linearly in time along their declared axes.
        * Any other shape mismatch raises ``ValueError`` naming the tensors (e.g. another sh_degree).

        Args:
            state: Model state dict of the checkpoint (keys without the pipeline's ``_model.`` prefix).
            resume: What the pipeline knows about the checkpoint's training images; None: nothing.
            strict: As ``torch.nn.Module.load_state_dict``.

        Returns:
            For each per-image parameter whose rows were remapped, how (to fit its optimizer state the same way).
        """
        adapted, row_maps, warnings = adapt_state(
            state, self.state_dict(), self.per_image_state_keys(), self.per_frame_state_keys(), resume or ResumeInfo()
        )
        if warnings:
            from nerfstudio.utils.rich_utils import CONSOLE

            for line in warnings:
                CONSOLE.print(f"[yellow]{line}")
        super().load_state_dict(adapted, strict=strict)
        self.motion.set_step(self.step)
        return row_maps

    def per_image_state_keys(self) -> dict[str, int]:
        """State-dict keys with an axis indexed by the training image, and that axis: the camera optimizer's pose
        adjustments, the bilateral grids and what the motion model declares."""
        keys = {}
        if isinstance(getattr(self.camera_optimizer, "pose_adjustment", None), Tensor):
            keys["camera_optimizer.pose_adjustment"] = 0
        if self.config.use_bilateral_grid:
            keys["bil_grids.grids"] = 0
        for name, axis in self.motion.per_image_state_keys().items():
            keys[self._motion_state_key(name)] = axis
        return keys

    def per_frame_state_keys(self) -> dict[str, FrameAxes]:
        """State-dict keys with an axis (or axes) indexed by the training frame: what the motion model declares."""
        return {self._motion_state_key(name): axes for name, axes in self.motion.per_frame_state_keys().items()}

    def _motion_state_key(self, name: str) -> str:
        """This model's state-dict key of a tensor the motion model names (a per-Gaussian parameter or its own)."""
        own = name in self.motion.state_dict()
        if name in self.gauss_params and not own:
            return f"gauss_params.{name}"
        if own and name not in self.gauss_params:
            return f"motion.{name}"
        where = "both a per-Gaussian parameter and in" if own else "neither a per-Gaussian parameter nor in"
        raise ValueError(
            f"{type(self.motion).__name__} declares per-image/per-frame state {name!r}, which is {where} its state_dict"
        )
