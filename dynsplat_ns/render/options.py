"""Tuning options of the CPU compositors: the torch backend's block walk (:mod:`dynsplat_ns.render.composite`) and the
compiled compositor's pixel block (:mod:`dynsplat_ns.render.compiled_backend`).

They trade speed against transient memory; none of them changes a render or a gradient (the tests check that every
combination gives the same results). gsplat's CUDA backend ignores them. Both travel in
:class:`dynsplat_ns.render.settings.RasterSettings` (``torch_options``, ``compiled_block``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from dynsplat_ns.render.rules import TILE_SIZE

__all__ = ["BlockOptions", "DEFAULT_BLOCK_OPTIONS", "DEFAULT_COMPILED_BLOCK"]


@dataclass(frozen=True)
class BlockOptions:
    """How the torch backend cuts the image into pixel blocks and walks each block's front-to-back Gaussian list.

    Pass one as ``rasterize(..., torch_options=BlockOptions(...))``; invalid values raise ``ValueError`` here.
    """

    block_size: int = 2
    """Pixels per block side; must divide gsplat's 16-pixel tile (1, 2, 4, 8 or 16). Each block lists the Gaussians
    whose support overlaps it; smaller blocks list fewer Gaussians per pixel, larger ones cost fewer torch calls."""
    chunk_size: int = 64
    """List slots every block takes in the first step of the walk; each later step may take twice as many (up to
    ``max_chunk_size``), so blocks whose pixels stop early never evaluate the Gaussians behind."""
    min_chunk_size: int = 8
    """The fewest slots a block takes in one step (a short list rounds up to this; never more than the step's
    current chunk size)."""
    max_chunk_size: int = 1024
    """The most slots a block takes in one step; must be >= ``chunk_size``."""
    min_grid_cells: int = 1 << 15
    """Grids of fewer cells (blocks x pixels x slots) than this join the next larger size class: a grid costs a few
    dozen torch calls whatever its size. 0 gives every size class its own grid."""
    cell_budget: int = 1 << 22
    """Most grid cells evaluated at once (each cell a few floats for forward and backward): bounds the transient
    memory; larger grids are split into several."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            lowest = 0 if item.name == "min_grid_cells" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                kind = "a non-negative int" if lowest == 0 else "a positive int"
                raise ValueError(f"BlockOptions: {item.name} must be {kind}, got {value!r}")
        if TILE_SIZE % self.block_size:
            divisors = ", ".join(str(d) for d in range(1, TILE_SIZE + 1) if TILE_SIZE % d == 0)
            raise ValueError(
                f"BlockOptions: block_size must divide gsplat's {TILE_SIZE}-pixel tile ({divisors}), "
                f"got {self.block_size}"
            )
        if self.chunk_size > self.max_chunk_size:
            raise ValueError(
                f"BlockOptions: chunk_size ({self.chunk_size}) must not exceed max_chunk_size ({self.max_chunk_size})"
            )


#: The options used when none are given.
DEFAULT_BLOCK_OPTIONS = BlockOptions()

#: Pixel block side of the compiled compositor (any divisor of 16 gives the same result). Measured fwd+bwd, 1 thread:
#: 50k Gaussians of ~1 px std @ 128^2: block 4 / 8 / 16 = 101 / 113 / 214 ms; 10k of ~3 px std: 46 / 37 / 63 ms.
DEFAULT_COMPILED_BLOCK = 8
