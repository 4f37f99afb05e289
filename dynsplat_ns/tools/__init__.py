"""Console scripts (camera paths, novelty, compare, per-time export)."""
