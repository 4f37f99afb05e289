"""D-NeRF on the shared pipeline: :func:`read_dnerf_scene` is ``DNeRF.read_scene`` (``dynsplat-dnerf``).

``DNeRF`` gets everything the base does for every format (split_indices.json, train_fraction / train_count,
orientation options) while keeping its behaviour: poses as given (OpenGL, no orientation), scale = scale_factor, the
``±scene_bound`` box, times normalised over all split files, ``num_frames`` from the train split, only the parsed
split's images needed.

Frame indices (for ``split_indices.json``) run over ``transforms_train.json``, then ``transforms_val.json`` (when it
exists), then ``transforms_test.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import DataParserError
from .scene import SPLITS, SceneFrames

if TYPE_CHECKING:
    from .dnerf import DNeRF


def read_dnerf_scene(self: DNeRF, split: str) -> SceneFrames:
    """Every frame of the D-NeRF transforms files that exist, in the order train, val, test.

    ``transforms_train.json`` (its times give ``num_frames``) and the parsed split's file are required; the val
    split falls back to ``transforms_test.json`` when ``transforms_val.json`` is missing.

    Raises:
        DataParserError: A required file is missing, or any existing file is malformed (see ``read_transforms``).
    """
    from .dnerf import read_transforms  # dnerf imports this module

    requested = self._transforms_file(split)  # unknown split / missing file errors; val → test fallback
    train = self.data_dir / "transforms_train.json"
    if split != "train" and not train.exists():
        raise DataParserError(train, f"file not found (its times give num_frames, even for the {split} split)")
    sources = {name: self.data_dir / f"transforms_{name}.json" for name in SPLITS}
    sources[split] = requested
    if not sources["val"].exists():
        sources["val"] = sources["test"]
    frames, angles, splits, seen = [], [], {}, {}
    for name in SPLITS:
        path = sources[name]
        if path not in seen and (path.exists() or name in (split, "train")):  # required ones are read (and fail)
            meta = read_transforms(self.data_dir, path)
            seen[path] = list(range(len(frames), len(frames) + len(meta.frames)))
            frames += meta.frames
            angles += [meta.camera_angle_x] * len(meta.frames)
        splits[name] = seen.get(path, [])
    ones = np.ones(len(frames))
    return SceneFrames(
        image_filenames=[f.image for f in frames],
        c2w=np.stack([f.c2w for f in frames]),
        fov_x=np.asarray(angles),
        fx=ones, fy=ones, cx=ones, cy=ones, width=ones.astype(np.int64), height=ones.astype(np.int64),
        splits=splits,
        split_source=requested,
        pose_source=requested,
        times=np.asarray([f.time for f in frames], dtype=np.float64),
        scene_bound=float(self.config.scene_bound),
    )  # fmt: skip
