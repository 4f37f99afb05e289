"""The datamanager caches on CPU without pin_memory() (nerfstudio forces 'cpu' caching above 500 images)."""

from __future__ import annotations

import torch

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig


def test_cpu_cache_works_without_cuda(dnerf_scene):
    cfg = DynsplatDatamanagerConfig(dataparser=DNeRFDataParserConfig(data=dnerf_scene), cache_images="cpu")
    dm = cfg.setup(device="cpu")
    camera, batch = dm.next_train(0)
    assert batch["image"].shape[-1] == 3 and camera.times is not None
    if not torch.cuda.is_available():
        assert not batch["image"].is_pinned()
