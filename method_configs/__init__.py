"""nerfstudio method specifications of dynsplat-ns (installed as ``dynsplat_ns.method_configs``)."""
