"""``make_d2rf_scene(static_points_only=True)``: SfM points on the static box only, as a real video's SfM gives."""

from __future__ import annotations

import numpy as np
from nerfstudio.data.utils.colmap_parsing_utils import read_points3D_binary

from dynsplat_ns.scenes.d2rf import make_d2rf_scene
from dynsplat_ns.scenes.synthetic import default_scene


def test_static_points_only_keeps_the_box_points(tmp_path):
    box = default_scene().box
    lo, hi = np.asarray(box.lo) - 1e-6, np.asarray(box.hi) + 1e-6

    def points(**kw) -> np.ndarray:
        root = make_d2rf_scene(tmp_path / str(len(kw)), width=16, height=8, n_times=2, num_points=200, **kw)
        return np.stack([p.xyz for p in read_points3D_binary(str(root / "sparse" / "0" / "points3D.bin")).values()])

    on_box = lambda xyz: ((xyz >= lo) & (xyz <= hi)).all(axis=1)  # noqa: E731
    every, static = points(), points(static_points_only=True)
    assert len(every) == 200 and not on_box(every).all()  # the spheres have points too
    assert len(static) == 100 and on_box(static).all()
