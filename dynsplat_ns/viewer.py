"""nerfstudio viewer integration for dynsplat models (``ns-train --vis viewer`` and ``ns-viewer``).

nerfstudio 1.1.5's viewer already does most of what dynamic scenes need: a "Time" slider when the dataparser sets
``includes_time`` (the render thread copies it into ``Cameras.times``, which :class:`DynamicSplatModel` renders at),
per-keyframe times in the render panel's camera paths, and low-resolution renders while the camera moves followed
by one at "Max res" once it stops. :func:`install` adds what is missing for our models:

* **Loopback by default.** ``ns-viewer`` rebuilds its ``ViewerConfig`` from its own command line (default host
  ``0.0.0.0``) and ignores the ``websocket_host="127.0.0.1"`` saved with a dynsplat run. For dynsplat pipelines the
  viewer binds to 127.0.0.1 unless ``--viewer.websocket-host`` is given on the command line.
* **CPU-sized full-resolution frames.** On CPU the still frame after a move is rendered at ``CPU_MAX_RES`` (the
  "Max res" slider's initial value; nerfstudio's 512 takes seconds with the pure-torch rasterizer). Set the
  ``DYNSPLAT_VIEWER_MAX_RES`` environment variable to choose another value (on any device).
* **A first view that shows the scene.** Viser starts every browser at a fixed pose near the origin, i.e. inside a
  D-NeRF-sized scene; each new browser tab is moved to the first training camera instead (just past its frustum).

:func:`install` wraps ``nerfstudio.viewer.viewer.Viewer.__init__`` once per process and leaves viewers of other
models alone; the method configs call it, so every ``ns-*`` command that loads a dynsplat method has it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

#: Host the viewer binds to unless the user asks for another one.
DEFAULT_VIEWER_HOST = "127.0.0.1"
#: nerfstudio's ``ViewerConfig.websocket_host`` default (all interfaces), replaced by ``DEFAULT_VIEWER_HOST``.
NERFSTUDIO_DEFAULT_HOST = "0.0.0.0"
#: Command-line spellings of the host flag (tyro accepts both; ``--flag=value`` too).
HOST_FLAGS = ("--viewer.websocket-host", "--viewer.websocket_host")
#: Initial "Max res" (pixels, longest side) of the still frame when the model renders on CPU.
CPU_MAX_RES = 256
#: Environment variable overriding the initial "Max res" of dynsplat viewers (any device).
MAX_RES_ENV = "DYNSPLAT_VIEWER_MAX_RES"
#: nerfstudio's viser scene units per world unit (``nerfstudio.viewer.viewer.VISER_NERFSTUDIO_SCALE_RATIO``).
VISER_SCALE = 10.0

_INSTALL_LOCK = threading.Lock()


def host_given_on_command_line(argv: Sequence[str] | None = None) -> bool:
    """Whether ``argv`` (default ``sys.argv``) sets the viewer host explicitly."""
    args = sys.argv if argv is None else argv
    return any(str(arg).split("=", 1)[0] in HOST_FLAGS for arg in args)


def viewer_host(configured: str, argv: Sequence[str] | None = None) -> str:
    """The host a dynsplat viewer binds to: ``configured`` unless it is nerfstudio's all-interfaces default and the
    command line did not ask for it, in which case loopback."""
    if configured == NERFSTUDIO_DEFAULT_HOST and not host_given_on_command_line(argv):
        return DEFAULT_VIEWER_HOST
    return configured


def viewer_max_res(device: Any, environ: dict[str, str] | None = None) -> int | None:
    """Initial "Max res" for a model on ``device``: ``$DYNSPLAT_VIEWER_MAX_RES``, else ``CPU_MAX_RES`` on CPU,
    else None (keep nerfstudio's)."""
    env = os.environ if environ is None else environ
    value = env.get(MAX_RES_ENV, "").strip()
    if value:
        try:
            res = int(value)
        except ValueError as err:
            raise ValueError(f"{MAX_RES_ENV}={value!r} is not an integer number of pixels") from err
        if res < 16:
            raise ValueError(f"{MAX_RES_ENV}={res}: use at least 16 pixels")
        return res
    return CPU_MAX_RES if str(getattr(device, "type", device)) == "cpu" else None


def is_dynsplat_pipeline(pipeline: Any) -> bool:
    """Whether ``pipeline`` renders a :class:`~dynsplat_ns.models.dynamic_splat.DynamicSplatModel`."""
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModel

    model = getattr(pipeline, "model", None)
    model = getattr(model, "module", model)  # DistributedDataParallel
    return isinstance(model, DynamicSplatModel)


def initial_view(pipeline: Any, frustum_scale: float = 0.0) -> dict[str, Any] | None:
    """Viser camera settings that look through the first training camera, or None without training cameras.

    Args:
        pipeline: The pipeline the viewer shows (its ``datamanager.train_dataset.cameras``, ``model.scene_box``).
        frustum_scale: ``ViewerConfig.camera_frustum_scale``: the viewpoint moves forward past the camera's own
            frustum (its training image would otherwise cover the whole view), by at most 10% of the distance.

    Returns:
        ``{"position": (3,), "look_at": (3,), "up_direction": (3,), "fov": radians}`` in viser units; the up
        direction is the mean of the training cameras' up vectors (the scene's up for orbiting).
    """
    import numpy as np

    dataset = getattr(getattr(pipeline, "datamanager", None), "train_dataset", None)
    cameras = getattr(dataset, "cameras", None)
    if cameras is None or len(cameras) == 0:
        return None
    c2ws = cameras.camera_to_worlds.detach().cpu().double().numpy().reshape(-1, 3, 4)
    c2w = c2ws[0]
    position, forward = c2w[:, 3], -c2w[:, 2]  # OpenGL convention: the camera looks along -z
    up = c2ws[:, :, 1].mean(axis=0)
    if np.linalg.norm(up) < 1e-6 or abs(float(np.dot(up, forward))) > 0.99 * np.linalg.norm(up):
        up = c2w[:, 1]
    up = up / np.linalg.norm(up)
    scene_box = getattr(getattr(pipeline, "model", None), "scene_box", None)
    center = scene_box.aabb.detach().cpu().double().numpy().mean(axis=0) if scene_box is not None else np.zeros(3)
    distance = max(float(np.linalg.norm(center - position)), 1e-3)
    fx, fy, cx, cy, height = (
        float(v.reshape(-1)[0]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy, cameras.height)
    )
    # nerfstudio draws the frustum with fov 2 atan(cx/fx) and aspect cx/cy; viser puts its image plane at depth
    # scale / cbrt(tan(fov/2)^2 aspect / 3) (viser/client/src/ThreeAssets.tsx, CameraFrustum).
    half = cx / fx
    depth = max(frustum_scale, 0.0) / (half * half * (cx / cy) / 3.0) ** (1.0 / 3.0) / VISER_SCALE
    step = min(1.5 * depth, 0.1 * distance)
    fov = 2.0 * math.atan(height / (2.0 * fy))
    return {
        "position": (position + forward * step) * VISER_SCALE,
        "look_at": (position + forward * distance) * VISER_SCALE,
        "up_direction": up,
        "fov": fov,
    }


def configure_viewer(viewer: Any) -> None:
    """Applies the dynsplat defaults to a constructed nerfstudio ``Viewer`` (Max res, first view of new clients)."""
    control_panel = getattr(viewer, "control_panel", None)
    res = viewer_max_res(viewer.pipeline.model.device)
    if res is not None and control_panel is not None:
        control_panel._max_res.value = res
    view = initial_view(viewer.pipeline, frustum_scale=float(getattr(viewer.config, "camera_frustum_scale", 0.1)))
    if view is None:
        return

    def on_connect(client: Any) -> None:
        moved = threading.Event()

        @client.camera.on_update
        def _(camera: Any) -> None:  # first camera message: the client's camera state now exists
            if moved.is_set():
                return
            moved.set()
            camera.fov = view["fov"]
            camera.position = view["position"]
            camera.look_at = view["look_at"]
            camera.up_direction = view["up_direction"]

    viewer.viser_server.on_client_connect(on_connect)


def install() -> None:
    """Wraps nerfstudio's ``Viewer.__init__`` (once per process) to apply the dynsplat defaults to viewers of
    dynsplat pipelines: loopback host (see :func:`viewer_host`), CPU "Max res", first view."""
    from nerfstudio.viewer import viewer as ns_viewer

    with _INSTALL_LOCK:
        original = ns_viewer.Viewer.__init__
        if getattr(original, "_dynsplat_viewer", False):
            return

        @functools.wraps(original)
        def __init__(self, config, log_filename, datapath, pipeline, *args, **kwargs):
            dynsplat = is_dynsplat_pipeline(pipeline)
            if dynsplat:
                host = viewer_host(config.websocket_host)
                if host != config.websocket_host:
                    config = dataclasses.replace(config, websocket_host=host)
            original(self, config, log_filename, datapath, pipeline, *args, **kwargs)
            if dynsplat and getattr(self, "ready", False):
                configure_viewer(self)

        __init__._dynsplat_viewer = True  # type: ignore[attr-defined]
        ns_viewer.Viewer.__init__ = __init__
