"""Real spherical harmonics up to degree 3 (the 3DGS / gsplat basis and sign convention), in pure torch."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MAX_SH_DEGREE", "num_sh_bases", "sh_bases", "eval_sh", "sh_to_rgb"]

MAX_SH_DEGREE = 3

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients used by ``degree``: ``(degree + 1) ** 2``."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate the real SH basis functions at unit directions.

    Args:
        degree: Highest band, 0..3.
        dirs: Unit directions. [..., 3]

    Returns:
        Basis values, ordered band by band (m = -l..l). [..., (degree + 1) ** 2]
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be in [0, {MAX_SH_DEGREE}], got {degree}")
    x, y, z = dirs.unbind(-1)  # [...] each
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH coefficients along (not necessarily unit) directions.

    Args:
        degree: Bands to use; only the first ``(degree + 1) ** 2`` coefficients are read.
        dirs: View directions, normalised here. [..., 3]
        coeffs: SH coefficients. [..., K, 3] with ``K >= (degree + 1) ** 2``.

    Returns:
        The SH value per channel. [..., 3]
    """
    unit = torch.nn.functional.normalize(dirs, dim=-1)  # [..., 3]
    bases = sh_bases(degree, unit)  # [..., B]
    return (bases[..., None] * coeffs[..., : bases.shape[-1], :]).sum(dim=-2)


def sh_to_rgb(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """gsplat's colour rule: ``max(SH(dirs) + 0.5, 0)``.

    Args:
        degree: SH degree in use.
        dirs: View directions (Gaussian centre minus camera centre). [..., 3]
        coeffs: SH coefficients. [..., K, 3]

    Returns:
        Colours. [..., 3]
    """
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)
