"""Depth priors (issue 14): the losses, the batch's ``depth_prior`` at the image's resolution, a clear error for a
broken depth file, and the model's depth term while training."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from dynsplat_ns.errors import ImageFileError
from dynsplat_ns.models.depth_loss import DepthPriorLoss, metric_depth_loss, scale_shift_invariant_loss
from dynsplat_ns.priors.depth import DEPTH_BATCH_KEY, attach_depth_priors


def test_scale_shift_invariant_loss_is_zero_for_affine_maps_of_the_prior():
    gen = torch.Generator().manual_seed(0)
    prior = torch.rand(24, 32, generator=gen) * 5 + 0.1
    valid = torch.ones_like(prior, dtype=torch.bool)
    for scale, shift in ((1.0, 0.0), (0.03, 2.0), (40.0, -7.0)):
        assert float(scale_shift_invariant_loss(scale * prior + shift, prior, valid)) < 1e-5
    assert float(scale_shift_invariant_loss(prior.square().sqrt().exp(), prior, valid)) > 0.05  # not affine
    assert float(scale_shift_invariant_loss(-prior, prior, valid)) > 0.5  # inverted depth: no negative scale
    noisy = prior + torch.rand(prior.shape, generator=gen)
    assert float(scale_shift_invariant_loss(noisy, prior, valid)) > 0.01
    # invalid pixels are ignored, whatever they hold
    bad = prior.clone()
    valid[:4] = False
    bad[:4] = 1e6
    assert float(scale_shift_invariant_loss(2 * bad + 1, prior, valid)) < 1e-5


def test_scale_shift_invariant_loss_has_a_gradient_towards_the_prior():
    prior = torch.linspace(0.2, 2.0, 64).reshape(8, 8)
    pred = (prior.square() + 0.1).requires_grad_()
    valid = torch.ones(8, 8, dtype=torch.bool)
    before = scale_shift_invariant_loss(pred, prior, valid)
    before.backward()
    with torch.no_grad():
        after = scale_shift_invariant_loss(pred - 0.5 * pred.grad, prior, valid)
    assert float(after) < float(before.detach())


def test_metric_depth_loss():
    prior = torch.full((8, 8), 2.0)
    valid = torch.ones(8, 8, dtype=torch.bool)
    assert float(metric_depth_loss(prior.clone(), prior, valid)) == 0.0
    assert float(metric_depth_loss(prior + 0.5, prior, valid)) == pytest.approx(0.5)
    pred = prior.clone()
    pred[:2] = 100.0
    valid[:2] = False
    assert float(metric_depth_loss(pred, prior, valid)) == 0.0
    assert float(metric_depth_loss(pred, prior, torch.zeros_like(valid))) == 0.0  # too few pixels: no term


def test_weight_schedule_and_auto_off():
    cfg = types.SimpleNamespace(depth_loss_weight=0.2, depth_loss_decay_steps=100, depth_loss_final_fraction=0.25)
    assert DepthPriorLoss.from_config(cfg, {}) is None, "no depth in the metadata: off"
    loss = DepthPriorLoss.from_config(cfg, {"depth_filenames": ["a.npy"], "depth_kind": "disparity"})
    assert (loss.weight_at(0), loss.weight_at(50), loss.weight_at(100), loss.weight_at(10**6)) == pytest.approx(
        (0.2, 0.125, 0.05, 0.05)
    )
    cfg.depth_loss_weight = 0.0
    assert DepthPriorLoss.from_config(cfg, {"depth_filenames": ["a.npy"]}) is None, "weight 0: off"


def _manager(scene, **parser):
    from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    config = DynsplatDatamanagerConfig(dataparser=D2RFDataParserConfig(data=scene, **parser))
    return config.setup(device="cpu")


def test_the_batch_carries_the_depth_prior_at_the_image_resolution(d2rf_scene):
    # half-res images have the dpt/ files' own resolution: the prior is the file
    manager = _manager(d2rf_scene, image_source="half-res")
    camera, batch = manager.next_train(0)
    index = int(camera.metadata["cam_idx"])
    depth_file = manager.train_dataparser_outputs.metadata["depth_filenames"][index]
    assert batch[DEPTH_BATCH_KEY].shape == (*batch["image"].shape[:2], 1) == (16, 32, 1)
    assert torch.equal(batch[DEPTH_BATCH_KEY][..., 0], torch.from_numpy(np.load(depth_file)))
    # full-resolution images: the half-resolution disparity is resized to them
    manager = _manager(d2rf_scene, image_source="sharp")
    _, batch = manager.next_train(0)
    assert batch[DEPTH_BATCH_KEY].shape == (*batch["image"].shape[:2], 1) == (32, 64, 1)
    assert batch[DEPTH_BATCH_KEY].dtype == torch.float32


def test_metric_depth_is_scaled_to_world_units(tmp_path):
    np.save(tmp_path / "d.npy", np.full((4, 6), 2.0, np.float32))
    camera = types.SimpleNamespace(width=torch.tensor([12]), height=torch.tensor([8]), distortion_params=None)
    outputs = types.SimpleNamespace(
        metadata={"depth_filenames": [tmp_path / "d.npy"], "depth_kind": "metric", "depth_unit_scale_factor": 0.5},
        cameras=[camera], dataparser_scale=3.0,
    )  # fmt: skip
    cached = [{"image": torch.zeros(8, 12, 3)}]
    attach_depth_priors(cached, outputs)
    assert cached[0][DEPTH_BATCH_KEY].shape == (8, 12, 1)
    assert torch.allclose(cached[0][DEPTH_BATCH_KEY], torch.full((8, 12, 1), 3.0))


def test_a_broken_depth_file_is_named(d2rf_scene_copy, monkeypatch):
    monkeypatch.setenv("DYNSPLAT_DEBUG", "1")
    broken = sorted((d2rf_scene_copy / "dpt").glob("*_left.npy"))[1]
    broken.write_bytes(b"not a numpy file")
    with pytest.raises(ImageFileError, match=broken.name):
        _manager(d2rf_scene_copy)


def test_the_model_trains_with_the_depth_prior(d2rf_scene):
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
    from dynsplat_ns.motion import ShapeOfMotionConfig

    manager = _manager(d2rf_scene, image_source="sharp")
    meta = manager.train_dataparser_outputs.metadata
    cfg = DynamicSplatModelConfig(motion=ShapeOfMotionConfig(num_bases=4), rasterizer_backend="torch",
                                  depth_loss_weight=0.3)  # fmt: skip
    model = cfg.setup(scene_box=manager.train_dataset.scene_box, num_train_data=len(manager.train_dataset),
                      metadata=manager.train_dataset.metadata, device="cpu",
                      seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]))  # fmt: skip
    assert model.depth_loss is not None and model.depth_loss.kind == "disparity"
    from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers

    groups = model.get_param_groups()
    config = {name: {"optimizer": AdamOptimizerConfig(lr=1e-3), "scheduler": None} for name in groups}
    model.step_cb(Optimizers(config, groups), 0)  # the densification strategy records its statistics while training
    model.train()
    camera, batch = manager.next_train(0)
    outputs = model.get_outputs(camera)
    assert outputs["depth"] is not None and outputs["depth"].shape == (32, 64, 1), "expected depth while the loss is on"
    loss_dict = model.get_loss_dict(outputs, batch)
    assert float(loss_dict["depth_loss"]) > 0
    loss_dict["depth_loss"].backward()
    assert model.gauss_params["means"].grad.abs().sum() > 0


def test_an_image_without_a_depth_file_gets_no_depth_term(tmp_path):
    """A None ``depth_filenames`` entry (a DyCheck val frame moved into train) gives an all-invalid prior: no term."""
    np.save(tmp_path / "d.npy", np.full((8, 12), 2.0, np.float32))
    camera = types.SimpleNamespace(width=torch.tensor([12]), height=torch.tensor([8]), distortion_params=None)
    outputs = types.SimpleNamespace(metadata={"depth_filenames": [tmp_path / "d.npy", None], "depth_kind": "metric"},
                                    cameras=[camera, camera], dataparser_scale=1.0)  # fmt: skip
    cached = [{"image": torch.zeros(8, 12, 3)}, {"image": torch.zeros(8, 12, 3)}]
    attach_depth_priors(cached, outputs)
    assert torch.equal(cached[0][DEPTH_BATCH_KEY], torch.full((8, 12, 1), 2.0))
    assert cached[1][DEPTH_BATCH_KEY].shape == (8, 12, 1) and cached[1][DEPTH_BATCH_KEY].isnan().all()
    render = {"depth": torch.full((8, 12, 1), 3.0), "accumulation": torch.ones(8, 12, 1)}
    for kind in ("metric", "disparity"):
        loss = DepthPriorLoss(kind, weight=1.0)
        assert float(loss(render, {DEPTH_BATCH_KEY: cached[1][DEPTH_BATCH_KEY]}, 0)["depth_loss"]) == 0.0, kind
    assert float(DepthPriorLoss("metric", 1.0)(render, cached[0], 0)["depth_loss"]) == pytest.approx(1.0)


def test_dycheck_val_frames_moved_into_train_by_split_indices(dycheck_scene, tmp_path):
    """DyCheck ships depth for the phone frames only: split_indices.json may put val frames (no depth) into train."""
    import json

    from dynsplat_ns.dataparsers.dycheck import DycheckDataParserConfig
    from dynsplat_ns.training.datamanager import DynsplatDatamanagerConfig

    (tmp_path / "split.json").write_text(json.dumps({"train": [0, 1, 2, 3], "test": [4, 5]}))
    parser = DycheckDataParserConfig(data=dycheck_scene, split_indices=tmp_path / "split.json")
    manager = DynsplatDatamanagerConfig(dataparser=parser).setup(device="cpu")
    names = manager.train_dataparser_outputs.metadata["frame_names"]
    assert names == ["0_00000", "0_00001", "1_00000", "1_00001"]
    for i, item in enumerate(manager.cached_train):
        prior = item[DEPTH_BATCH_KEY]
        assert prior.shape == (*item["image"].shape[:2], 1), names[i]
        if names[i].startswith("0_"):  # the phone: LiDAR depth on the scene's surfaces
            assert (prior > 0).float().mean() > 0.2, names[i]
        else:
            assert prior.isnan().all(), names[i]
