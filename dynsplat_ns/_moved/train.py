"""Old module of ``torchrun -m dynsplat_ns.train`` (now :mod:`dynsplat_ns.training.train`); still runs it."""

import sys

from dynsplat_ns.training.train import entrypoint

if __name__ == "__main__":
    sys.exit(entrypoint())
