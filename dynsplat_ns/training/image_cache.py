"""Train and eval images decoded on demand into one cache bounded in bytes (``--pipeline.datamanager.cache-bytes``).

nerfstudio's ``FullImageDatamanager`` decodes (and undistorts) every train and eval image once and keeps all of them
in RAM, so memory grows with the number of images. With ``cache_bytes > 0`` the datamanager's ``cached_train`` and
``cached_eval`` are instead :class:`LazyImages`: sequences of the same dicts (``image``, ``image_idx``, ``mask``,
``depth_prior``, ...) that decode image ``i`` when it is first read. Both splits share one :class:`ImageStore`, an LRU
cache that keeps the most recently used images while their tensors fit ``cache_bytes``; the next cameras of the
training order (``train_unseen_cameras``) are decoded in a background thread, and so are the next eval images while
:class:`LazyEvalLoader` (the datamanager's ``fixed_indices_eval_dataloader``, what ``ns-eval`` iterates) streams the
eval split one image at a time instead of as a list of every decoded image.

The camera order (nerfstudio's random permutation, ``CameraBatchMixin`` K at a time) is unchanged: the datamanager
still pops indices from ``train_unseen_cameras``; only where the image of an index comes from differs. Each image is
decoded and undistorted exactly as nerfstudio's ``_load_images`` does it (same ``get_data``, same
``_undistort_image``, from the cameras as they were before undistortion), so batches are bit-identical to the full
cache. The undistorted intrinsics (fx, fy, cx, cy, width, height), which nerfstudio writes into the dataset's cameras
while caching, are computed once at setup from the camera parameters alone (no image is decoded for them). Depth priors
(:mod:`dynsplat_ns.priors.depth`) are read with their image and ride in its dict, so depth losses work in this mode.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from copy import deepcopy
from itertools import islice
from typing import Any

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image

from dynsplat_ns.errors import exit_on_user_error
from dynsplat_ns.priors.depth import DEPTH_BATCH_KEY, depth_kind, load_depth_prior

#: "auto" (``cache_bytes -1``) decodes every image at setup while the train and eval images take at most this share
#: of the RAM.
AUTO_RAM_SHARE = 0.25


def physical_ram_bytes() -> int:
    """This machine's physical memory in bytes (0 where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def decoded_bytes(cameras: Cameras, image_type: str) -> int:
    """Bytes the images of ``cameras`` take decoded (RGB; float32 or uint8 as ``cache_images_type``)."""
    per_value = 4 if image_type == "float32" else 1
    pixels = (cameras.width.reshape(-1).long() * cameras.height.reshape(-1).long()).sum()
    return int(pixels) * 3 * per_value


def resolve_cache_bytes(cache_bytes: int, image_bytes: int, ram_bytes: int) -> int:
    """The cache bound to use: ``cache_bytes`` itself when set (0 = decode all, N > 0 = bound); for "auto" (< 0),
    0 while the decoded images (``image_bytes``: train and eval) fit in :data:`AUTO_RAM_SHARE` of the RAM, else that
    share as the bound."""
    if cache_bytes >= 0:
        return cache_bytes
    budget = int(AUTO_RAM_SHARE * ram_bytes)
    return 0 if budget <= 0 or image_bytes <= budget else budget


def _has_distortion(camera: Cameras) -> bool:
    return camera.distortion_params is not None and not bool(torch.all(camera.distortion_params == 0))


def _lens_key(camera: Cameras) -> tuple:
    """Everything nerfstudio's ``_undistort_image`` reads of a camera to find the undistorted intrinsics and size."""
    values = [camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, camera.camera_type]
    radius = (camera.metadata or {}).get("fisheye_crop_radius")
    return (*(float(v.reshape(-1)[0]) for v in values), *camera.distortion_params.reshape(-1).tolist(), repr(radius))


def undistort_sample(camera: Cameras, data: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
    """nerfstudio's per-image undistortion (``_load_images.undistort_idx``) without writing the dataset's cameras.

    Args:
        camera: The image's camera as the dataset had it before any undistortion, shape ().
        data: ``get_data``'s dict (modified in place: ``image``, ``mask``).

    Returns:
        The dict and the undistorted 3x3 intrinsics (None when the camera has no distortion).
    """
    assert data["image"].shape[1] == camera.width.item() and data["image"].shape[0] == camera.height.item(), (
        f"The size of image ({data['image'].shape[1]}, {data['image'].shape[0]}) loaded "
        f"does not match the camera parameters ({camera.width.item(), camera.height.item()})"
    )
    if not _has_distortion(camera):
        return data, None
    K = camera.get_intrinsics_matrices().numpy()
    image = data["image"].numpy()
    K, image, mask = _undistort_image(camera, camera.distortion_params.numpy(), data, image, K)
    data["image"] = torch.from_numpy(image)
    if mask is not None:
        data["mask"] = mask
    return data, K


def nbytes(item: dict[str, Any]) -> int:
    """Bytes held by the tensors of one cached image dict."""
    return sum(int(v.numel() * v.element_size()) for v in item.values() if isinstance(v, torch.Tensor))


class ImageStore:
    """An LRU cache of decoded image dicts, keyed ``(split, index)``, bounded in bytes and shared by the splits.

    Args:
        cache_bytes: Bound on the bytes of the cached tensors (an image larger than the bound is returned, not kept).
    """

    def __init__(self, cache_bytes: int) -> None:
        if cache_bytes <= 0:
            raise ValueError(f"cache_bytes must be positive, got {cache_bytes}")
        self.cache_bytes = int(cache_bytes)
        self.lock = threading.Lock()
        """Guards the store and the pending decodes of every split using it."""
        self.entries: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self.held_bytes = 0
        """Bytes of the tensors in the cache now."""
        self.peak_bytes = 0
        """Most bytes the cache ever held."""

    def get(self, key: tuple[str, int]) -> dict[str, Any] | None:
        """The cached dict, marked most recently used (None when not cached); call under :attr:`lock`."""
        item = self.entries.get(key)
        if item is not None:
            self.entries.move_to_end(key)
        return item

    def put(self, key: tuple[str, int], item: dict[str, Any]) -> None:
        """Inserts, evicting the least recently used images so the cache stays within its bound; under :attr:`lock`."""
        size = nbytes(item)
        if key in self.entries or size > self.cache_bytes:
            return
        while self.entries and self.held_bytes + size > self.cache_bytes:
            _, old = self.entries.popitem(last=False)
            self.held_bytes -= nbytes(old)
        self.entries[key] = item
        self.held_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)

    def count(self, split: str) -> int:
        """How many images of ``split`` are cached now."""
        with self.lock:
            return sum(1 for s, _ in self.entries if s == split)


class LazyImages(Sequence):
    """One split's images as a sequence of nerfstudio's cached dicts, decoded on demand into a bounded LRU cache.

    Args:
        dataset: The split's InputDataset (its ``cameras`` get the undistorted intrinsics at construction).
        image_type: ``cache_images_type`` ("uint8" or "float32").
        cache_bytes: The cache: its bound in bytes (a cache of its own) or an :class:`ImageStore` shared with the
            other split.
        prefetch: How many of the next images to decode in the background (0: none).
        upcoming: Returns the next indices in order (the datamanager's ``train_unseen_cameras``); each read then
            prefetches them. None: only :meth:`prefetch_next` prefetches.
        outputs: The split's DataparserOutputs for depth priors (None: no depth priors, as nerfstudio's eval images).
        split: Name of the split in the shared store.
    """

    def __init__(
        self,
        dataset,
        image_type: str,
        cache_bytes: int | ImageStore,
        prefetch: int = 0,
        upcoming: Callable[[], Sequence[int]] | None = None,
        outputs=None,
        split: str = "train",
    ) -> None:
        self.store = cache_bytes if isinstance(cache_bytes, ImageStore) else ImageStore(cache_bytes)
        self.split = split
        self._dataset = dataset
        self._image_type = image_type
        self.prefetch = max(0, int(prefetch))
        self._upcoming = upcoming
        self._original_cameras = deepcopy(dataset.cameras)  # before undistortion: what each decode starts from
        self._depth = self._depth_setup(outputs, len(dataset))
        self._pending: dict[int, Future] = {}
        self._lock = self.store.lock
        self._executor: ThreadPoolExecutor | None = None
        self._item_bytes = 0  # size of the last decoded image, to size the prefetch
        self.decodes = 0
        """Images of this split decoded so far (foreground and prefetch)."""
        self.prefetched = 0
        """Images of this split decoded by the background prefetch."""
        self._undistort_intrinsics()

    @property
    def cache_bytes(self) -> int:
        """The bound of the (shared) cache in bytes."""
        return self.store.cache_bytes

    @property
    def held_bytes(self) -> int:
        """Bytes of the tensors in the (shared) cache now."""
        return self.store.held_bytes

    @property
    def peak_bytes(self) -> int:
        """Most bytes the (shared) cache ever held."""
        return self.store.peak_bytes

    def held_count(self) -> int:
        """How many images of this split the cache holds now."""
        return self.store.count(self.split)

    @staticmethod
    def _depth_setup(outputs, n: int) -> tuple | None:
        metadata = (outputs.metadata or {}) if outputs is not None else {}
        kind = depth_kind(metadata)
        if kind is None:
            return None
        files = metadata["depth_filenames"]
        if len(files) != n:
            raise ValueError(f"metadata['depth_filenames'] has {len(files)} files for {n} training images")
        scale = float(metadata.get("depth_unit_scale_factor", 1.0)) * float(outputs.dataparser_scale)
        return files, kind, scale, outputs.cameras

    def _undistort_intrinsics(self) -> None:
        """Writes the undistorted intrinsics into the dataset's cameras, as nerfstudio's caching does, from a blank
        image of each distorted camera's size (the new intrinsics depend on the camera's lens only, so cameras with
        the same lens, e.g. each camera of a rig at every position, are undistorted once)."""
        cameras = self._dataset.cameras
        lenses: dict[tuple, tuple[float, float, float, float, int, int]] = {}
        for idx in range(len(self._dataset)):
            camera = self._original_cameras[idx].reshape(())
            if not _has_distortion(camera):
                continue
            key = _lens_key(camera)
            if key not in lenses:
                blank = torch.zeros((int(camera.height.item()), int(camera.width.item()), 3), dtype=torch.uint8)
                data, K = undistort_sample(camera, {"image": blank})
                h, w = data["image"].shape[:2]
                lenses[key] = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), w, h)
            fx, fy, cx, cy, w, h = lenses[key]
            cameras.fx[idx], cameras.fy[idx], cameras.cx[idx], cameras.cy[idx] = fx, fy, cx, cy
            cameras.width[idx], cameras.height[idx] = w, h

    def decode(self, idx: int) -> dict[str, Any]:
        """Image ``idx`` as nerfstudio caches it (decoded, undistorted, with its depth prior); not cached."""
        data = self._dataset.get_data(idx, image_type=self._image_type)
        data, _ = undistort_sample(self._original_cameras[idx].reshape(()), data)
        if self._depth is not None:
            files, kind, scale, cameras = self._depth
            image = data["image"]
            if files[idx] is None:
                depth = torch.full((*image.shape[:2], 1), float("nan"), dtype=torch.float32)
            else:
                depth = load_depth_prior(files[idx], cameras[idx], tuple(image.shape[:2]), kind, scale)
            data[DEPTH_BATCH_KEY] = depth
        return data

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(len(self)))]
        idx = int(idx)
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        item = self._get(idx)
        if self._upcoming is not None:
            self.prefetch_next(self._upcoming())
        return item

    def _get(self, idx: int) -> dict[str, Any]:
        with self._lock:
            item = self.store.get((self.split, idx))
            if item is not None:
                return item
            future = self._pending.get(idx)
        if future is not None:
            try:
                return future.result()
            except Exception:  # noqa: BLE001 - decode again below, so the error surfaces here, naming the file
                pass
        with exit_on_user_error():  # a broken image: one line naming it, as at setup in the full-cache mode
            item = self.decode(idx)
        with self._lock:
            self._store(idx, item)
        return item

    def _store(self, idx: int, item: dict[str, Any]) -> None:
        """Counts and caches a decoded image; under the lock."""
        self.decodes += 1
        self._item_bytes = nbytes(item)
        self.store.put((self.split, idx), item)

    def _prefetch_one(self, idx: int) -> dict[str, Any]:
        try:
            with self._lock:
                item = self.store.get((self.split, idx))
            if item is not None:
                return item
            item = self.decode(idx)
            with self._lock:
                self._store(idx, item)
                self.prefetched += 1
            return item
        finally:
            with self._lock:
                self._pending.pop(idx, None)

    def prefetch_next(self, indices: Iterable[int]) -> None:
        """Starts decoding the first of ``indices`` that are not cached in a background thread, as many as
        ``prefetch`` allows and fit in the cache next to the image just returned."""
        if self.prefetch == 0 or self._item_bytes == 0:
            return
        fit = self.cache_bytes // self._item_bytes - 1  # keep room for the image being used
        count = min(self.prefetch, fit)
        if count <= 0:
            return
        wanted = [int(i) for i in islice(indices, count)]
        with self._lock:
            todo = [i for i in wanted if (self.split, i) not in self.store.entries and i not in self._pending]
            if not todo:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dynsplat-{self.split}-prefetch")
            for i in todo:
                self._pending[i] = self._executor.submit(self._prefetch_one, i)

    def wait_prefetch(self) -> None:
        """Blocks until the background decodes scheduled so far are done (tests, benchmarks)."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - surfaced when the image is requested
                pass

    def close(self) -> None:
        """Stops the prefetch thread (pending decodes finish first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


#: The name this class had while only training images were decoded on demand.
LazyTrainImages = LazyImages


class LazyEvalLoader(Sequence):
    """nerfstudio's ``fixed_indices_eval_dataloader`` (every eval image once, in index order, as ``(camera, batch)``)
    with the images read from :class:`LazyImages` one at a time, the next ones decoded in the background.

    Args:
        images: The eval split's images.
        cameras: The eval cameras (with the undistorted intrinsics; copied).
        device: Where cameras and images go, as nerfstudio's loader puts them.
    """

    def __init__(self, images: LazyImages, cameras: Cameras, device) -> None:
        self.images = images
        self.cameras = deepcopy(cameras).to(device)
        self.device = device
        assert len(self.cameras.shape) == 1, "Assumes single batch dimension"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(len(self)))]
        idx = int(idx) + (len(self) if int(idx) < 0 else 0)
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        data = self.images[idx].copy()  # never mutate the cache (nerfstudio issue 3335)
        data["image"] = data["image"].to(self.device)
        return self.cameras[idx : idx + 1], data

    def __iter__(self) -> Iterator[tuple[Cameras, dict[str, Any]]]:
        for idx in range(len(self)):
            item = self[idx]
            self.images.prefetch_next(range(idx + 1, len(self)))
            yield item
