"""nerfstudio's viewer on dynsplat models without a browser: the time slider and render-panel keyframe times reach the
model, the host the viewer binds to (command line, saved config, loopback), the CPU still-frame resolution, the
first view."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import free_port
from nerfstudio.cameras.camera_paths import get_path_from_json
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.viewer.utils import CameraState
from torch import nn

from dynsplat_ns import viewer as dyn_viewer
from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion import MarblesMotionConfig

#: World-space shift of every Gaussian between t=0 and t=1 (linear in time), so renders at two times must differ.
SHIFT = (0.6, 0.6, 0.0)


@pytest.fixture(scope="module")
def moving(dnerf_scene):
    """(dataparser outputs, a marbles model on CPU whose Gaussians all translate by SHIFT over t ∈ [0, 1])."""
    outputs = DNeRFDataParserConfig(data=dnerf_scene).setup().get_dataparser_outputs("train")
    meta = outputs.metadata
    cfg = DynamicSplatModelConfig(motion=MarblesMotionConfig(), sh_degree=0, rasterizer_backend="torch")
    model = cfg.setup(
        scene_box=outputs.scene_box,
        num_train_data=len(outputs.image_filenames),
        metadata=meta,
        device="cpu",
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )
    with torch.no_grad():
        offsets = model.gauss_params["marble_offsets"]
        ramp = torch.linspace(0.0, 1.0, offsets.shape[1])[None, :, None]
        offsets.copy_(ramp * torch.tensor(SHIFT))
        model.gauss_params["opacities"].fill_(2.0)  # opaque enough that the shift is unmistakable
    model.eval()
    return outputs, model


class _StubControlPanel:
    """The attributes of nerfstudio's ControlPanel that RenderStateMachine._render_img reads."""

    def __init__(self, time: float, max_res: int = 48):
        self.time, self.max_res = time, max_res
        self.crop_viewport, self.layer_depth = False, False
        self.background_color = (38, 42, 55)


def _render_through_viewer(model, c2w: torch.Tensor, time: float) -> torch.Tensor:
    """One render by nerfstudio's viewer render thread code (RenderStateMachine._render_img) with the control panel's
    Time slider at ``time``, as a connected browser would trigger it."""
    from nerfstudio.viewer.render_state_machine import RenderStateMachine

    viewer = SimpleNamespace(
        control_panel=_StubControlPanel(time),
        render_tab_state=SimpleNamespace(preview_render=False),
        include_time=True,
        train_lock=threading.Lock(),
        step=0,
        get_model=lambda: model,
    )
    machine = RenderStateMachine(viewer, 10.0, client=None)  # type: ignore[arg-type]
    machine.state = "high"
    state = CameraState(fov=0.7, aspect=1.0, c2w=c2w[:3, :4].double(), camera_type=CameraType.PERSPECTIVE, time=0.0)
    rgb = machine._render_img(state)["rgb"]
    assert rgb.shape == (48, 48, 3)  # "high": Max res
    return rgb


def test_time_slider_reaches_the_model(moving):
    """The viewer copies the Time slider into Cameras.times; the model renders the motion state at that time."""
    outputs, model = moving
    c2w = outputs.cameras.camera_to_worlds[0]
    at0, at1, again0 = (_render_through_viewer(model, c2w, t) for t in (0.0, 1.0, 0.0))
    assert (at0 - at1).abs().mean() > 0.01, "moving the Time slider did not change the render"
    assert torch.equal(at0, again0), "renders at the same time differ"


def test_render_panel_keyframe_times_survive_camera_path(moving):
    """A camera path exported by the viewer's Render tab keeps each keyframe's time ("render_time"), and ns-render's
    loader (get_path_from_json) hands them to the model as Cameras.times."""
    outputs, model = moving
    c2w = torch.eye(4)
    c2w[:3, :4] = outputs.cameras.camera_to_worlds[0]
    frames = [
        {"camera_to_world": c2w.flatten().tolist(), "fov": 40.0, "aspect": 1.0, "render_time": t} for t in (0.0, 1.0)
    ]
    path = {
        "camera_type": "perspective",
        "render_height": 32,
        "render_width": 32,
        "seconds": 1.0,
        "camera_path": frames,
        "keyframes": [{"render_time": 0.0, "override_time_enabled": True}, {"render_time": 1.0}],
        "default_time": 0.5,
    }
    cameras = get_path_from_json(json.loads(json.dumps(path)))
    assert cameras.times is not None and cameras.times.flatten().tolist() == [0.0, 1.0]
    with torch.no_grad():
        first, last = (model.get_outputs_for_camera(cameras[i : i + 1])["rgb"] for i in (0, 1))
    assert (first - last).abs().mean() > 0.01


def test_ns_viewer_host_command_line_then_saved_then_loopback():
    """ns-viewer's host: the command line's when given, else the one saved with the run (explicit 0.0.0.0 too),
    else loopback."""
    plain = ["ns-viewer", "--load-config", "c.yml"]
    assert dyn_viewer.ns_viewer_host("0.0.0.0", None, argv=plain) == "127.0.0.1"
    assert dyn_viewer.ns_viewer_host("0.0.0.0", "127.0.0.1", argv=plain) == "127.0.0.1"
    assert dyn_viewer.ns_viewer_host("0.0.0.0", "0.0.0.0", argv=plain) == "0.0.0.0"  # saved explicitly
    assert dyn_viewer.ns_viewer_host("0.0.0.0", "192.168.1.5", argv=plain) == "192.168.1.5"
    assert dyn_viewer.ns_viewer_host("0.0.0.0", "127.0.0.1", argv=[*plain, "--viewer.websocket-host", "0.0.0.0"]) == (
        "0.0.0.0"
    )
    assert dyn_viewer.ns_viewer_host("10.0.0.2", "0.0.0.0", argv=[*plain, "--viewer.websocket_host=10.0.0.2"]) == (
        "10.0.0.2"
    )
    assert dyn_viewer.flag_value(dyn_viewer.LOAD_CONFIG_FLAGS, ["ns-viewer", "--load-config=a.yml"]) == "a.yml"
    assert dyn_viewer.flag_value(dyn_viewer.LOAD_CONFIG_FLAGS, ["ns-viewer", "--load_config", "b.yml"]) == "b.yml"
    assert dyn_viewer.flag_value(dyn_viewer.LOAD_CONFIG_FLAGS, ["ns-viewer"]) is None


def _save_run_config(run_dir, host: str):
    """A run's config.yml as nerfstudio writes it (yaml.dump of the TrainerConfig), with ``host`` saved."""
    import yaml
    from nerfstudio.engine.trainer import TrainerConfig

    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainerConfig(method_name="dynsplat-4dgs", viewer=ViewerConfig(websocket_host=host))
    (run_dir / "config.yml").write_text(yaml.dump(config))
    return run_dir / "config.yml"


def test_saved_viewer_host_reads_nerfstudio_config_yml(tmp_path):
    assert dyn_viewer.saved_viewer_host(_save_run_config(tmp_path / "a", "0.0.0.0")) == "0.0.0.0"
    assert dyn_viewer.saved_viewer_host(_save_run_config(tmp_path / "b", "127.0.0.1")) == "127.0.0.1"
    assert dyn_viewer.saved_viewer_host(tmp_path / "missing.yml") is None
    (tmp_path / "bad.yml").write_text("viewer: [unclosed")
    assert dyn_viewer.saved_viewer_host(tmp_path / "bad.yml") is None


def test_viewer_max_res():
    assert dyn_viewer.viewer_max_res(torch.device("cpu"), environ={}) == dyn_viewer.CPU_MAX_RES
    assert dyn_viewer.viewer_max_res(torch.device("cuda"), environ={}) is None
    assert dyn_viewer.viewer_max_res("cuda", environ={dyn_viewer.MAX_RES_ENV: "640"}) == 640
    with pytest.raises(ValueError, match=dyn_viewer.MAX_RES_ENV):
        dyn_viewer.viewer_max_res("cpu", environ={dyn_viewer.MAX_RES_ENV: "big"})


class _Pipeline(nn.Module):
    """What nerfstudio's Viewer reads from a pipeline (model, datamanager.includes_time / train_dataset), with the
    ViewerControl a DynsplatPipeline holds."""

    def __init__(self, model, cameras):
        super().__init__()
        self.model = model
        self.datamanager = SimpleNamespace(includes_time=True, train_dataset=SimpleNamespace(cameras=cameras))
        self.viewer_defaults = dyn_viewer.DynsplatViewerControl()


@pytest.mark.parametrize(
    ("saved", "command_line", "expected"),
    [("127.0.0.1", None, "127.0.0.1"), ("127.0.0.2", None, "127.0.0.2"), ("127.0.0.2", "127.0.0.3", "127.0.0.3")],
    ids=["saved-default", "saved-explicit", "command-line"],
)
def test_ns_viewer_on_a_dynsplat_pipeline(moving, tmp_path, monkeypatch, saved, command_line, expected):
    """The viewer ns-viewer builds (run_viewer.ViewerState, after a dynsplat pipeline was set up): bound to the host on
    its command line, else the one saved in config.yml, although its own config says nerfstudio's 0.0.0.0; Time
    slider shown, CPU Max res, first view through training camera 0."""
    from nerfstudio.scripts.viewer import run_viewer
    from nerfstudio.viewer.viewer import Viewer

    outputs, model = moving
    config_path = _save_run_config(tmp_path / "run", saved)
    argv = ["ns-viewer", "--load-config", str(config_path)]
    config = ViewerConfig(websocket_port=free_port())
    assert config.websocket_host == "0.0.0.0"
    if command_line is not None:
        argv += ["--viewer.websocket-host", command_line]
        config = ViewerConfig(websocket_port=config.websocket_port, websocket_host=command_line)
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.delenv(dyn_viewer.MAX_RES_ENV, raising=False)
    monkeypatch.setattr(run_viewer, "ViewerState", run_viewer.ViewerState)  # restored after the test
    dyn_viewer.use_saved_viewer_host()
    dyn_viewer.use_saved_viewer_host()  # idempotent
    assert run_viewer.ViewerState is dyn_viewer.SavedHostViewer
    assert Viewer.__init__.__module__ == "nerfstudio.viewer.viewer"  # nerfstudio's class is untouched
    viewer = run_viewer.ViewerState(
        config, tmp_path / "run" / "viewer_log.txt", tmp_path, _Pipeline(model, outputs.cameras)
    )
    try:
        assert viewer.viser_server.get_host() == expected
        assert any(expected in line for line in viewer.viewer_info), viewer.viewer_info
        assert viewer.include_time and viewer.control_panel._time_enabled
        assert viewer.control_panel.max_res == dyn_viewer.CPU_MAX_RES
    finally:
        viewer.viser_server.stop()


def test_ns_train_viewer_keeps_its_config_host_and_gets_the_dynsplat_defaults(moving, tmp_path, monkeypatch):
    """ns-train builds nerfstudio's own Viewer from the run's config: its host is used as is (dynsplat's default is
    127.0.0.1; an explicit one is honoured), and the pipeline's DynsplatViewerControl applies the CPU Max res."""
    from nerfstudio.viewer.viewer import Viewer

    outputs, model = moving
    monkeypatch.setattr("sys.argv", ["ns-train", "dynsplat-4dgs"])
    monkeypatch.delenv(dyn_viewer.MAX_RES_ENV, raising=False)
    config = ViewerConfig(websocket_port=free_port(), websocket_host="127.0.0.2")
    viewer = Viewer(config, tmp_path / "viewer_log.txt", tmp_path, _Pipeline(model, outputs.cameras))
    try:
        assert viewer.viser_server.get_host() == "127.0.0.2"
        assert viewer.control_panel.max_res == dyn_viewer.CPU_MAX_RES
    finally:
        viewer.viser_server.stop()


def test_first_view_is_training_camera_zero(moving):
    outputs, model = moving
    cams = outputs.cameras
    c2w = cams.camera_to_worlds[0].double().numpy()
    view = dyn_viewer.initial_view(_Pipeline(model, cams))
    assert view is not None
    assert abs(view["fov"] - 2 * torch.atan(cams.height[0] / 2 / cams.fy[0]).item()) < 1e-6
    assert (abs(view["position"] - c2w[:, 3] * dyn_viewer.VISER_SCALE) < 1e-6).all()
    look = view["look_at"] - view["position"]
    assert float(look @ -c2w[:, 2]) > 0.99 * float((look**2).sum() ** 0.5)  # looks along the camera's -z
    # With frustums drawn, the view starts just past camera 0's own frustum (a few hundredths of a world unit).
    ahead = dyn_viewer.initial_view(_Pipeline(model, cams), frustum_scale=0.1)
    step = (ahead["position"] - view["position"]) / dyn_viewer.VISER_SCALE
    assert 0.01 < float(step @ -c2w[:, 2]) < 0.1 and (abs(ahead["look_at"] - view["look_at"]) < 1e-9).all()
