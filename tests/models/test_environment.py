"""The learned environment-map background of data without alpha (issue 17)."""

from __future__ import annotations

import math

import torch
from nerfstudio.cameras.cameras import Cameras

from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.models.environment import EnvironmentMap, view_directions


def _direction(azimuth: float, elevation: float) -> torch.Tensor:
    return torch.tensor(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def test_environment_map_starts_grey_wraps_around_and_tells_up_from_down():
    env = EnvironmentMap(height=8, width=16)
    dirs = torch.randn(100, 3)
    assert torch.allclose(env(dirs), torch.full((100, 3), 0.5))
    with torch.no_grad():
        env.texture.normal_(generator=torch.Generator().manual_seed(0))
    seam = env(torch.stack([_direction(math.pi - 1e-4, 0.3), _direction(-math.pi + 1e-4, 0.3)]))
    assert torch.allclose(seam[0], seam[1], atol=1e-3)  # no seam where the azimuth wraps
    with torch.no_grad():  # a bright top row (straight up) and a dark bottom row (straight down)
        env.texture[..., 0, :] = 3.0
        env.texture[..., -1, :] = -3.0
    up, down = env(torch.stack([_direction(0.7, 1.5), _direction(-2.0, -1.5)]))
    assert torch.allclose(up, torch.full((3,), torch.sigmoid(torch.tensor(3.0)).item()), atol=1e-4)
    assert torch.allclose(down, torch.full((3,), torch.sigmoid(torch.tensor(-3.0)).item()), atol=1e-4)


def test_view_directions_follow_the_camera():
    c2w = torch.eye(4)[:3][None]  # OpenGL camera at the origin looking down -z
    K = torch.tensor([[[10.0, 0.0, 2.0], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]]])
    d = view_directions(c2w, K, 4, 4)
    assert d.shape == (1, 4, 4, 3)
    assert torch.allclose(d[0, 1, 1], torch.tensor([-0.05, 0.05, -1.0]))  # pixel centre (1.5, 1.5)
    turned = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])[None]  # 90° about y
    assert torch.allclose(view_directions(turned, K, 4, 4)[0, 1, 1], torch.tensor([-1.0, 0.05, 0.05]))


def _camera(size: int = 16) -> Cameras:
    c2w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]])[None]
    return Cameras(camera_to_worlds=c2w, fx=20.0, fy=20.0, cx=size / 2, cy=size / 2, width=size, height=size)


def _model(background: str, metadata: dict):
    points = (torch.rand(50, 3) - 0.5, torch.randint(0, 255, (50, 3), dtype=torch.uint8))
    config = DynamicSplatModelConfig(background_color=background)  # type: ignore[arg-type]
    from nerfstudio.data.scene_box import SceneBox

    box = SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    return config.setup(scene_box=box, num_train_data=1, metadata=metadata, seed_points=points, device="cpu")


def test_auto_background_is_the_environment_without_alpha_and_learns():
    model = _model("auto", {})
    assert model.environment is not None and "environment" in model.get_param_groups()
    assert "environment" in DynamicSplatModelConfig().extra_optimizer_configs(100)
    model.optimizers = None  # set by the training callbacks; the strategy's pre-backward hook does not use it
    model.train()
    out = model.get_outputs(_camera())
    assert out["background"].shape == (16, 16, 3)
    sky = out["accumulation"] < 0.5
    assert sky.any()
    out["rgb"].square().mean().backward()
    assert model.environment.texture.grad is not None and model.environment.texture.grad.abs().sum() > 0
    model.eval()
    assert model.get_outputs(_camera())["background"].shape == (16, 16, 3)


def test_alpha_data_and_explicit_colours_keep_a_constant_background():
    white = _model("auto", {"background_color": torch.ones(3)})
    assert white.environment is None and "environment" not in white.get_param_groups()
    white.eval()
    assert torch.equal(white.get_outputs(_camera())["background"], torch.ones(16, 16, 3))
    assert _model("random", {}).environment is None
