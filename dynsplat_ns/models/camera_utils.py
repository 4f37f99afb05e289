"""Camera conversions between nerfstudio (OpenGL c2w) and the rasterizer (OpenCV world→camera)."""

from __future__ import annotations

import torch
from torch import Tensor


def viewmats_from_c2w(c2w: Tensor) -> Tensor:
    """nerfstudio camera-to-world [C, 3, 4] (OpenGL: x right, y up, z back) → world-to-camera [C, 4, 4] (OpenCV).

    Plain torch (no ``torch.compile``), so it runs on any device without a compiler.
    """
    rot = c2w[:, :3, :3] * torch.tensor([1.0, -1.0, -1.0], device=c2w.device, dtype=c2w.dtype)
    trans = c2w[:, :3, 3:4]
    rot_inv = rot.transpose(1, 2)
    viewmat = torch.zeros(c2w.shape[0], 4, 4, device=c2w.device, dtype=c2w.dtype)
    viewmat[:, :3, :3] = rot_inv
    viewmat[:, :3, 3:4] = -rot_inv @ trans
    viewmat[:, 3, 3] = 1.0
    return viewmat
