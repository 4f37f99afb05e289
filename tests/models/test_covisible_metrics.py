"""Covisibility-masked metrics (DyCheck's mPSNR/mSSIM): the partial-convolution SSIM, the ``covisible_*`` names, masks
listed per image (None where an image has none), and masks mapped like nerfstudio's undistorted eval images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType

from dynsplat_ns.models import metrics as M


def _images(seed: int = 0, size: tuple[int, int] = (32, 40)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(*size, 3, generator=gen)
    return gt, (gt + 0.1 * torch.randn(*size, 3, generator=gen)).clamp(0, 1)


def test_partial_conv_ssim_with_a_full_mask_is_plain_ssim():
    gt, pred = _images()
    full = torch.ones(gt.shape[:2], dtype=torch.bool)
    assert M.partial_conv_ssim(gt, pred, full) == pytest.approx(float(M.ssim_map(gt, pred).mean()), abs=2e-3)


def test_partial_conv_ssim_ignores_errors_outside_the_mask_as_dycheck():
    """Windows without covisible pixels score 1 (DyCheck averages the map over the whole image), so damage far from
    the mask changes nothing, while damage inside it lowers the score."""
    gt, _ = _images()
    mask = torch.zeros(gt.shape[:2], dtype=torch.bool)
    mask[:, :12] = True
    assert M.partial_conv_ssim(gt, gt, torch.zeros_like(mask)) == pytest.approx(1.0)
    outside, inside = gt.clone(), gt.clone()
    outside[:, 26:] = 1.0 - outside[:, 26:]  # more than a window (11 px) away from the mask
    inside[:, :12] = 1.0 - inside[:, :12]
    assert M.partial_conv_ssim(gt, outside, mask) == pytest.approx(1.0, abs=1e-6)
    assert M.partial_conv_ssim(gt, inside, mask) < 0.9


def test_covisible_region_metrics_names_and_masked_psnr():
    gt, pred = _images(1)
    mask = torch.zeros(gt.shape[:2], dtype=torch.bool)
    mask[4:20, 5:30] = True
    region = next(r for r in M.REGION_MASKS if r.prefix == "covisible")
    out = M.region_metrics(gt, pred, mask, region.prefix, region.ssim)
    assert set(out) == {"covisible_psnr", "covisible_ssim", "covisible_fraction"}
    mse = ((gt - pred) ** 2)[mask].mean()
    assert out["covisible_psnr"] == pytest.approx(float(-10 * torch.log10(mse)), abs=1e-4)
    assert out["covisible_fraction"] == pytest.approx(float(mask.float().mean()))
    assert set(M.REGION_METRICS) >= {"masked_psnr", "covisible_psnr", "covisible_ssim"}


def test_masks_listed_as_none_give_no_mask(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "c.png")
    meta = {M.COVISIBLE_MASK_METADATA_KEY: [None, tmp_path / "c.png"]}
    assert M.dynamic_mask_from_metadata(meta, 0, (8, 8), M.COVISIBLE_MASK_METADATA_KEY) is None
    assert M.dynamic_mask_from_metadata(meta, 1, (8, 8), M.COVISIBLE_MASK_METADATA_KEY).all()
    assert M.dynamic_mask_from_metadata(meta, 1, (8, 8)) is None  # not a dynamic-region mask


def test_undistort_mask_moves_pixels_like_the_cached_image():
    """A marked pixel ends up where nerfstudio's datamanager puts the same pixel of the image (undistort + crop)."""
    from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image

    w, h = 48, 36
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=40.0, fy=41.0, cx=25.0, cy=17.0, width=w, height=h,
                     distortion_params=torch.tensor([[0.1, -0.02, 0.01, 0.0, 0.02, -0.015]]),
                     camera_type=CameraType.PERSPECTIVE)[0]  # fmt: skip
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[30, 40] = True
    image = np.zeros((h, w, 3), np.float32)
    image[30, 40] = 1.0
    _, undistorted, _ = _undistort_image(
        camera, camera.distortion_params.numpy(), {}, image, camera.get_intrinsics_matrices().numpy()
    )
    out = M.undistort_mask(mask, camera)
    assert tuple(out.shape) == undistorted.shape[:2] != (h, w)
    peak = np.unravel_index(np.argmax(undistorted.sum(-1)), undistorted.shape[:2])
    marked = np.argwhere(out.numpy())
    assert len(marked) >= 1 and np.abs(marked - np.asarray(peak)).max() <= 1
    assert tuple(peak) != (30, 40)  # the distortion does move it
    plain = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=40.0, fy=40.0, cx=24.0, cy=18.0, width=w, height=h)
    assert M.undistort_mask(mask, plain[0]) is mask
