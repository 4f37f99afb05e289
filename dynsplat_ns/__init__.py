"""dynsplat-ns: dynamic and deblurred Gaussian splatting as nerfstudio plugins (importing this is cheap)."""

import os as _os

__version__ = "0.1.0"

# Modules that moved keep their old import paths, for config.yml files of earlier runs (``_moved/``).
__path__.append(_os.path.join(_os.path.dirname(__file__), "_moved"))
