"""The one value that carries every non-tensor option of a rasterization to the backends.

:func:`dynsplat_ns.render.rasterize` keeps gsplat 1.4.0's keyword arguments and builds one :class:`RasterSettings`
from them; every backend (:func:`~dynsplat_ns.render.torch_backend.rasterize_torch`,
:func:`~dynsplat_ns.render.compiled_backend.rasterize_compiled`,
:func:`~dynsplat_ns.render.gsplat_backend.rasterize_gsplat` and the dense reference
:func:`~dynsplat_ns.render.dense_reference.dense_rasterize`) takes the tensors plus ``settings``. A new option is a
new field here (with its check in :func:`check_settings`) and one keyword of ``rasterize``; no backend signature
changes. The tensors are checked against a settings value by :func:`dynsplat_ns.render.validation.check_inputs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from dynsplat_ns.render.features import RENDER_MODES
from dynsplat_ns.render.options import DEFAULT_BLOCK_OPTIONS, DEFAULT_COMPILED_BLOCK, BlockOptions
from dynsplat_ns.render.rules import TILE_SIZE
from dynsplat_ns.render.sh import MAX_SH_DEGREE

__all__ = ["BACKENDS", "RASTERIZE_MODES", "RasterSettings", "check_settings"]

#: Values of ``RasterSettings.backend`` (``rasterize(backend=...)``).
BACKENDS = ("auto", "torch", "gsplat", "cpp")
#: Values of ``RasterSettings.rasterize_mode``.
RASTERIZE_MODES = ("classic", "antialiased")
#: Settings fields that hold a real number (culling planes and the 2D blur).
_REAL_FIELDS = ("near_plane", "far_plane", "eps2d")


@dataclass(frozen=True)
class RasterSettings:
    """Image size and every option of one rasterization, validated once when built.

    Invalid values raise ``ValueError`` (``TypeError`` for a ``torch_options`` that is not a :class:`BlockOptions`)
    with the messages of :func:`check_settings`. Frozen: derive variants with
    ``dataclasses.replace(settings, render_mode="RGB+D")``, which validates again.
    """

    width: int
    """Image width in pixels (a positive int)."""
    height: int
    """Image height in pixels (a positive int)."""
    sh_degree: int | None = None
    """None: ``colors`` are features [(C,) N, D]; else the SH degree in use (0..3) of SH coefficients
    [(C,) N, K, 3], evaluated along ``mean - camera centre`` as ``max(SH + 0.5, 0)``."""
    render_mode: str = "RGB"
    """One of :data:`dynsplat_ns.render.features.RENDER_MODES`: "RGB", "D" (accumulated depth), "ED" (expected
    depth), "RGB+D" or "RGB+ED" (depth last)."""
    near_plane: float = 0.01
    """Gaussians with camera z < near_plane are culled (a real number, not NaN)."""
    far_plane: float = 1e10
    """Gaussians with camera z > far_plane are culled (a real number, not NaN)."""
    eps2d: float = 0.3
    """Blur added to the projected 2D covariances (a real number, not NaN)."""
    absgrad: bool = False
    """Also accumulate ``meta["means2d"].absgrad`` (sum over pixels of |dL/dmeans2d|) in backward."""
    backend: str = "auto"
    """One of :data:`BACKENDS`; what :func:`dynsplat_ns.render.rasterize` dispatches to. The backend functions
    themselves do not read it."""
    rasterize_mode: str = "classic"
    """One of :data:`RASTERIZE_MODES`: "classic", or "antialiased" (mip-splatting opacity compensation)."""
    torch_options: BlockOptions = DEFAULT_BLOCK_OPTIONS
    """Block and chunk sizes of the torch backend's compositor (speed and memory only, never the result); None is
    accepted and stored as the defaults. Only the torch backend reads it."""
    compiled_block: int = DEFAULT_COMPILED_BLOCK
    """Pixel block side of the compiled CPU compositor (divides gsplat's 16-pixel tile; speed only, never the
    result). Only the compiled backend reads it; not a keyword of ``rasterize``."""

    def __post_init__(self) -> None:
        if self.torch_options is None:
            object.__setattr__(self, "torch_options", DEFAULT_BLOCK_OPTIONS)  # frozen: the one normalisation
        check_settings(self)


def check_settings(settings: RasterSettings) -> None:
    """Validate every option of a settings value (called once, by ``RasterSettings.__post_init__``).

    Args:
        settings: The value to check; its fields are documented on
            :class:`dynsplat_ns.render.settings.RasterSettings`.

    Raises:
        ValueError: for an unknown render_mode / backend / rasterize_mode, a width or height that is not a positive
            int, an sh_degree outside None / 0..3, a near_plane / far_plane / eps2d that is not a real number (or is
            NaN), an absgrad that is not a bool, or a compiled_block that does not divide the 16-pixel tile.
        TypeError: when ``torch_options`` is not a :class:`BlockOptions`.
    """
    if settings.render_mode not in RENDER_MODES:
        raise ValueError(f"rasterize: unknown render_mode {settings.render_mode!r}; expected one of {RENDER_MODES}")
    if settings.backend not in BACKENDS:
        raise ValueError(f"rasterize: unknown backend {settings.backend!r}; expected one of {BACKENDS}")
    if settings.rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(
            f"rasterize: unknown rasterize_mode {settings.rasterize_mode!r}; expected one of {RASTERIZE_MODES}"
        )
    for name in ("width", "height"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"rasterize: `{name}` must be a positive int, got {value!r}")
    sh_degree = settings.sh_degree
    if sh_degree is not None and (
        isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not 0 <= sh_degree <= MAX_SH_DEGREE
    ):
        raise ValueError(f"rasterize: `sh_degree` must be None or an int in [0, {MAX_SH_DEGREE}], got {sh_degree!r}")
    for name in _REAL_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
            raise ValueError(f"rasterize: `{name}` must be a real number, got {value!r}")
    if not isinstance(settings.absgrad, bool):
        raise ValueError(f"rasterize: `absgrad` must be a bool, got {settings.absgrad!r}")
    options = settings.torch_options
    if not isinstance(options, BlockOptions):
        raise TypeError(
            f"rasterize: `torch_options` must be None or a dynsplat_ns.render.BlockOptions, got "
            f"{type(options).__name__} (build one with BlockOptions(block_size=..., chunk_size=..., ...))"
        )
    block = settings.compiled_block
    if isinstance(block, bool) or not isinstance(block, int) or block <= 0 or TILE_SIZE % block:
        raise ValueError(f"rasterize: `compiled_block` must divide gsplat's {TILE_SIZE}-pixel tile, got {block!r}")
