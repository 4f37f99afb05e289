"""The DyCheck iPhone parser on a generated scene (dynsplat_ns.scenes.dycheck): cameras reproduce DyCheck's projection
of known 3D points including distortion and pixel aspect, times share one range, the phone trains and the static
cameras evaluate, metric depth and covisibility masks reach the metadata, flags reach the parser, and the covisible
metrics (DyCheck's mPSNR/mSSIM) reach the ``ns-eval`` JSON next to psnr/ssim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
from dynsplat_ns.scenes import dycheck as gen
from dynsplat_ns.scenes.synthetic import default_scene

N_TIMES, VAL_EVERY, W, H = 8, 2, 64, 48


@pytest.fixture(scope="module")
def dycheck_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gen.make_dycheck_scene(tmp_path_factory.mktemp("dycheck") / "seq", W, H, N_TIMES, VAL_EVERY)


def _outputs(data: Path, split: str, cache: Path, **config):
    return DycheckDataParserConfig(data=data, cache_dir=cache, **config).setup().get_dataparser_outputs(split)


def _to_ours(points: np.ndarray, outputs) -> torch.Tensor:
    """Dataset-world points → our world (dataparser_transform, then dataparser_scale)."""
    transform = outputs.dataparser_transform.double()
    pts = torch.from_numpy(points).double() @ transform[:3, :3].T + transform[:3, 3]
    return pts * float(outputs.dataparser_scale)


def _ray_pixel_error(cameras, index: int, pixels: np.ndarray, points_ours: torch.Tensor) -> np.ndarray:
    """Pixel-equivalent miss of ``points_ours`` by the rays nerfstudio generates through ``pixels`` (x, y)."""
    coords = torch.from_numpy(pixels[:, ::-1].copy()).float()  # nerfstudio coords are (y, x)
    rays = cameras.generate_rays(camera_indices=index, coords=coords)
    origin, direction = rays.origins.double(), rays.directions.double()
    offset = points_ours - origin
    along = (offset * direction).sum(-1, keepdim=True)
    miss = (offset - along * direction).norm(dim=-1) / along[:, 0]  # angle (radians, small)
    return (miss * float(cameras.fx[index])).numpy()


@pytest.mark.parametrize("downscale", [1, 2])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cameras_reproduce_dycheck_projection_with_distortion(dycheck_scene: Path, tmp_path: Path, downscale, split):
    """Known 3D points (slab top + sphere surfaces at t=0) projected by DyCheck's camera model (Brown distortion,
    pixel aspect, off-centre principal point) lie on the rays nerfstudio's Cameras generate through those pixels."""
    outputs = _outputs(dycheck_scene, split, tmp_path / "cache", downscale=downscale)
    rng = np.random.default_rng(0)
    slab = np.stack([rng.uniform(-0.8, 0.8, 300), rng.uniform(-0.8, 0.8, 300), np.full(300, -0.45)], axis=1)
    points = gen.to_dataset(slab)
    names = outputs.metadata["frame_names"]
    worst = 0.0
    for i, name in enumerate(names):
        camera = json.loads((dycheck_scene / "camera" / f"{name}.json").read_text())
        pixels, z = gen.project(points, camera)
        pixels = pixels / downscale
        keep = (z > 0) & (pixels[:, 0] > 0) & (pixels[:, 0] < W / downscale) & (pixels[:, 1] > 0)
        keep &= pixels[:, 1] < H / downscale
        assert keep.sum() > 20
        err = _ray_pixel_error(outputs.cameras, i, pixels[keep], _to_ours(points[keep], outputs))
        worst = max(worst, float(err.max()))
    assert worst < 0.02, f"rays miss DyCheck's projections by up to {worst:.4f} px"


def test_projection_test_would_catch_a_wrong_distortion_mapping(dycheck_scene: Path, tmp_path: Path):
    """The same check with k1 or p1 mapped wrongly (dropped, or p1/p2 swapped) misses by far more than its
    tolerance, so the test above guards the mapping."""
    outputs = _outputs(dycheck_scene, "train", tmp_path / "cache", downscale=1)
    camera = json.loads((dycheck_scene / "camera" / "0_00000.json").read_text())
    rng = np.random.default_rng(1)
    slab = np.stack([rng.uniform(-0.8, 0.8, 300), rng.uniform(-0.8, 0.8, 300), np.full(300, -0.45)], axis=1)
    pixels, z = gen.project(gen.to_dataset(slab), camera)
    keep = (z > 0) & (pixels[:, 0] > 0) & (pixels[:, 0] < W) & (pixels[:, 1] > 0) & (pixels[:, 1] < H)
    points = _to_ours(gen.to_dataset(slab)[keep], outputs)
    good = outputs.cameras.distortion_params[0].clone()
    assert good.tolist() == pytest.approx([0.06, -0.02, 0.01, 0.0, 0.015, -0.01])
    for wrong in ([0.0, -0.02, 0.01, 0.0, 0.015, -0.01], [0.06, -0.02, 0.01, 0.0, -0.01, 0.015]):
        outputs.cameras.distortion_params[0] = torch.tensor(wrong)
        assert _ray_pixel_error(outputs.cameras, 0, pixels[keep], points).max() > 0.1
    outputs.cameras.distortion_params[0] = good
    assert _ray_pixel_error(outputs.cameras, 0, pixels[keep], points).max() < 0.02


def test_times_splits_and_camera_ids(dycheck_scene: Path, tmp_path: Path):
    """The phone (camera 0) trains, the static cameras are val and test; times = time id / (T - 1) in every split."""
    train = _outputs(dycheck_scene, "train", tmp_path / "c")
    test = _outputs(dycheck_scene, "test", tmp_path / "c")
    val = _outputs(dycheck_scene, "val", tmp_path / "c")
    assert set(train.metadata["camera_ids"]) == {0} and len(train.image_filenames) == N_TIMES
    assert set(test.metadata["camera_ids"]) == {1, 2} and len(test.image_filenames) == 2 * (N_TIMES // VAL_EVERY)
    assert val.metadata["frame_names"] == test.metadata["frame_names"]
    for out in (train, test):
        expected = np.asarray(out.metadata["time_ids"], dtype=np.float64) / (N_TIMES - 1)
        assert out.cameras.times[:, 0].numpy() == pytest.approx(expected, abs=1e-6)
        assert out.metadata["num_frames"] == N_TIMES
    assert all(p.parent.name == "2x" for p in train.image_filenames)  # DyCheck's default factor
    assert (int(train.cameras.width[0]), int(train.cameras.height[0])) == (W // 2, H // 2)
    static = test.cameras.camera_to_worlds[np.asarray(test.metadata["camera_ids"]) == 1]
    assert torch.allclose(static, static[:1].expand_as(static), atol=1e-6)  # a static camera does not move


def test_metric_depth_lands_on_the_scene_surface(dycheck_scene: Path, tmp_path: Path):
    """depth_filenames (train) × dataparser_scale is our-world z along the optical axis: unprojected through the
    parser's camera at pixel centres, the points lie on the slab or a sphere at the frame's time."""
    out = _outputs(dycheck_scene, "train", tmp_path / "c", downscale=1)
    meta = out.metadata
    assert meta["depth_kind"] == "metric" and "depth_unit_scale_factor" not in meta  # files in dataset units
    assert [p.parent.name for p in meta["depth_filenames"]] == ["1x"] * N_TIMES
    scene, k = default_scene(), 3
    depth = np.load(meta["depth_filenames"][k])[..., 0]
    assert depth.shape == (H, W) and (depth > 0).mean() > 0.1
    v, u = np.nonzero(depth > 0)
    rays = out.cameras.generate_rays(camera_indices=k, coords=torch.from_numpy(np.stack([v, u], 1) + 0.5).float())
    forward = -out.cameras.camera_to_worlds[k, :3, 2].double()
    z = torch.from_numpy(depth[v, u]).double() * out.dataparser_scale
    ours = rays.origins.double() + rays.directions.double() * (z / (rays.directions.double() @ forward))[:, None]
    transform = out.dataparser_transform.double()
    dataset = (ours / out.dataparser_scale - transform[:3, 3]) @ transform[:3, :3]  # rows: R^T (p - t)
    syn = (dataset.numpy() - np.asarray(gen.DATASET_OFFSET)) / gen.DATASET_SCALE
    t = float(out.cameras.times[k])
    lo, hi = np.asarray(scene.box.lo), np.asarray(scene.box.hi)
    box = np.abs(np.maximum(syn - hi, lo - syn).max(axis=1))
    spheres = [
        np.abs(np.linalg.norm(syn - c, axis=1) - s.radius)
        for s, c in zip(scene.spheres, scene.sphere_centers(t), strict=True)
    ]
    assert np.minimum(box, np.min(spheres, axis=0)).max() < 2e-3


def test_covisible_masks_in_the_eval_metadata(dycheck_scene: Path, tmp_path: Path):
    train = _outputs(dycheck_scene, "train", tmp_path / "c")
    test = _outputs(dycheck_scene, "test", tmp_path / "c")
    assert train.metadata["covisible_mask_filenames"] == [None] * N_TIMES
    masks = test.metadata["covisible_mask_filenames"]
    assert [p.relative_to(dycheck_scene).parts[:3] for p in masks] == [("covisible", "2x", "val")] * len(masks)
    assert [p.stem for p in masks] == test.metadata["frame_names"]
    fractions = [(np.asarray(Image.open(p)) > 0).mean() for p in masks]
    assert all(0.05 < f < 0.9 for f in fractions)
    assert test.metadata["depth_filenames"] == [None] * len(masks)  # DyCheck has no depth for val frames


def test_flags_reach_the_parser(dycheck_scene: Path):
    from cli_helpers import parse

    config = parse(
        "dynsplat-4dgs",
        "dynsplat-dycheck",
        "--data",
        str(dycheck_scene),
        "--downscale",
        "1",
        "--use-scene-scale",
        "False",
        "--orientation-method",
        "none",
        "--center-method",
        "none",
    )
    dataparser = config.pipeline.datamanager.dataparser
    assert (dataparser.downscale, dataparser.use_scene_scale) == (1, False)
    out = dataparser.setup().get_dataparser_outputs("train")
    assert out.dataparser_scale == 1.0 and int(out.cameras.width[0]) == W
    position = json.loads((dycheck_scene / "camera" / "0_00002.json").read_text())["position"]
    assert out.cameras.camera_to_worlds[2, :3, 3].tolist() == pytest.approx(position, abs=1e-5)  # dataset world


def test_covisible_metrics_reach_the_pipeline_eval(dycheck_scene: Path):
    """In process, as ns-eval evaluates (untrained model): the pipeline hands each static-camera image its covisible
    mask, undistorted and cropped like the image the datamanager cached, and the eval dict has covisible_psnr /
    covisible_ssim next to psnr / ssim."""
    from cli_helpers import parse

    from dynsplat_ns.training.pipeline import _RecordingLoader

    config = parse("dynsplat-4dgs", "--pipeline.datamanager.stereo-seeds", "0", "--pipeline.model.sh-degree", "0",
                   "dynsplat-dycheck", "--data", str(dycheck_scene))  # fmt: skip
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    dataset = pipeline.datamanager.eval_dataset
    loader = _RecordingLoader(
        pipeline.datamanager.fixed_indices_eval_dataloader, dict(dataset.metadata), dataset._dataparser_outputs.cameras
    )
    batches = [batch for _, batch in loader]
    assert len(batches) == 2 * (N_TIMES // VAL_EVERY)
    for batch in batches:
        image_size = tuple(batch["image"].shape[:2])
        assert image_size != (H // 2, W // 2)  # undistorted and cropped by nerfstudio's datamanager ...
        assert tuple(batch["covisible_mask"].shape) == image_size  # ... and the mask with it
        assert 0.05 < float(batch["covisible_mask"].float().mean()) < 0.9
        assert "dynamic_mask" not in batch
    results = pipeline.get_average_eval_image_metrics()
    assert {"psnr", "ssim", "covisible_psnr", "covisible_ssim", "covisible_fraction"} <= set(results)
    assert results["covisible_num_images"] == results["num_images"] == len(batches)
    assert "masked_psnr" not in results


@pytest.mark.slow
def test_covisible_metrics_reach_ns_eval(dycheck_scene: Path, tmp_path: Path):
    """ns-train (3 CPU steps) then ns-eval's ComputePSNR: the JSON has covisible_psnr/covisible_ssim (DyCheck's
    mPSNR/mSSIM over the 8 static-camera frames) next to the full-image psnr/ssim, and no dynamic-region metrics."""
    driver = r"""
import sys, tyro
from pathlib import Path
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
from nerfstudio.scripts.train import main
from nerfstudio.scripts.eval import ComputePSNR
out, data = Path(sys.argv[1]), sys.argv[2]
main(tyro.cli(AnnotatedBaseConfigUnion, args=[
    "dynsplat-4dgs", "--output-dir", str(out), "--experiment-name", "e", "--timestamp", "r",
    "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "3", "--steps-per-save", "1000",
    "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "1000", "--pipeline.model.sh-degree", "0",
    "--pipeline.datamanager.stereo-seeds", "0", "--pipeline.model.motion.resolution", "4", "4", "4", "4",
    "dynsplat-dycheck", "--data", data]))
ComputePSNR(load_config=out / "e" / "dynsplat-4dgs" / "r" / "config.yml", output_path=out / "eval.json").main()
"""
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", driver, str(tmp_path), str(dycheck_scene)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert {"psnr", "ssim", "covisible_psnr", "covisible_ssim", "covisible_fraction"} <= set(results)
    assert results["covisible_num_images"] == results["num_images"] == 2 * (N_TIMES // VAL_EVERY)
    assert 0.05 < results["covisible_fraction"] < 0.9
    assert "masked_psnr" not in results
    assert all("covisible_psnr" in v for v in results["per_time"].values())
