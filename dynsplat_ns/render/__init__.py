"""Gaussian rasterization for dynsplat-ns: gsplat's CUDA kernels when available, a pure-torch twin everywhere.

Use :func:`rasterize`; it has gsplat 1.4.0's ``rasterization`` signature subset and meta layout, plus an optional
``torch_options`` (:class:`BlockOptions`) that only the torch backend reads. It gathers its options into one
:class:`RasterSettings` (validated once), which is what every backend takes besides the tensors.
"""

from dynsplat_ns.render.api import rasterize
from dynsplat_ns.render.features import RENDER_MODES
from dynsplat_ns.render.meta import META_KEYS
from dynsplat_ns.render.options import BlockOptions
from dynsplat_ns.render.settings import BACKENDS, RasterSettings

__all__ = ["rasterize", "BlockOptions", "RasterSettings", "RENDER_MODES", "META_KEYS", "BACKENDS"]
