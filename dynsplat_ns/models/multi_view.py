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

from typing import Any

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
