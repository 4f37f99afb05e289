"""Old import path of :mod:`dynsplat_ns.training.trainer`, named by config.yml files of earlier runs."""

from dynsplat_ns.training.trainer import *  # noqa: F403
