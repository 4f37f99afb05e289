"""Tiny random scenes and helpers shared by the rasterizer tests (imported by basename, no package needed)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dynsplat_ns.render import RasterSettings


def look_at_viewmat(eye, target, dtype=torch.float64) -> Tensor:
    """World-to-camera matrix (OpenCV: x right, y down, z forward) looking from ``eye`` at ``target``. [4, 4]"""
    eye = torch.as_tensor(eye, dtype=dtype)
    forward = torch.as_tensor(target, dtype=dtype) - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, -1.0, 0.0], dtype=dtype))
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])  # rows: camera axes in world
    view = torch.eye(4, dtype=dtype)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye
    return view


def intrinsics(width: int, height: int, focal: float, dtype=torch.float64) -> Tensor:
    """Pinhole K with the principal point at the image centre. [3, 3]"""
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def random_scene(
    n: int = 30,
    n_cams: int = 2,
    width: int = 24,
    height: int = 20,
    channels: int = 3,
    sh_degree: int | None = None,
    per_camera_colors: bool = False,
    dtype=torch.float64,
    seed: int = 0,
) -> dict[str, object]:
    """A small scene in front of ``n_cams`` cameras on an arc, as keyword arguments of ``rasterize``.

    Gaussians have footprints of a few pixels, some overlap heavily (so the early stop triggers) and a few lie
    off-screen or behind a camera (so culling triggers).
    """
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen, dtype=dtype) - 0.5) * torch.tensor([2.0, 1.6, 1.2], dtype=dtype)
    means[: max(1, n // 10)] += torch.tensor([0.0, 0.0, -6.0], dtype=dtype)  # behind the cameras
    means[max(1, n // 10) : max(2, n // 5)] += torch.tensor([9.0, 0.0, 0.0], dtype=dtype)  # off-screen
    quats = torch.randn(n, 4, generator=gen, dtype=dtype)
    scales = torch.rand(n, 3, generator=gen, dtype=dtype) * 0.15 + 0.03
    opacities = torch.rand(n, generator=gen, dtype=dtype) * 0.85 + 0.1
    lead = (n_cams,) if per_camera_colors else ()
    if sh_degree is None:
        colors = torch.rand(*lead, n, channels, generator=gen, dtype=dtype)
        bg_channels = channels
    else:
        colors = torch.randn(*lead, n, (sh_degree + 1) ** 2, 3, generator=gen, dtype=dtype) * 0.4
        bg_channels = 3
    viewmats, ks = [], []
    for cam in range(n_cams):
        angle = 0.35 * cam
        eye = [3.0 * math.sin(angle), 0.2 * cam, -3.0 * math.cos(angle)]
        viewmats.append(look_at_viewmat(eye, [0.0, 0.0, 0.0], dtype))
        ks.append(intrinsics(width, height, focal=1.1 * width, dtype=dtype))
    return {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmats": torch.stack(viewmats),
        "Ks": torch.stack(ks),
        "width": width,
        "height": height,
        "sh_degree": sh_degree,
        "backgrounds": torch.rand(n_cams, bg_channels, generator=gen, dtype=dtype),
    }


GRAD_KEYS = ("means", "quats", "scales", "opacities", "colors", "backgrounds")
#: The tensors a backend takes, in its positional order (the rest of a scene goes into RasterSettings).
TENSOR_KEYS = ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks", "backgrounds")


def backend_args(scene: dict[str, object], **options) -> tuple[dict[str, Tensor | None], RasterSettings]:
    """A scene (keyword arguments of ``rasterize``) as a backend's inputs: its tensors and one settings value.

    Args:
        scene: As returned by :func:`random_scene` or :func:`with_grads`.
        **options: Further :class:`RasterSettings` fields (render_mode, absgrad, torch_options, compiled_block, ...).

    Returns:
        ``(tensors, settings)`` for ``backend(**tensors, settings=settings)``.
    """
    tensors = {key: scene.get(key) for key in TENSOR_KEYS}
    options = {"sh_degree": scene.get("sh_degree"), **options}
    return tensors, RasterSettings(width=scene["width"], height=scene["height"], **options)


def with_grads(scene: dict[str, object], keys=GRAD_KEYS) -> dict[str, object]:
    """Copy of ``scene`` whose differentiable tensors are fresh leaves requiring grad."""
    out = dict(scene)
    for key in keys:
        if isinstance(out.get(key), Tensor):
            out[key] = out[key].detach().clone().requires_grad_(True)
    return out
