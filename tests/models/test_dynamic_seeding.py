"""Monocular priors that used to hurt (issue 14): foreground seeds unprojected from the motion masks with the aligned
disparity prior, and the depth loss ignoring pixels without depth (disparity 0: the empty background)."""

from __future__ import annotations

import numpy as np
import torch

from dynsplat_ns.models.depth_loss import DepthPriorLoss
from dynsplat_ns.motion import ShapeOfMotionConfig
from dynsplat_ns.motion.static_gaussians import STATIC_KEY
from dynsplat_ns.priors.depth import MOTION_MASKS_KEY
from dynsplat_ns.priors.dynamic_seeds import align_disparity, dynamic_seed_points
from dynsplat_ns.priors.static_split import project_to_pixels
from dynsplat_ns.scenes.d2rf import make_d2rf_scene


def test_align_disparity_recovers_scale_and_shift_despite_outliers():
    gen = torch.Generator().manual_seed(0)
    inv_depth = torch.rand(50, generator=gen) + 0.2
    prior = 0.37 * inv_depth + 0.05
    prior[:5] = 3.0  # occluded / mismatched points
    a, b = align_disparity(prior, inv_depth)
    assert abs(a - 0.37) < 1e-3 and abs(b - 0.05) < 1e-3
    assert align_disparity(-prior, inv_depth) is None, "an inverted fit gives no depth"
    assert align_disparity(prior[:4], inv_depth[:4]) is None, "too few points"


def _manager(scene):
    from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    return DynsplatDatamanagerConfig(dataparser=D2RFDataParserConfig(data=scene)).setup(device="cpu")


def test_foreground_seeds_from_static_only_sfm_points(tmp_path):
    """SfM points on the static slab only: the seeds land on the moving spheres at the prior's true depth, and the
    model with a static background gets them as dynamic Gaussians (before: every Gaussian static or none moving)."""
    scene = make_d2rf_scene(tmp_path / "scene", width=48, height=24, n_times=4, static_points_only=True)
    manager = _manager(scene)
    outputs = manager.train_dataparser_outputs
    seeding = manager.train_dataset.metadata[MOTION_MASKS_KEY]
    points = outputs.metadata["points3D_xyz"]
    xyz, rgb = dynamic_seed_points(points, seeding, 200, num_frames=1)
    assert xyz.shape[0] >= 10 and rgb.shape == xyz.shape and float(rgb.min()) >= 0.0
    # num_frames=1: view 0. Its depth there equals the generator's exact depth (dpt = 1 / depth, world units).
    pix, z = project_to_pixels(xyz, seeding["cameras"][0:1])
    disp, mask = seeding["disparity"][0], seeding["masks"][0]
    h, w = disp.shape
    col = (pix[0, :, 0] * w / float(outputs.cameras.width[0])).long()
    row = (pix[0, :, 1] * h / float(outputs.cameras.height[0])).long()
    assert bool(mask[row, col].all()), "every seed lies in the motion mask of its view"
    truth = outputs.dataparser_scale / disp[row, col]
    assert float(((z[0] - truth).abs() / truth).max()) < 0.05

    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig

    meta = outputs.metadata
    cfg = DynamicSplatModelConfig(motion=ShapeOfMotionConfig(num_bases=4), rasterizer_backend="torch")
    cfg.static_background = True
    model = cfg.setup(
        scene_box=manager.train_dataset.scene_box, num_train_data=len(manager.train_dataset), device="cpu",
        metadata=manager.train_dataset.metadata, seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )  # fmt: skip
    flag = model.gauss_params[STATIC_KEY]
    n_sfm = points.shape[0]
    assert flag.shape[0] >= n_sfm + 30, "the foreground seeds are added (every masked pixel of the tiny masks)"
    assert float(flag.detach()[n_sfm:].max()) == 0.0, "and they are dynamic"
    cfg.dynamic_seed_points = 0
    off = cfg.setup(
        scene_box=manager.train_dataset.scene_box, num_train_data=len(manager.train_dataset), device="cpu",
        metadata=manager.train_dataset.metadata, seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )  # fmt: skip
    assert off.num_points == n_sfm


def test_disparity_loss_ignores_pixels_without_depth():
    """A render whose disparity is an affine map of the prior wherever the prior has depth costs nothing, whatever
    it renders where the prior is 0 (no depth: the generated D2RF background); before, those pixels entered the fit."""
    gen = torch.Generator().manual_seed(0)
    prior = torch.rand(16, 24, generator=gen) * 0.3 + 0.1
    prior[:, :16] = 0.0  # two thirds of the image: empty background
    disparity = 2.0 * prior + 0.5
    disparity[:, :16] = 0.2 + 0.1 * torch.rand(16, 16, generator=gen)  # opaque there too, at some finite depth
    outputs = {"depth": (1.0 / disparity)[..., None], "accumulation": torch.ones(16, 24, 1)}
    loss = DepthPriorLoss("disparity", 1.0)(outputs, {"depth_prior": prior[..., None]}, step=0)["depth_loss"]
    assert float(loss) < 1e-4


def test_resizing_a_disparity_never_blends_with_pixels_without_depth():
    """dpt/ is at half resolution: upsampled bilinearly, an object's edge used to be blended with the background's
    0 (half-way to infinity, a depth no surface has); such pixels are now 0 (no depth) instead."""
    from dynsplat_ns.priors.depth import _resize

    disparity = np.zeros((4, 6), np.float32)
    disparity[:, 3:] = 0.5
    disparity[1, 4] = 0.7
    out = _resize(disparity, 12, 8, "disparity")
    valid = np.isfinite(out) & (out > 0)
    assert valid.sum() > 12 and float(out[valid].min()) >= 0.5 - 1e-6, "no blend with the background's 0"
    assert float(out[:, :5].max()) == 0.0
