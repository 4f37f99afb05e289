"""``--pipeline.datamanager.cache-bytes``: train and eval images decoded on demand into a bounded cache give the same
batches, in the same order, as nerfstudio's full cache (dynsplat_ns/image_cache.py)."""

from __future__ import annotations

import gc
import random
import weakref

import pytest
import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.priors.depth import DEPTH_BATCH_KEY
from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig
from dynsplat_ns.training.image_cache import LazyEvalLoader, LazyImages, LazyTrainImages, nbytes
from dynsplat_ns.training.pipeline import _RecordingLoader

STEPS = 15  # 12 training images: crosses into nerfstudio's second random permutation


def _manager(parser, **kwargs):
    kwargs.setdefault("stereo_seeds", 0)
    return DynsplatDatamanagerConfig(dataparser=parser, **kwargs).setup(device="cpu")


def _bound(manager) -> int:
    """~2.5 images of this scene."""
    return int(2.5 * nbytes(manager.cached_train[0]))


def _run(manager, steps: int = STEPS) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    out = []
    for step in range(steps):
        camera, batch = manager.next_train(step)
        fields = [camera.fx, camera.fy, camera.cx, camera.cy, camera.width.float(), camera.height.float()]
        intrinsics = torch.cat(fields + ([camera.times] if camera.times is not None else [])).flatten()
        out.append((int(batch["image_idx"]), batch["image"].clone(), intrinsics))
        lazy = manager.cached_train
        if isinstance(lazy, LazyTrainImages):
            lazy.wait_prefetch()
            assert lazy.held_bytes <= lazy.cache_bytes
    return out


def _assert_same(got, want) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]  # same camera order
    for (_, image, intr), (_, image_ref, intr_ref) in zip(got, want, strict=True):
        assert torch.equal(image, image_ref)
        assert torch.equal(intr, intr_ref)


@pytest.mark.parametrize("prefetch", [0, 4], ids=["no-prefetch", "prefetch"])
def test_bounded_cache_gives_the_full_cache_batches_in_order(dnerf_scene, prefetch):
    parser = DNeRFDataParserConfig(data=dnerf_scene)
    full = _manager(parser)
    bound = _bound(full)
    lazy_manager = _manager(DNeRFDataParserConfig(data=dnerf_scene), cache_bytes=bound, prefetch_images=prefetch)
    lazy = lazy_manager.cached_train
    assert isinstance(lazy, LazyTrainImages) and len(lazy) == len(full.cached_train) == 12
    _assert_same(_run(lazy_manager), _run(full))
    assert 0 < lazy.peak_bytes <= bound  # never more than the bound: at most 2 of the 12 images held
    assert lazy.held_count() <= 2
    assert lazy.decodes >= STEPS - 2  # decoded on demand, not cached once and for all
    assert (lazy.prefetched > 0) == (prefetch > 0)  # the background thread did decode the next cameras
    lazy.close()


def test_several_cameras_per_step_with_the_bounded_cache(dnerf_scene):
    full = _manager(DNeRFDataParserConfig(data=dnerf_scene), cameras_per_step=3)
    bound = _bound(full)
    lazy_manager = _manager(DNeRFDataParserConfig(data=dnerf_scene), cameras_per_step=3, cache_bytes=bound)
    for step in range(5):
        cams, batches = full.next_train_views(step)
        lazy_cams, lazy_batches = lazy_manager.next_train_views(step)
        assert torch.equal(cams.metadata["cam_idx"], lazy_cams.metadata["cam_idx"])
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(batches, lazy_batches, strict=True))
        lazy_manager.cached_train.wait_prefetch()
        assert lazy_manager.cached_train.held_bytes <= bound
    lazy_manager.cached_train.close()


def test_default_keeps_every_image_decoded_like_nerfstudio(dnerf_scene):
    ours = _manager(DNeRFDataParserConfig(data=dnerf_scene))
    assert type(ours.cached_train) is list and len(ours.cached_train) == 12  # auto, a tiny scene: decoded at setup
    theirs = FullImageDatamanagerConfig(dataparser=DNeRFDataParserConfig(data=dnerf_scene)).setup(device="cpu")
    _assert_same(_run(ours), _run(theirs))


def test_distorted_cameras_are_undistorted_the_same_way(eyeful_scene):
    from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig

    full = _manager(EyefulDataParserConfig(data=eyeful_scene))
    lazy_manager = _manager(EyefulDataParserConfig(data=eyeful_scene), cache_bytes=_bound(full))
    assert torch.any(full.train_dataparser_outputs.cameras.distortion_params != 0)  # the scene is distorted
    for name in ("fx", "fy", "cx", "cy", "width", "height"):  # intrinsics known before any image is decoded
        assert torch.equal(getattr(lazy_manager.train_cameras, name), getattr(full.train_cameras, name))
    _assert_same(_run(lazy_manager, 6), _run(full, 6))
    lazy_manager.cached_train.close()


def test_depth_priors_reach_the_batch(d2rf_scene):
    full = _manager(D2RFDataParserConfig(data=d2rf_scene, image_source="sharp"))
    lazy_manager = _manager(D2RFDataParserConfig(data=d2rf_scene, image_source="sharp"), cache_bytes=_bound(full))
    for step in range(4):
        _, batch = full.next_train(step)
        _, lazy_batch = lazy_manager.next_train(step)
        assert torch.equal(batch[DEPTH_BATCH_KEY], lazy_batch[DEPTH_BATCH_KEY])
    lazy_manager.cached_train.close()


def test_auto_bound_follows_the_decoded_size_against_the_ram(dnerf_scene, monkeypatch):
    """The default (-1, auto) decodes everything while it fits a quarter of the RAM and switches to a bounded cache of
    that quarter above it; explicit values are kept."""
    from dynsplat_ns.training import image_cache

    assert image_cache.resolve_cache_bytes(-1, 100, 1000) == 0  # fits in 250
    assert image_cache.resolve_cache_bytes(-1, 300, 1000) == 250
    assert image_cache.resolve_cache_bytes(0, 300, 1000) == 0 and image_cache.resolve_cache_bytes(7, 1, 1000) == 7
    assert image_cache.resolve_cache_bytes(-1, 300, 0) == 0  # unknown RAM: nerfstudio's behaviour
    default = _manager(DNeRFDataParserConfig(data=dnerf_scene))
    assert default.config.cache_bytes == -1 and type(default.cached_train) is list  # a tiny scene: all decoded
    per_image = nbytes(default.cached_train[0])
    assert image_cache.decoded_bytes(default.train_dataset.cameras, "float32") == 12 * per_image
    # A machine whose RAM quarter holds 2.5 of these images: the same data goes through the bounded cache.
    monkeypatch.setattr(image_cache, "physical_ram_bytes", lambda: 10 * per_image)
    small = _manager(DNeRFDataParserConfig(data=dnerf_scene))
    assert isinstance(small.cached_train, LazyTrainImages) and small.cached_train.cache_bytes == int(2.5 * per_image)
    _assert_same(_run(small), _run(default))
    # The eval images count too: a quarter of the RAM holds the 12 train images but not the 4 val images as well.
    monkeypatch.setattr(image_cache, "physical_ram_bytes", lambda: 4 * 13 * per_image)
    both = _manager(DNeRFDataParserConfig(data=dnerf_scene))
    assert isinstance(both.cached_train, LazyImages) and isinstance(both.cached_eval, LazyImages)
    assert both.cached_eval.store is both.cached_train.store  # one bound for both splits


def _camera_fields(camera) -> torch.Tensor:
    fields = [camera.fx, camera.fy, camera.cx, camera.cy, camera.width.float(), camera.height.float()]
    fields += [camera.camera_to_worlds.flatten()] + ([camera.times] if camera.times is not None else [])
    return torch.cat([f.flatten() for f in fields])


def _scene_parser(request, name: str):
    from dynsplat_ns.dataparsers.eyeful import EyefulDataParserConfig

    scene = request.getfixturevalue(f"{name}_scene")
    return lambda: (DNeRFDataParserConfig if name == "dnerf" else EyefulDataParserConfig)(data=scene)


@pytest.mark.parametrize("name", ["dnerf", "eyeful"])  # 4 val images; 3 fisheye (undistorted) eval images
def test_bounded_eval_split_streams_the_full_mode_images(request, name):
    """The full-split eval (``fixed_indices_eval_dataloader`` as the pipeline's ``_eval_records`` iterates it) gives
    the full mode's cameras and pixels in the same order, decoding nothing at setup and holding at most as many eval
    images as the bound allows (here 2 of them), not the whole split."""
    parser = _scene_parser(request, name)
    full = _manager(parser())
    bound = int(2.5 * nbytes(full.cached_eval[0]))
    lazy_manager = _manager(parser(), cache_bytes=bound, prefetch_images=4)
    lazy = lazy_manager.cached_eval
    assert isinstance(lazy, LazyImages) and lazy.decodes == 0  # nothing decoded at setup
    want = list(_RecordingLoader(full.fixed_indices_eval_dataloader, {}))
    loader = lazy_manager.fixed_indices_eval_dataloader
    assert isinstance(loader, LazyEvalLoader) and len(loader) == len(want) >= 3
    alive = []
    for (camera, batch), (camera_ref, batch_ref) in zip(_RecordingLoader(loader, {}), want, strict=True):
        assert int(batch["image_idx"]) == int(batch_ref["image_idx"])
        assert torch.equal(batch["image"], batch_ref["image"])  # pixel-exact, undistorted the same way
        assert torch.equal(_camera_fields(camera), _camera_fields(camera_ref))
        alive.append(weakref.ref(batch["image"]))
        del camera, batch
        gc.collect()
        lazy.wait_prefetch()
        assert sum(ref() is not None for ref in alive) <= 2  # the images yielded so far that are still in memory
        assert lazy.held_count() <= 2 and lazy.held_bytes <= bound
    assert lazy.decodes >= len(want) and lazy.prefetched > 0  # the next eval images were decoded in the background
    lazy.close()


@pytest.mark.parametrize("name", ["dnerf", "eyeful"])
def test_bounded_next_eval_image_matches_the_full_mode(request, name):
    """``next_eval_image``/``next_eval`` (nerfstudio's random eval camera during training) give the same cameras and
    pixels with the bounded cache, which keeps at most the bound's worth of train and eval images together."""
    parser = _scene_parser(request, name)
    full = _manager(parser())
    bound = int(2.5 * nbytes(full.cached_eval[0]))
    lazy_manager = _manager(parser(), cache_bytes=bound)
    n = len(full.eval_dataset)
    got, want = [], []
    for manager, out in ((lazy_manager, got), (full, want)):
        random.seed(3)  # nerfstudio draws the eval camera with the global random module
        for step in range(2 * n + 1):
            if step == n:
                manager.next_train(step)  # interleave a training image: both splits share the one bound
            camera, batch = (manager.next_eval if step % 2 else manager.next_eval_image)(step)
            out.append((int(batch["image_idx"]), batch["image"].clone(), _camera_fields(camera)))
            if manager is lazy_manager:
                assert lazy_manager.cached_eval.held_bytes <= bound and lazy_manager.cached_eval.held_count() <= 2
    _assert_same(got, want)
    assert lazy_manager.cached_eval.decodes >= n


def test_stereo_seeds_from_the_bounded_cache(dnerf_scene):
    """Stereo seeding reads the training images one at a time from the bounded cache, with the full mode's result."""
    full = _manager(DNeRFDataParserConfig(data=dnerf_scene), stereo_seeds=500)
    lazy_manager = _manager(DNeRFDataParserConfig(data=dnerf_scene), stereo_seeds=500, cache_bytes=_bound(full))
    want, got = full.train_dataparser_outputs.metadata, lazy_manager.train_dataparser_outputs.metadata
    assert not want["seed_points_random"] and not got["seed_points_random"]
    assert torch.equal(torch.as_tensor(got["points3D_xyz"]), torch.as_tensor(want["points3D_xyz"]))
    assert lazy_manager.cached_train.peak_bytes <= _bound(full)
    lazy_manager.cached_train.close()
