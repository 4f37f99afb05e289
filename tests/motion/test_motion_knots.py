"""Motion on key times (--pipeline.model.motion.num-knots): Shape-of-Motion bases and Marbles offsets on fewer key
times than frames, linear in between; earlier runs' configs keep one per frame."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.motion import MarblesMotionConfig, ShapeOfMotionConfig


def test_som_knots_shape_interpolation_and_identity():
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    model = ShapeOfMotionConfig(num_bases=3, num_knots=5).setup(num_frames=40, aabb=aabb)
    assert tuple(model.rots.shape) == (3, 5, 6) and tuple(model.transls.shape) == (3, 5, 3)
    g = torch.Generator().manual_seed(0)
    gs = {"means": torch.rand(50, 3, generator=g), "scales": torch.zeros(50, 3),
          "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(50, 1), "opacities": torch.zeros(50, 1)}  # fmt: skip
    gs.update(model.per_gaussian_params(gs))
    model.set_step(10**6)
    assert torch.allclose(model(gs, 0.37)["means"], gs["means"], atol=1e-6)  # identity at init
    with torch.no_grad():
        model.transls[:, 1] = torch.tensor([1.0, 0.0, 0.0])  # knot 1 sits at t = 0.25
    assert torch.allclose(model(gs, 0.25)["means"] - gs["means"], torch.tensor([1.0, 0, 0]).expand(50, 3), atol=1e-5)
    half = model(gs, 0.125)["means"] - gs["means"]
    assert torch.allclose(half, torch.tensor([0.5, 0, 0]).expand(50, 3), atol=1e-5)
    assert model.per_frame_state_keys() == {"rots": 1, "transls": 1}
    assert float(model.regularization(gs, 0.5)["bases_smoothness"].detach()) > 0
    with pytest.raises(ValueError, match="num_knots"):
        ShapeOfMotionConfig(num_knots=1).setup(num_frames=10, aabb=aabb)


def test_config_of_an_earlier_run_keeps_one_pose_per_frame():
    """A config.yml written before key times existed has no num_knots: it loads as one pose per frame (0), so
    ns-eval/ns-render/ns-viewer rebuild the bases that run trained."""
    import copy

    import yaml

    earlier = (
        "!!python/object:dynsplat_ns.motion.som.ShapeOfMotionConfig\n"
        "_target: !!python/name:dynsplat_ns.motion.som.ShapeOfMotion ''\n"
        "bases_lr: 0.005\ncoef_init_temperature: 0.1\ncoefs_lr: 0.01\nnum_bases: 10\nrigidity_knn: 8\n"
        "rigidity_samples: 1024\nrigidity_weight: 0.0\nsmoothness_weight: 50.0\nstatic_warmup_steps: 0\n"
    )
    config = yaml.load(earlier, Loader=yaml.Loader)
    assert isinstance(config, ShapeOfMotionConfig) and config.num_knots == 0 and config.num_bases == 10
    assert config.setup(num_frames=40, aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])).rots.shape[1] == 40
    assert copy.deepcopy(ShapeOfMotionConfig(num_knots=7)).num_knots == 7
    assert ShapeOfMotionConfig(num_knots=25).setup(num_frames=12).rots.shape[1] == 12  # never more knots than frames


def test_marbles_knots_hold_the_offsets_and_the_cap():
    model = MarblesMotionConfig(num_knots=5, max_motion_floats=3 * 5 * 10).setup(num_frames=40)
    gs = {"means": torch.zeros(10, 3)}
    offsets = model.per_gaussian_params(gs)["marble_offsets"]
    assert tuple(offsets.shape) == (10, 5, 3) and model.max_gaussians() == 10
    offsets[:, 1] = 1.0  # key time 1 sits at t = 0.25
    assert torch.allclose(model.offsets_at(offsets, 0.125), torch.full((10, 3), 0.5))
    with pytest.raises(ValueError, match="key times"):
        model.per_gaussian_params({"means": torch.zeros(11, 3)})


@pytest.mark.parametrize("config", [ShapeOfMotionConfig, MarblesMotionConfig])
def test_bad_knot_counts_are_one_clear_error(config):
    from dynsplat_ns.errors import DynsplatConfigError

    for knots in (-2, 1):
        with pytest.raises(DynsplatConfigError, match="num-knots"):
            model = config(num_knots=knots).setup(num_frames=10)
            model.per_gaussian_params({"means": torch.zeros(4, 3)})
