"""A training step over K cameras (``--pipeline.datamanager.cameras-per-step K``).

The K cameras are rendered together by :meth:`DynamicSplatModel.render_views` (one motion evaluation per distinct
time, one multi-camera ``rasterize()`` call per time, one merged densification meta); each view's outputs are then
scored against its own image by the model's own ``get_metrics_dict``/``get_loss_dict`` exactly as a one-camera step
scores them (per-image parts such as the camera optimizer and bilateral grids use that view's ``cam_idx``), and the
step's losses and metrics are the means over the K views. The gradient is therefore the mean of the K one-camera
gradients, and gsplat's strategy (which scales each view's screen-space gradient by ``n_cameras``) accumulates what K
one-camera steps would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy
from nerfstudio.cameras.cameras import Cameras

from dynsplat_ns.errors import DynsplatConfigError


def view_outputs(outputs: dict[str, Any], k: int) -> dict[str, Any]:
    """The outputs of view ``k`` of :meth:`render_views` in the form a one-camera training ``get_outputs`` returns
    them (``rgb`` [H, W, 3], ``depth``, ``accumulation``, ``background``, ``time``)."""
    background = outputs["background"]
    return {
        "rgb": outputs["rgb"][k],
        "depth": None if outputs["depth"] is None else outputs["depth"][k],
        "accumulation": outputs["accumulation"][k],
        "background": background[k] if background.dim() == 4 else background,
        "time": outputs["times"][k],
    }


def mean_over_views(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the sum over the views that have it divided by the number of views (a term a view lacks counts 0)."""
    keys = list(dict.fromkeys(key for d in dicts for key in d))
    return {key: sum(d[key] for d in dicts if key in d) / len(dicts) for key in keys}


def multi_view_train_step(model: Any, cameras: Cameras, batches: list[dict]) -> tuple[dict, dict, dict]:
    """Renders the K training ``cameras`` in one step and scores each against its batch.

    Args:
        model: a :class:`~dynsplat_ns.models.dynamic_splat.DynamicSplatModel` in training mode.
        cameras: K training cameras [K] with ``metadata["cam_idx"]`` (see ``CameraBatchMixin.next_train_views``).
        batches: the K batches (``image`` ...), in camera order.

    Returns:
        (outputs of :meth:`render_views`, loss dict, metrics dict): losses and metrics are means over the K views.

    Raises:
        DynsplatConfigError: the model renders a training camera in its own way (e.g. dynsplat-deblur's virtual
            views), which several cameras per step do not support, or the K images differ in size.
    """
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModel

    if type(model).get_outputs is not DynamicSplatModel.get_outputs:
        raise DynsplatConfigError(
            f"--pipeline.datamanager.cameras-per-step > 1 is not supported by {type(model).__name__} (it renders a "
            "training camera in its own way); use 1"
        )
    sizes = {tuple(b["image"].shape[:2]) for b in batches}
    if len(sizes) != 1:
        raise DynsplatConfigError(
            f"--pipeline.datamanager.cameras-per-step > 1 needs training images of one size, got (H, W) {sorted(sizes)}"
        )
    outputs = model.render_views(cameras)
    per_view = [view_outputs(outputs, k) for k in range(len(batches))]
    metrics = [model.get_metrics_dict(out, batch) for out, batch in zip(per_view, batches, strict=True)]
    losses = [model.get_loss_dict(out, batch, m) for out, batch, m in zip(per_view, batches, metrics, strict=True)]
    return outputs, mean_over_views(losses), mean_over_views(metrics)


@dataclasses.dataclass
class ViewMaxStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy whose per-Gaussian screen-size statistic (``radii``) is the maximum over all views of
    a step. gsplat 1.4.0 writes it with an indexed assignment, so of several views in one meta that see a Gaussian the
    last one wins ("should be ideally using scatter max", its comment); with one view per step both agree exactly."""

    def _update_state(self, params, state, info, packed: bool = False) -> None:
        track_radii = self.refine_scale2d_stop_iter > 0
        before = state.get("radii") if track_radii else None
        before = None if before is None else before.clone()
        super()._update_state(params, state, info, packed=packed)
        if not track_radii:
            return
        with torch.no_grad():
            if packed:
                ids, radii = info["gaussian_ids"], info["radii"]
            else:
                visible = info["radii"] > 0.0
                ids, radii = torch.where(visible)[1], info["radii"][visible]
            radii = radii / float(max(info["width"], info["height"]))
            base = torch.zeros_like(state["radii"]) if before is None else before
            state["radii"] = base.scatter_reduce(0, ids, radii.to(base.dtype), reduce="amax", include_self=True)

    @classmethod
    def from_strategy(cls, strategy: DefaultStrategy) -> ViewMaxStrategy:
        """A strategy of this class with ``strategy``'s settings."""
        return cls(**{f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy) if f.init})


def use_view_max_strategy(model: Any) -> None:
    """Gives ``model`` (its ``strategy``) the :class:`ViewMaxStrategy` of its settings, unless it already has one."""
    strategy = getattr(model, "strategy", None)
    if isinstance(strategy, DefaultStrategy) and not isinstance(strategy, ViewMaxStrategy):
        model.strategy = ViewMaxStrategy.from_strategy(strategy)
