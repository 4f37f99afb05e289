"""The compositing rules shared by every renderer here; they are gsplat 1.4.0's.

* ``alpha = min(ALPHA_MAX, opacity * exp(-sigma))`` with ``sigma = d^T conic d / 2`` and ``d = mean2d - pixel centre``
  (pixel centres at ``+0.5``); pairs with ``alpha < ALPHA_MIN`` (or ``sigma < 0``) are skipped.
* Front to back, a pixel stops before the first Gaussian whose inclusion would take its transmittance to
  ``<= T_MIN``; that Gaussian and everything behind it are not composited.
* A Gaussian with ``radius > 0`` may only touch pixels of the ``TILE_SIZE`` tiles overlapped by ``mean2d +- radius``.
"""

__all__ = ["ALPHA_MIN", "ALPHA_MAX", "T_MIN", "TILE_SIZE"]

ALPHA_MIN = 1.0 / 255.0  # pairs below this alpha are skipped
ALPHA_MAX = 0.999  # alpha is clamped to this
T_MIN = 1e-4  # a pixel stops before its transmittance would reach this
TILE_SIZE = 16  # gsplat's tile size, which defines where a Gaussian may contribute
