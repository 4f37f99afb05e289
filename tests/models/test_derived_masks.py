"""Motion masks derived from a monocular video's own depth and colours (issue 27): DyCheck captures ship LiDAR depth
but no masks, so the static/dynamic split and the foreground seeds come from masks derived from the data; the
generator's ground-truth masks (``motion_gt/``) only score them. With metric depth and no masks, the split and the
depth loss are on by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from model_helpers import model_from_manager
from script_loader import load_script

from dynsplat_ns.models.depth_loss import DepthPriorLoss
from dynsplat_ns.motion.static_gaussians import STATIC_KEY
from dynsplat_ns.priors.derived_masks import derived_motion_seeding
from dynsplat_ns.priors.static_split import dynamic_from_masks, static_split_enabled
from dynsplat_ns.scenes.dycheck import make_dycheck_scene

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def phone_video(tmp_path_factory) -> Path:
    """A 30-frame phone sweep (128x96 at 1x, trained at 2x) past moving spheres, with LiDAR-like depth and noisy
    seed points on the static structure: the monocular benchmark's capture at another scene seed."""
    from dynsplat_ns.scenes.depth_quality import LIDAR

    return make_dycheck_scene(tmp_path_factory.mktemp("video") / "scene-s5", width=128, height=96, n_times=30,
                              val_every=10, seed=5, scene_seed=5, depth_quality=LIDAR, point_noise=0.02)  # fmt: skip


def _manager(scene: Path):
    from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    return DynsplatDatamanagerConfig(dataparser=DycheckDataParserConfig(data=scene)).setup(device="cpu")


def test_derived_masks_find_the_moving_spheres(phone_video):
    """Against the generator's ground truth (measured: recall 0.87, precision 0.61, where 9 % of pixels move)."""
    quality = load_script("benchmarks/monocular_dycheck.py").mask_quality(phone_video)
    assert quality["recall"] > 0.75, quality
    assert quality["precision"] > 0.5, quality


def test_scattered_detections_leave_a_point_static():
    """A point seen by 4 views and in one view's mask: dynamic with file masks ("any view"), static with the vote
    that derived masks use."""
    from nerfstudio.cameras.cameras import Cameras

    c2w = torch.eye(4)[:3].expand(4, 3, 4).clone()
    cameras = Cameras(camera_to_worlds=c2w, fx=10.0, fy=10.0, cx=4.0, cy=4.0, width=8, height=8)
    point = torch.tensor([[0.0, 0.0, -2.0]])  # in front of every camera, at the image centre
    masks = [torch.zeros(8, 8, dtype=torch.bool) for _ in range(4)]
    masks[0][4, 4] = True
    assert bool(dynamic_from_masks(point, cameras, masks)[0])
    assert not bool(dynamic_from_masks(point, cameras, masks, min_fraction=0.5)[0])
    for mask in masks[1:3]:
        mask[4, 4] = True
    assert bool(dynamic_from_masks(point, cameras, masks, min_fraction=0.5)[0]), "3 of 4 views: moving"


def test_priors_default_by_what_the_data_ships():
    metric = {"depth_kind": "metric", "depth_filenames": ["d.npy"]}
    disparity = {"depth_kind": "disparity", "depth_filenames": ["d.npy"]}
    masks = {**disparity, "motion_mask_filenames": ["m.png"]}
    assert static_split_enabled(None, metric), "video with metric depth and no masks: derived masks, split on"
    assert not static_split_enabled(None, masks) and not static_split_enabled(None, disparity)
    assert not static_split_enabled(None, {})
    assert static_split_enabled(True, masks) and not static_split_enabled(False, metric)

    def weight(setting, metadata):
        config = SimpleNamespace(depth_loss_weight=setting, depth_loss_decay_steps=0, depth_loss_final_fraction=0.1)
        loss = DepthPriorLoss.from_config(config, metadata)
        return None if loss is None else loss.weight

    assert weight(None, metric) == pytest.approx(0.1)
    assert weight(None, disparity) is None, "relative disparity stays opt-in"
    assert weight(0.0, metric) is None and weight(0.3, disparity) == pytest.approx(0.3)
    assert weight(None, {}) is None


def test_too_short_a_video_gives_no_masks(dycheck_scene):
    manager = _manager(dycheck_scene)  # 2 phone frames: no neighbour 3 frames away
    assert derived_motion_seeding(manager.train_dataset.cameras, manager.cached_train) is None


def test_default_model_splits_static_seeds_from_derived_foreground(phone_video):
    """dynsplat-som's defaults on the video: the SfM-like seed points (static structure only) stay mostly static,
    the foreground seeds unprojected from the derived masks with the LiDAR depth are dynamic, and the depth loss is
    on; ``static_background=False`` and ``depth_loss_weight=0`` turn both off."""
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
    from dynsplat_ns.motion import ShapeOfMotionConfig

    manager = _manager(phone_video)
    meta = manager.train_dataparser_outputs.metadata
    cfg = DynamicSplatModelConfig(motion=ShapeOfMotionConfig(num_bases=4), rasterizer_backend="torch")
    model = model_from_manager(cfg, manager)
    flag = model.gauss_params[STATIC_KEY]
    n_seeds = meta["points3D_xyz"].shape[0]
    assert model.depth_loss is not None and model.depth_loss.weight == pytest.approx(0.1)
    assert flag.shape[0] > n_seeds + 50, "foreground seeds were added"
    assert float(flag[:n_seeds].detach().mean()) > 0.75, "the static structure's seed points stay static (0.875)"
    assert float(flag[n_seeds:].detach().max()) == 0.0, "the foreground seeds are dynamic"

    cfg.static_background, cfg.depth_loss_weight = False, 0.0
    off = model_from_manager(cfg, manager)
    assert STATIC_KEY not in off.gauss_params and off.depth_loss is None
    assert off.num_points == n_seeds


def test_ns_train_says_which_priors_it_uses_and_ns_eval_loads_the_split(phone_video, tmp_path):
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    out = tmp_path / "outputs"
    cmd = [str(BIN / "ns-train"), "dynsplat-som", "--machine.device-type", "cpu", "--vis", "tensorboard",
           "--max-num-iterations", "3", "--steps-per-save", "1000", "--steps-per-eval-image", "1000",
           "--steps-per-eval-all-images", "100000", "--output-dir", str(out), "--experiment-name", "video",
           "--timestamp", "run", "dynsplat-dycheck", "--data", str(phone_video)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    log = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0, log[-3000:]
    assert "Motion masks: derived from the depth and colour consistency of 30 training views" in log, log[-3000:]
    assert "--pipeline.model.static-background False" in log
    assert "Depth prior: the data ships metric depth; using it with weight 0.1" in log
    run = out / "video" / "dynsplat-som" / "run"
    eval_json = tmp_path / "eval.json"
    proc = subprocess.run([str(BIN / "ns-eval"), "--load-config", str(run / "config.yml"), "--output-path",
                           str(eval_json)], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(eval_json.read_text())["results"]
    assert results["covisible_psnr"] > 5.0 and results["psnr"] > 5.0
    (ckpt,) = (run / "nerfstudio_models").glob("step-*.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["pipeline"]
    flag = state[f"_model.gauss_params.{STATIC_KEY}"]
    assert 0 < int((flag > 0.5).sum()) < flag.shape[0], "both static and dynamic Gaussians"


def test_derive_motion_masks_false_leaves_every_gaussian_dynamic(phone_video):
    """``--pipeline.datamanager.derive-motion-masks False``: no masks, so the split has nothing to go by (every
    Gaussian dynamic, no foreground seeds) while the static flag still exists for the checkpoint's layout."""
    from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
    from dynsplat_ns.motion import ShapeOfMotionConfig
    from dynsplat_ns.priors.depth import MOTION_MASKS_KEY
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    config = DynsplatDatamanagerConfig(dataparser=DycheckDataParserConfig(data=phone_video), derive_motion_masks=False)
    manager = config.setup(device="cpu")
    assert MOTION_MASKS_KEY not in manager.train_dataset.metadata
    meta = manager.train_dataparser_outputs.metadata
    model = model_from_manager(DynamicSplatModelConfig(motion=ShapeOfMotionConfig(num_bases=4)), manager)
    flag = model.gauss_params[STATIC_KEY]
    assert flag.shape[0] == meta["points3D_xyz"].shape[0] and float(flag.detach().max()) == 0.0


def test_relative_disparity_without_masks_derives_none(tmp_path):
    """Mask derivation needs metric depth: D2RF-layout data with its dpt/ disparity but no motion_masks/ gets no
    masks (and so, by default, no split)."""
    import shutil

    from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
    from dynsplat_ns.priors.depth import MOTION_MASKS_KEY
    from dynsplat_ns.scenes.d2rf import make_d2rf_scene
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    scene = make_d2rf_scene(tmp_path / "scene", width=48, height=24, n_times=4)
    shutil.rmtree(scene / "motion_masks")
    manager = DynsplatDatamanagerConfig(dataparser=D2RFDataParserConfig(data=scene)).setup(device="cpu")
    assert manager.train_dataparser_outputs.metadata["depth_kind"] == "disparity"
    assert MOTION_MASKS_KEY not in manager.train_dataset.metadata
