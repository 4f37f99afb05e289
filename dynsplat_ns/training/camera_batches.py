"""Several training cameras per step, and each rank's share of them (``--pipeline.datamanager.cameras-per-step``).

nerfstudio's ``FullImageDatamanager`` pops one camera per step from a random permutation of the training images (seeded
by ``train_cameras_sampling_seed``) and draws a new permutation when it runs out. :class:`CameraBatchMixin` keeps that
stream and takes ``K`` = ``cameras_per_step`` cameras from it per step, and with several ranks (torch.distributed)
``world_size`` × K: every rank walks the same stream (same seed) and keeps its own K, so the ranks render distinct
cameras and a step of W ranks × K cameras uses exactly the cameras of one step of 1 rank × W·K cameras. With K = 1 and
one rank, ``next_train`` is nerfstudio's own.
"""

from __future__ import annotations

from typing import Any

import torch
from nerfstudio.cameras.cameras import Cameras

from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.training import distributed


class CameraBatchMixin:
    """Mixed into :class:`dynsplat_ns.training.datamanager.DynsplatDatamanager` (a ``FullImageDatamanager``)."""

    config: Any
    train_unseen_cameras: list[int]
    cached_train: list[dict]
    train_cameras: Cameras
    device: Any

    @property
    def cameras_per_step(self) -> int:
        """K: training cameras each rank renders per step (``--pipeline.datamanager.cameras-per-step``)."""
        k = int(getattr(self.config, "cameras_per_step", 1))
        if k < 1:
            raise DynsplatConfigError(f"--pipeline.datamanager.cameras-per-step must be at least 1, got {k}")
        return k

    def _pop_train_index(self) -> int:
        """The next image of the training stream (nerfstudio's ``next_train`` order, one image at a time)."""
        image_idx = self.train_unseen_cameras.pop(0)
        if len(self.train_unseen_cameras) == 0:
            self.train_unseen_cameras = self.sample_train_cameras()  # type: ignore[attr-defined]
        return image_idx

    def next_train_indices(self) -> list[int]:
        """This rank's K training images for the next step: W·K images are drawn from the stream (the same on every
        rank), rank r keeps those at positions r·K .. r·K + K - 1."""
        k, world, rank = self.cameras_per_step, distributed.world_size(), distributed.rank()
        drawn = [self._pop_train_index() for _ in range(world * k)]
        return drawn[rank * k : (rank + 1) * k]

    def _train_view(self, image_idx: int) -> tuple[Cameras, dict]:
        """Camera and batch of one training image, as nerfstudio's ``next_train`` returns them."""
        data = self.cached_train[image_idx].copy()  # never mutate the cache (nerfstudio issue 3335)
        data["image"] = data["image"].to(self.device)
        camera = self.train_cameras[image_idx : image_idx + 1].to(self.device)
        if camera.metadata is None:
            camera.metadata = {}
        camera.metadata["cam_idx"] = image_idx
        return camera, data

    def next_train(self, step: int) -> tuple[Cameras, dict]:
        """One training camera and its batch: nerfstudio's with one rank and K = 1; with several ranks this rank's
        camera of the step. K > 1 steps use :meth:`next_train_views`."""
        if self.cameras_per_step == 1 and distributed.world_size() == 1:
            return super().next_train(step)  # type: ignore[misc]
        if self.cameras_per_step != 1:
            raise RuntimeError("cameras_per_step > 1: use next_train_views (the dynsplat pipeline does)")
        return self._train_view(self.next_train_indices()[0])

    def next_train_views(self, step: int) -> tuple[Cameras, list[dict]]:
        """This rank's K training cameras for ``step``, stacked as Cameras [K] (``metadata["cam_idx"]`` [K, 1]), and
        their K batches (each as nerfstudio's ``next_train`` returns it: ``image``, ``image_idx``, ...)."""
        del step
        indices = self.next_train_indices()
        batches = [self._train_view(i)[1] for i in indices]
        cameras = self.train_cameras[torch.tensor(indices)].to(self.device)
        metadata = dict(cameras.metadata or {})
        metadata["cam_idx"] = torch.tensor(indices, device=cameras.device).reshape(-1, 1)
        cameras.metadata = metadata
        return cameras, batches

    def get_train_rays_per_batch(self) -> int:
        """Pixels one rank renders per step: K images (nerfstudio: one)."""
        return self.cameras_per_step * super().get_train_rays_per_batch()  # type: ignore[misc]
