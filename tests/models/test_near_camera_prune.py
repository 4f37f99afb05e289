"""``near_camera_prune``: Gaussians next to a training camera are removed at the densification steps (issue 17)."""

from __future__ import annotations

import dataclasses
import math

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox
from quick_train import quick_train

from dynsplat_ns.method_configs.fourdgs import fourdgs_method
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.training.trainer import resolve_run_schedules


def _ring_cameras(n: int = 6, radius: float = 2.0, size: int = 16) -> Cameras:
    """OpenGL cameras on a ring around the origin, looking at it."""
    c2w = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = torch.tensor([radius * math.cos(a), radius * math.sin(a), 0.0])
        back = eye / eye.norm()  # camera +z points away from the target
        right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0]), back)
        up = torch.linalg.cross(back, right)
        c2w.append(torch.stack([right, up, back, eye], dim=1))
    return Cameras(camera_to_worlds=torch.stack(c2w), fx=16.0, fy=16.0, cx=size / 2, cy=size / 2, width=size,
                   height=size)  # fmt: skip


def _trained_points(prune: float) -> tuple[torch.Tensor, torch.Tensor]:
    cameras = _ring_cameras()
    centres = cameras.camera_to_worlds[:, :3, 3]
    gen = torch.Generator().manual_seed(0)
    inner = (torch.rand(200, 3, generator=gen) - 0.5) * 0.8  # around the origin, ~2 from every camera
    beside = centres[:2] + torch.tensor([0.0, 0.0, 0.1])  # 0.1 above two cameras
    points = torch.cat([inner, beside])
    config = DynamicSplatModelConfig(
        near_camera_prune=prune, warmup_length=2, refine_every=4, stop_split_at=100, sh_degree=0
    )
    model = config.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-3.0, -3, -3], [3, 3, 3]])), num_train_data=len(cameras),
        metadata={"background_color": torch.ones(3)}, device="cpu",
        seed_points=(points, torch.full_like(points, 128, dtype=torch.uint8)),
    )  # fmt: skip
    images = [torch.ones(16, 16, 3) for _ in range(len(cameras))]
    trainer, _ = resolve_run_schedules(dataclasses.replace(fourdgs_method.config, max_num_iterations=10))
    quick_train(model, cameras, images, 10, trainer.optimizers)
    return model.gauss_params["means"].detach(), centres


def test_gaussians_beside_a_training_camera_are_pruned_and_others_kept():
    means, centres = _trained_points(prune=0.3)  # neighbouring cameras 2 apart: radius 0.6
    assert torch.cdist(means, centres).min() > 0.3
    kept_off, _ = _trained_points(prune=0.0)
    assert torch.cdist(kept_off, centres).min() < 0.3  # off: they stay
    assert means.shape[0] >= kept_off.shape[0] - 2 - 20  # the rest is kept (densification aside)
