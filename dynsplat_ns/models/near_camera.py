"""Pruning of the Gaussians next to a training camera (``--pipeline.model.near-camera-prune``).

Between neighbouring training cameras, out of their views, a Gaussian is seen only by cameras far away, against
the sky, so nothing in training stops it; a view in between (a held-out view on a 360° ring) looks right through it
(issue 17). At every refine step of the densification strategy, Gaussians closer to a training camera than that
camera's distance to its nearest other training camera, times the factor, are removed.
"""

from __future__ import annotations

import torch
from nerfstudio.cameras.cameras import Cameras
from torch import Tensor


class NearCameraPruner:
    """Remembers the training cameras' centres as they are rendered and says which Gaussians lie next to one.

    Args:
        factor: Multiple of each camera's nearest-neighbour distance within which Gaussians are removed (0: off).
    """

    def __init__(self, factor: float) -> None:
        self.factor = float(factor)
        self.centres: dict[tuple[float, ...], Tensor] = {}

    def record(self, cameras: Cameras) -> None:
        """Remembers the centres of ``cameras`` (training renders)."""
        if self.factor <= 0:
            return
        for centre in cameras.camera_to_worlds[..., :3, 3].reshape(-1, 3).detach().cpu():
            self.centres[tuple(round(float(x), 6) for x in centre)] = centre

    def drop_mask(self, means: Tensor, step: int, strategy) -> Tensor | None:
        """[N] bool of the Gaussians (centres ``means`` [N, 3]) to remove at ``step``; None when nothing is to be done
        (off, fewer than two cameras seen, not a refine step of ``strategy``, or nothing / everything near)."""
        refining = strategy.refine_start_iter < step < strategy.refine_stop_iter and step % strategy.refine_every == 0
        if self.factor <= 0 or len(self.centres) < 2 or not refining:
            return None
        with torch.no_grad():
            c = torch.stack(list(self.centres.values())).to(means.device).float()
            spacing = torch.cdist(c, c).fill_diagonal_(float("inf")).min(dim=1).values  # [C]
            drop = (torch.cdist(means.detach().float(), c) < self.factor * spacing).any(dim=1)
        return drop if bool(drop.any()) and not bool(drop.all()) else None
