"""Static background, dynamic foreground (Shape-of-Motion's split), for every motion model at once.

A model may store a per-Gaussian flag ``gaussians["static"]`` ([N] float, 1 = static) in its Gaussian parameter dict
(so gsplat's densification splits/duplicates/prunes it in lock-step with the means: a new Gaussian inherits its
parent's flag). :meth:`MotionModel.forward <dynsplat_ns.motion.base.MotionModel.forward>` then evaluates the motion
on the dynamic Gaussians only and gives the static ones their canonical state: they never move, cost no motion
evaluation and receive no gradient through the motion. Without the flag (or with no static Gaussian) nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

#: Key of the per-Gaussian static flag in the Gaussian parameter dict ([N] float, > 0.5 = static).
STATIC_KEY = "static"

States = list[dict[str, Tensor]]


def static_mask(gaussians: Mapping[str, Tensor]) -> Tensor | None:
    """Bool [N] of the static Gaussians, or None when there is no flag or no Gaussian is static (the plain path)."""
    flag = gaussians.get(STATIC_KEY)
    if flag is None:
        return None
    static = flag.detach().reshape(-1) > 0.5
    return static if bool(static.any()) else None


def split_motion(
    gaussians: Mapping[str, Tensor],
    deform: Callable[[Mapping[str, Tensor]], States],
    canonical: Callable[[Mapping[str, Tensor]], dict[str, Tensor]],
) -> States | None:
    """The motion with the static Gaussians held at their canonical state, or None when there are none.

    Args:
        gaussians: The Gaussian parameter dict (every tensor with leading dim N), with its ``static`` flag.
        deform: The motion model's deformation of a Gaussian dict at the wanted times (one state per time).
        canonical: The motion model's canonical state of a Gaussian dict (e.g. Marbles' isotropic Gaussians).

    Returns:
        One state dict per time, each tensor [N, ...] in the Gaussians' order; None without static Gaussians.
    """
    static = static_mask(gaussians)
    if static is None:
        return None
    n = static.shape[0]
    dyn_idx = torch.nonzero(~static).reshape(-1)
    static_idx = torch.nonzero(static).reshape(-1)
    moving = deform({k: v[dyn_idx] for k, v in gaussians.items()})
    still = canonical({k: v[static_idx] for k, v in gaussians.items()})
    order = torch.empty(n, dtype=torch.long, device=static.device)
    order[torch.cat([dyn_idx, static_idx])] = torch.arange(n, device=static.device)
    return [{k: torch.cat([state[k], still[k]])[order] for k in state} for state in moving]
