"""Old import path of :mod:`dynsplat_ns.training.pipeline`, named by config.yml files of earlier runs."""

from dynsplat_ns.training.pipeline import *  # noqa: F403
