"""Dataparsers for dynamic scenes (installed as ``dynsplat_ns.dataparsers``)."""
