"""A learned background that depends only on the viewing direction: what lies at infinity (the sky).

Without a known background (no alpha in the data), splatfacto composites every training render over a random colour,
so whatever the Gaussians leave uncovered is penalised. On a 360° capture under an open sky that pushes Gaussians onto
every sky ray, and the cheapest place for them is right next to another camera, where only views from far away see
them, against the sky: each held-out view between the training cameras then looks through white blobs (issue 17:
removing the one to three Gaussians within 0.1 of such a camera raised its PSNR from 15 to 22 dB). An environment map
paints the sky the same way from every position, as the sky behaves, so no Gaussian is needed for it; where the scene
covers the background (rooms, objects filling the view) it is never seen and changes nothing.

The map is an equirectangular texture over the world's directions (azimuth around the world z axis, elevation from
it), through a sigmoid, sampled bilinearly with the azimuth wrapping around.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EnvironmentMap(nn.Module):
    """Background colour per world direction (an equirectangular RGB texture, learned).

    Args:
        height: Texture rows (elevation from -90° to 90°).
        width: Texture columns (azimuth all around).
        init: Initial colour (grey by default) of every direction.
    """

    def __init__(self, height: int = 16, width: int = 32, init: float = 0.5) -> None:
        super().__init__()
        logit = math.log(init / (1.0 - init))
        self.texture = nn.Parameter(torch.full((1, 3, height, width), logit))

    def forward(self, directions: Tensor) -> Tensor:
        """Colours in [0, 1] of ``directions`` [..., 3] (world frame, any length) → [..., 3]."""
        d = F.normalize(directions.to(self.texture.dtype), dim=-1)
        width = self.texture.shape[-1]
        # azimuth in [-1, 1] over the unpadded texture; one column padded on each side makes the seam wrap around
        azimuth = torch.atan2(d[..., 1], d[..., 0]) / math.pi * width / (width + 2)
        elevation = -torch.asin(d[..., 2].clamp(-1.0, 1.0)) / (math.pi / 2)  # row 0 looks up
        tex = torch.cat([self.texture[..., -1:], self.texture, self.texture[..., :1]], dim=-1)
        grid = torch.stack([azimuth, elevation], dim=-1).reshape(1, -1, 1, 2)
        rgb = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return torch.sigmoid(rgb[0, :, :, 0].T).reshape(*directions.shape[:-1], 3)


def view_directions(c2w: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """World-frame ray directions through the pixel centres of C pinhole cameras.

    Args:
        c2w: [C, 3, 4] camera-to-world (OpenGL axes: x right, y up, looking down -z).
        Ks: [C, 3, 3] intrinsics at the render resolution.
        width: Render width W.
        height: Render height H.

    Returns:
        [C, H, W, 3] directions (not normalised).
    """
    device, dtype = c2w.device, c2w.dtype
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    fx, fy, cx, cy = (Ks[:, i, j].to(dtype)[:, None, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    cam = torch.stack([(xs - cx) / fx, -(ys - cy) / fy, -torch.ones_like(xs).expand_as((xs - cx) / fx)], dim=-1)
    return torch.einsum("chwj,cij->chwi", cam, c2w[:, :3, :3])
