"""Full-image datamanager that also works on CPU-only machines with many images, and names broken image files.

nerfstudio 1.1.5 switches ``cache_images`` to "cpu" above 500 training images and then calls ``pin_memory()``, which
fails without a CUDA device. When no CUDA device exists, we cache on the datamanager's device (the CPU) instead.

An image that cannot be decoded (truncated, missing, not an image) is reported with its path
(:class:`~dynsplat_ns.errors.ImageFileError`); for training (``ns-train``) every image is decoded when the
datamanager is set up, so a broken file stops the run before the first step rather than at the first evaluation.

With ``--pipeline.datamanager.cache-bytes N`` (or automatically for captures too large for RAM) train and eval images
are instead decoded on demand into one cache bounded in bytes (:mod:`dynsplat_ns.training.image_cache`), and the
full-split
eval loop streams them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from dynsplat_ns.errors import DynsplatError, ImageFileError, exit_on_user_error
from dynsplat_ns.priors.depth import MOTION_MASKS_KEY, attach_depth_priors, depth_kind, motion_masks_for_seeding
from dynsplat_ns.training.camera_batches import CameraBatchMixin

#: What PIL/numpy raise for a file that cannot be read as an image (missing, truncated, corrupt, wrong shape).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, AssertionError, Image.DecompressionBombError)


def _decode_problem(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "image file not found"
    detail = str(err).strip() or type(err).__name__
    return f"cannot decode image ({detail})"


class DynsplatInputDataset(InputDataset):
    """nerfstudio's InputDataset whose decoding errors name the image (or mask) file (:class:`ImageFileError`)."""

    def get_numpy_image(self, image_idx: int) -> np.ndarray:
        """The image as uint8 [H, W, 3|4]; raises :class:`ImageFileError` naming the file when it cannot be read."""
        try:
            return super().get_numpy_image(image_idx)
        except DynsplatError:
            raise
        except DECODE_ERRORS as err:
            path = self._dataparser_outputs.image_filenames[image_idx]
            raise ImageFileError(path, _decode_problem(err)) from err

    def get_data(self, image_idx: int, image_type: Literal["uint8", "float32"] = "float32") -> dict:
        """nerfstudio's sample dict; a mask that cannot be read raises :class:`ImageFileError` naming it."""
        try:
            return super().get_data(image_idx, image_type=image_type)
        except DynsplatError:
            raise
        except DECODE_ERRORS as err:
            masks = self._dataparser_outputs.mask_filenames
            if masks is None:
                raise
            raise ImageFileError(masks[image_idx], _decode_problem(err).replace("image", "mask", 1)) from err

    def __getitem__(self, image_idx: int) -> dict:
        """``get_data``; a broken file ends the ``ns-*`` command with one line naming it (nerfstudio's viewer draws
        training-image thumbnails this way, e.g. in ``ns-viewer``, which does not cache the training images)."""
        with exit_on_user_error():
            return self.get_data(image_idx)


@dataclass
class DynsplatDatamanagerConfig(FullImageDatamanagerConfig):
    """nerfstudio's full-image datamanager, safe on CPU-only torch, naming image files it cannot decode."""

    _target: type = field(default_factory=lambda: DynsplatDatamanager)
    """Datamanager class to instantiate."""
    stereo_seeds: int = 10_000
    """When the dataparser's seed points are random (no SfM points or PLY), replace them at the start of training by
    up to this many points estimated from the training images by plane-sweep stereo (dynsplat_ns/seeding.py); 0 keeps
    the random points."""
    cameras_per_step: int = 1
    """Training cameras rendered per step (per rank): K images are taken from nerfstudio's random camera order, K at
    a time, rendered together (one multi-camera rasterize() call per distinct time) and the loss is the mean over
    the K views. 1: nerfstudio's one image per step. With several ranks (dynsplat-train / torchrun) each rank takes
    its own K of the same order, so N ranks x K cameras use the cameras of one 1-rank step with N*K."""
    cache_bytes: int = -1
    """0: every train and eval image is decoded into RAM at setup (nerfstudio's behaviour). N > 0: train and eval
    images are decoded (and undistorted) on first use into one LRU cache of at most N bytes of tensors, with the next
    cameras of the training order (and of the eval loop) decoded in a background thread; same batches and camera
    order, memory independent of the number of images (dynsplat_ns/image_cache.py). -1 (auto): 0 while the decoded
    train and eval images take at most a quarter of the machine's RAM, else a cache of that quarter."""
    derive_motion_masks: bool = True
    """Where the training images have metric depth (DyCheck's LiDAR) but the data ships no motion masks, derive them
    from the video itself (depth and colour consistency between frames, priors/derived_masks.py) for the model's
    static/dynamic split (--pipeline.model.static-background). Computed only when the model asks for them."""
    prefetch_images: int = 4
    """With cache_bytes > 0: how many of the next training cameras (and eval images, in ns-eval's loop) to decode ahead
    in the background (at most as many as fit in the cache next to the image in use); 0 decodes on demand only."""


class DynsplatDatamanager(CameraBatchMixin, FullImageDatamanager[DynsplatInputDataset]):
    """FullImageDatamanager that never pins memory when there is no CUDA device and reports broken images by path.

    For training (``test_mode="val"``) it decodes every train and eval image at setup (nerfstudio would do so at the
    first step and the first evaluation), so a broken file ends the run at once; with a bounded cache (``cache_bytes``)
    images are decoded on first use instead, and a broken file ends the run when it is first read.
    """

    def __init__(self, config: DynsplatDatamanagerConfig, device="cpu", test_mode="val", **kwargs):
        super().__init__(config, device=device, test_mode=test_mode, **kwargs)
        if test_mode == "val":
            _ = self.cached_train, self.cached_eval
            self._seed_from_images()
            with exit_on_user_error():  # motion masks for the model's static/dynamic seeding (dynsplat_ns/priors.py)
                masks = motion_masks_for_seeding(self.train_dataparser_outputs)
            metric = depth_kind(self.train_dataparser_outputs.metadata) == "metric"
            if masks is None and metric and self.config.derive_motion_masks:
                masks = _DerivedMasks(self.train_dataset.cameras, self.cached_train)
            if masks is not None:
                self.train_dataset.metadata[MOTION_MASKS_KEY] = masks  # the metadata the model is given

    def _seed_from_images(self) -> None:
        """Replaces random seed points by stereo estimates from the cached training images (see ``stereo_seeds``)."""
        metadata = self.train_dataparser_outputs.metadata
        if self.config.stereo_seeds <= 0 or not metadata.get("seed_points_random"):
            return
        from nerfstudio.utils.rich_utils import CONSOLE

        from dynsplat_ns.priors.stereo_seeds import stereo_seed_points

        start = time.perf_counter()
        seeds = stereo_seed_points(
            self.train_dataset.cameras,
            _Images(self.cached_train),  # one at a time: a bounded cache is not pulled into one list
            self.train_dataset.scene_box.aabb,
            self.config.stereo_seeds,
            background=metadata.get("background_color"),
        )
        if seeds is None:
            CONSOLE.print("Seed points: stereo found no consistent depths; keeping the dataparser's random points")
            return
        metadata["points3D_xyz"], metadata["points3D_rgb"] = seeds
        metadata["seed_points_random"] = False
        CONSOLE.print(
            f"Seed points: {seeds[0].shape[0]} from plane-sweep stereo over {len(self.cached_train)} training images "
            f"({time.perf_counter() - start:.1f} s; --pipeline.datamanager.stereo-seeds 0 keeps the random points)"
        )

    def _cache_bound(self) -> int:
        """``cache_bytes`` resolved once ("auto": by the decoded size of the train and eval images against the RAM)."""
        if getattr(self, "_resolved_cache_bytes", None) is not None:
            return self._resolved_cache_bytes
        from nerfstudio.utils.rich_utils import CONSOLE

        from dynsplat_ns.training.image_cache import decoded_bytes, physical_ram_bytes, resolve_cache_bytes

        bound = self.config.cache_bytes
        if bound < 0:
            image_type = self.config.cache_images_type
            needed = sum(decoded_bytes(d.cameras, image_type) for d in (self.train_dataset, self.eval_dataset))
            bound = resolve_cache_bytes(-1, needed, physical_ram_bytes())
            if bound > 0:
                CONSOLE.print(
                    f"Train and eval images need {needed / 2**30:.1f} GiB decoded, over a quarter of this machine's"
                    f" RAM: decoding them on demand into a {bound / 2**30:.1f} GiB cache"
                    " (--pipeline.datamanager.cache-bytes 0 keeps all)"
                )
        self._resolved_cache_bytes = bound
        return bound

    def _image_store(self):
        """The bounded cache shared by the train and eval images (created on first use)."""
        from dynsplat_ns.training.image_cache import ImageStore

        if getattr(self, "_image_cache_store", None) is None:
            self._image_cache_store = ImageStore(self._cache_bound())
        return self._image_cache_store

    def _load_images(self, split: Literal["train", "eval"], cache_images_device: Literal["cpu", "gpu"]):
        if self._cache_bound() > 0:  # decode on demand into the bounded cache
            from dynsplat_ns.training.image_cache import LazyImages

            train = split == "train"
            with exit_on_user_error():
                lazy = LazyImages(
                    self.train_dataset if train else self.eval_dataset, self.config.cache_images_type,
                    self._image_store(), self.config.prefetch_images,
                    (lambda: self.train_unseen_cameras) if train else None,
                    self.train_dataparser_outputs if train else None, split=split,
                )  # fmt: skip
            if train:
                self.train_cameras = self.train_dataset.cameras.to(self.device)  # with the undistorted intrinsics
            return lazy
        if cache_images_device == "cpu" and not torch.cuda.is_available():
            cache_images_device = "gpu"  # nerfstudio's "gpu" means "self.device", which is the CPU here: no pinning
        with exit_on_user_error():  # a broken image: one line naming it (ns-eval decodes eval images lazily)
            cached = super()._load_images(split, cache_images_device)
            if split == "train":  # depth priors ride along with the images: batch["depth_prior"] (priors.py)
                attach_depth_priors(cached, self.train_dataparser_outputs)
        return cached

    @property
    def fixed_indices_eval_dataloader(self):
        """Every eval image once, in index order, as ``(camera, batch)`` (what ``ns-eval`` iterates); with a bounded
        cache decoded one at a time as it is iterated (:class:`~dynsplat_ns.training.image_cache.LazyEvalLoader`)
        instead of
        nerfstudio's list of every decoded image."""
        from dynsplat_ns.training.image_cache import LazyEvalLoader, LazyImages

        images = self.cached_eval  # first: the eval cameras get their undistorted intrinsics
        if isinstance(images, LazyImages):
            return LazyEvalLoader(images, self.eval_dataset.cameras, self.device)
        return super().fixed_indices_eval_dataloader


class _DerivedMasks:
    """Motion masks derived from the training views' metric depth (:mod:`dynsplat_ns.priors.derived_masks`) when the
    model first asks for them (:func:`dynsplat_ns.priors.static_split.seeding_input`), so a model without a static
    split costs nothing."""

    def __init__(self, cameras, items):
        self.cameras, self.items, self._seeding, self._done = cameras, items, None, False

    def __call__(self) -> dict | None:
        if not self._done:
            from nerfstudio.utils.rich_utils import CONSOLE

            from dynsplat_ns.priors.derived_masks import derived_motion_seeding

            start = time.perf_counter()
            self._seeding, self._done = derived_motion_seeding(self.cameras, self.items), True
            if self._seeding is None:
                CONSOLE.print(f"Motion masks: {len(self.items)} training views are too few to derive them; no split")
                return None
            masks = self._seeding["masks"]
            moving = sum(float(m.float().mean()) for m in masks) / len(masks)
            CONSOLE.print(
                f"Motion masks: derived from the depth and colour consistency of {len(masks)} training views "
                f"({100 * moving:.1f} % of pixels moving, {time.perf_counter() - start:.1f} s; "
                "--pipeline.model.static-background False: no static/dynamic split)"
            )
        return self._seeding


class _Images(Sequence):
    """The ``image`` tensors of a sequence of cached dicts, read one at a time."""

    def __init__(self, items: Sequence[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [item["image"] for item in self.items[idx]]
        return self.items[idx]["image"]
