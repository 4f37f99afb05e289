"""nerfstudio viewer integration for dynsplat models (``ns-train --vis viewer`` and ``ns-viewer``).

nerfstudio 1.1.5's viewer already does most of what dynamic scenes need: a "Time" slider when the dataparser sets
``includes_time`` (the render thread copies it into ``Cameras.times``, which :class:`DynamicSplatModel` renders at),
per-keyframe times in the render panel's camera paths, and low-resolution renders while the camera moves followed
by one at "Max res" once it stops. This module adds what is missing for our models, only for dynsplat pipelines and
only once one is set up (importing it changes nothing):

* **Loopback by default.** The dynsplat methods save ``websocket_host="127.0.0.1"`` in their config, so ``ns-train``
  binds to loopback unless ``--viewer.websocket-host`` says otherwise. ``ns-viewer`` rebuilds its ``ViewerConfig``
  from its own command line (default host ``0.0.0.0``) and drops the saved one; :func:`use_saved_viewer_host` makes it
  bind to the host saved in the run's ``config.yml`` instead (loopback if there is none), unless
  ``--viewer.websocket-host`` is given on its command line.
* **CPU-sized full-resolution frames.** On CPU the still frame after a move is rendered at ``CPU_MAX_RES`` (the
  "Max res" slider's initial value; nerfstudio's 512 takes seconds with the pure-torch rasterizer). Set the
  ``DYNSPLAT_VIEWER_MAX_RES`` environment variable to choose another value (on any device).
* **A first view that shows the scene.** Viser starts every browser at a fixed pose near the origin, i.e. inside a
  D-NeRF-sized scene; each new browser tab is moved to the first training camera instead (just past its frustum).

The last two come through nerfstudio's own hook for pipelines: a :class:`DynsplatViewerControl` attribute of the
pipeline, which every nerfstudio ``Viewer`` finds and sets up with itself while it is constructed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from nerfstudio.viewer.viewer import Viewer
from nerfstudio.viewer.viewer_elements import ViewerControl

#: Host a dynsplat viewer binds to when neither the run's config nor the command line names one.
DEFAULT_VIEWER_HOST = "127.0.0.1"
#: Command-line spellings of the host flag (tyro accepts both; ``--flag=value`` too).
HOST_FLAGS = ("--viewer.websocket-host", "--viewer.websocket_host")
#: Command-line spellings of ``ns-viewer``'s run config flag.
LOAD_CONFIG_FLAGS = ("--load-config", "--load_config")
#: The module of ``ns-viewer`` (``nerfstudio.scripts.viewer.run_viewer``), whose ``ViewerState`` builds its viewer.
RUN_VIEWER_MODULE = "nerfstudio.scripts.viewer.run_viewer"
#: Initial "Max res" (pixels, longest side) of the still frame when the model renders on CPU.
CPU_MAX_RES = 256
#: Environment variable overriding the initial "Max res" of dynsplat viewers (any device).
MAX_RES_ENV = "DYNSPLAT_VIEWER_MAX_RES"
#: nerfstudio's viser scene units per world unit (``nerfstudio.viewer.viewer.VISER_NERFSTUDIO_SCALE_RATIO``).
VISER_SCALE = 10.0


def flag_value(flags: Sequence[str], argv: Sequence[str] | None = None) -> str | None:
    """The value the command line ``argv`` (default ``sys.argv``) gives the flag ``flags`` (any spelling; ``--flag
    value`` or ``--flag=value``; the last one wins), or None when it is not there."""
    args = [str(arg) for arg in (sys.argv if argv is None else argv)]
    value = None
    for i, arg in enumerate(args):
        name, eq, rest = arg.partition("=")
        if name in flags:
            value = rest if eq else (args[i + 1] if i + 1 < len(args) else None)
    return value


def host_given_on_command_line(argv: Sequence[str] | None = None) -> bool:
    """Whether ``argv`` (default ``sys.argv``) sets the viewer host explicitly."""
    args = sys.argv if argv is None else argv
    return any(str(arg).split("=", 1)[0] in HOST_FLAGS for arg in args)


class _PlainYamlLoader(yaml.SafeLoader):
    """A safe YAML loader that reads nerfstudio's ``!!python/...`` tagged nodes as plain mappings, lists and strings
    (nothing is imported or constructed)."""


def _plain_node(loader: _PlainYamlLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_PlainYamlLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain_node)


def saved_viewer_host(config_path: str | Path) -> str | None:
    """``viewer.websocket_host`` as saved in a run's ``config.yml``, or None when the file or the value is missing."""
    try:
        config = yaml.load(Path(config_path).read_text(), Loader=_PlainYamlLoader)
    except (OSError, yaml.YAMLError):
        return None
    viewer = config.get("viewer") if isinstance(config, dict) else None
    host = viewer.get("websocket_host") if isinstance(viewer, dict) else None
    return host if isinstance(host, str) and host else None


def ns_viewer_host(command_line_host: str, saved_host: str | None, argv: Sequence[str] | None = None) -> str:
    """The host ``ns-viewer`` binds a dynsplat run's viewer to.

    Args:
        command_line_host: ``websocket_host`` of ns-viewer's own ``ViewerConfig`` (nerfstudio's ``0.0.0.0`` unless
            ``--viewer.websocket-host`` is given).
        saved_host: The host saved in the run's ``config.yml`` (``127.0.0.1`` unless the run was trained with
            another ``--viewer.websocket-host``), None when unknown.
        argv: The command line (default ``sys.argv``).

    Returns:
        ``command_line_host`` when the command line names a host, else ``saved_host``, else loopback.
    """
    if host_given_on_command_line(argv):
        return command_line_host
    return saved_host or DEFAULT_VIEWER_HOST


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


class DynsplatViewerControl(ViewerControl):
    """Applies the dynsplat viewer defaults ("Max res", first view of new clients; see :func:`configure_viewer`).

    A dynsplat pipeline holds one as a public attribute: nerfstudio's ``Viewer`` collects the ``ViewerControl``
    objects of the pipeline it shows and calls their ``_setup`` with itself at the end of its constructor (ns-train and
    ns-viewer alike), so the defaults reach exactly the viewers of dynsplat pipelines.
    """

    def _setup(self, viewer: Any) -> None:
        super()._setup(viewer)
        configure_viewer(viewer)


def _run_config_path(log_filename: Path, argv: Sequence[str] | None = None) -> Path:
    """The ``config.yml`` ns-viewer loaded: its ``--load-config``, else the one next to the viewer log (where
    nerfstudio's viewer looks for it too)."""
    given = flag_value(LOAD_CONFIG_FLAGS, argv)
    return Path(given) if given else Path(log_filename).parent / "config.yml"


class SavedHostViewer(Viewer):
    """nerfstudio's ``Viewer`` as ``ns-viewer`` builds it; for dynsplat pipelines it binds to :func:`ns_viewer_host`
    (command line, else the host saved with the run, else loopback) instead of ns-viewer's command-line default."""

    def __init__(self, config: Any, log_filename: Path, datapath: Path, pipeline: Any, *args: Any, **kwargs: Any):
        if is_dynsplat_pipeline(pipeline):
            host = ns_viewer_host(config.websocket_host, saved_viewer_host(_run_config_path(log_filename)))
            if host != config.websocket_host:
                config = dataclasses.replace(config, websocket_host=host)
        super().__init__(config, log_filename, datapath, pipeline, *args, **kwargs)


def use_saved_viewer_host() -> None:
    """Makes ``ns-viewer`` bind a dynsplat run's viewer to the host saved with the run unless its command line names
    one (see :func:`ns_viewer_host`). Called when a dynsplat pipeline is set up; does nothing outside ``ns-viewer``
    (i.e. when ``nerfstudio.scripts.viewer.run_viewer`` is not imported).

    Why this patches nerfstudio: ``RunViewer.main`` replaces the saved ``ViewerConfig`` with the one built from its own
    command line (host ``0.0.0.0`` unless given) after ``eval_setup`` and passes it straight to ``Viewer(...)``,
    which binds its server first thing; nerfstudio offers no hook in between (``ViewerControl._setup`` runs after the
    server is bound). So, only in a process that set up a dynsplat pipeline, the name ``ViewerState`` in
    ``run_viewer`` (what ``_start_viewer`` constructs) is pointed at :class:`SavedHostViewer`, which changes the host
    for dynsplat pipelines only. nerfstudio's ``Viewer`` class and every other module are left as they are.
    """
    run_viewer = sys.modules.get(RUN_VIEWER_MODULE)
    if run_viewer is not None and getattr(run_viewer, "ViewerState", None) is Viewer:
        run_viewer.ViewerState = SavedHostViewer
