"""DynamicSplatModel (a SplatfactoModel with time) and what it is built from: strategies, metrics, losses."""

import os as _os

# dynsplat_ns.models.pipeline moved to dynsplat_ns.training.pipeline; earlier runs' config.yml files name the old path.
__path__.append(_os.path.join(_os.path.dirname(_os.path.dirname(__file__)), "_moved", "models"))
