"""Old import path of :mod:`dynsplat_ns.training.datamanager`, named by config.yml files of earlier runs."""

from dynsplat_ns.training.datamanager import *  # noqa: F403
