"""Every command-line flag of every dynsplat method does something (issue 10 §1; dataparsers:
tests/test_cli_flags_dataparsers.py).

The flags are read from nerfstudio's own ``ns-train`` parser (tyro over ``AnnotatedBaseConfigUnion``, entry points
included): the help of ``ns-train METHOD``. Each flag is either

* checked: set to a non-default value, parsed by tyro as ``ns-train`` parses it, built as ``ns-train`` builds it
  (``DynsplatTrainer`` + ``setup()`` + one training iteration), and the value is found where it acts (optimizer
  learning rates and schedules, the densification strategy, parameter shapes, the rasterizer's output, the object
  actually used);
* rejected: an option we inherit but do not support; the model's setup fails with an error naming the flag;
* or on :data:`LATER` (or :data:`FIXED`), with the reason it can only act after setup (training loop, viewer,
  resume, ...).

A new flag that is in none of these fails ``test_every_flag_is_classified``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from cli_helpers import cli_flags, parse
from flag_build import Built, build, clear_writers
from nerfstudio.utils import writer

from dynsplat_ns.errors import DynsplatConfigError

METHODS = ("dynsplat-4dgs", "dynsplat-som", "dynsplat-marbles")

TRAIN_LOOP = "read by nerfstudio's Trainer.train() loop (DynsplatTrainer does not override it)"
#: Flags that can only act after setup, and why (fnmatch patterns over the flag names).
LATER: dict[str, str] = {
    "--steps-per-save": TRAIN_LOOP,
    "--steps-per-eval-batch": TRAIN_LOOP,
    "--steps-per-eval-image": TRAIN_LOOP,
    "--steps-per-eval-all-images": TRAIN_LOOP,
    "--save-only-latest-checkpoint": TRAIN_LOOP + " (checkpoint writing)",
    "--log-gradients": TRAIN_LOOP,
    "--logging.steps-per-log": TRAIN_LOOP,
    "--logging.max-buffer-size": "nerfstudio's event writer buffers, filled by the training loop",
    "--logging.profiler": "nerfstudio's profiler, reports at exit",
    "--logging.local-writer.*": "nerfstudio's terminal stats writer, filled by the training loop",
    "--project-name": "wandb/comet project (writers not used here)",
    "--load-dir": "resume (tests/tools/test_tools_resume.py)",
    "--load-step": "resume (tests/tools/test_tools_resume.py)",
    "--load-checkpoint": "resume (tests/tools/test_tools_resume.py)",
    "--load-scheduler": "resume (tests/tools/test_tools_resume.py)",
    "--load-config": "ns-train's main() replaces the whole config by the file's (tests/test_integration_ns_tools.py)",
    "--machine.seed": "ns-train's train_loop() seeds the RNGs before the trainer is built",
    "--machine.num-devices": "ns-train's launch(): one process per device, before the trainer is built",
    "--machine.num-machines": "ns-train's launch(), before the trainer is built",
    "--machine.machine-rank": "ns-train's launch(), before the trainer is built",
    "--machine.dist-url": "ns-train's launch(), before the trainer is built",
    "--viewer.*": "nerfstudio's viewer, started by Trainer.setup() only with --vis viewer (not here; tests/viewer/)",
    "--pipeline.datamanager.stereo-seeds": "DynsplatDatamanager's seed points at setup (tests/test_seeding.py)",
    "--pipeline.datamanager.cameras-per-step": "DynsplatPipeline's training step (tests/test_cameras_per_step.py)",
    "--pipeline.datamanager.cache-bytes": "the bounded training-image cache (tests/test_image_cache.py)",
    "--pipeline.datamanager.prefetch-images": "the bounded cache's prefetch thread (tests/test_image_cache.py)",
    "--pipeline.datamanager.*": "nerfstudio's FullImageDatamanager options (caching, sampling), read by nerfstudio's "
    "own datamanager code, which DynsplatDatamanager inherits (beside the options above, it names undecodable images)",
    "--pipeline.model.sh-degree-interval": "read from the model's config at every render (sh degree schedule)",
    "--pipeline.model.ssim-lambda": "read from the model's config by every loss (splatfacto's get_loss_dict)",
    "--pipeline.model.dynamic-seed-points": "needs motion masks + disparity, which the D-NeRF fixture lacks: "
    "tests/models/test_dynamic_seeding.py builds a model with it",
    "--pipeline.model.eval-pose-refine-*": "ns-eval's test-time pose refinement (tests/models/test_pose_refine.py)",
}
#: Flags with a single possible value (nothing to change).
FIXED = {"--optimizers.*.scheduler": "the group has no scheduler; tyro offers only None"}
#: Inherited options we do not support: setting them is an error at model setup, naming the flag.
REJECTED = {
    "--pipeline.model.n-split-samples": ["3"],
    "--pipeline.model.random-scale": ["5.0"],
    "--pipeline.model.color-corrected-metrics": ["True"],
    "--prompt": ["a red car"],
}

# ----------------------------------------------------------------------------------------------------------------------
# Flags as ns-train shows them, parsing and building as ns-train does
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _writers():
    yield
    clear_writers()


# ----------------------------------------------------------------------------------------------------------------------
# Checked flags: (flag, arguments, probe(built), expected)
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Check:
    flag: str
    values: list[str]
    probe: Callable[[Built], Any]
    expected: Any


def _is_dir(b: Built, *parts: str) -> bool:
    return b.trainer.base_dir.joinpath(*parts).is_dir()


def _compensated(b: Built) -> bool:
    """Whether the last render composited smaller opacities than the Gaussians' (antialiased mode)."""
    model = b.model
    model.eval()
    camera = b.trainer.pipeline.datamanager.eval_dataset.cameras[0:1]
    model.get_outputs_for_camera(camera)
    opacities = torch.sigmoid(model.gaussians_at(0.0)["opacities"]).reshape(-1)
    used = model.info["opacities"].reshape(-1)
    return bool((used < opacities - 1e-6).any())


def _active(b: Built, step: int) -> bool:
    motion = b.model.motion
    old = motion.step
    motion.set_step(step)
    try:
        return motion.active
    finally:
        motion.set_step(old)


def _motion_aabb(b: Built) -> list[float]:
    """Size of the box the motion model covers, relative to the initial points' box."""
    lo, hi = b.initial["means"].min(dim=0).values, b.initial["means"].max(dim=0).values
    return [round(float(x), 4) for x in (b.model.motion.aabb[1] - b.model.motion.aabb[0]) / (hi - lo)]


def _motion_loss_keys(b: Built) -> set[str]:
    """Loss terms of a training render with the motion model active, other than splatfacto's."""
    camera, batch = b.trainer.pipeline.datamanager.next_train(2)
    model = b.model
    model.train()
    model.motion.set_step(10**6)
    loss_dict = model.get_loss_dict(model.get_outputs(camera.to(model.device)), batch)
    return set(loss_dict) - {"main_loss", "scale_reg", "opacity_reg", "camera_opt_regularizer", "tv_loss"}


def _depth_term(b: Built) -> Any:
    """The depth-prior loss the model's config gives on data with disparity (the D-NeRF fixture has no depth, so the
    built model's own term is off: tests/models/test_depth_prior.py trains with it)."""
    from dynsplat_ns.models.depth_loss import DepthPriorLoss

    assert b.model.depth_loss is None, "no depth in the data: the term is off"
    return DepthPriorLoss.from_config(b.model.config, {"depth_filenames": ["d.npy"], "depth_kind": "disparity"})


def _initial_lr(b: Built, group: str) -> float:
    pg = b.group(group)
    return pg.get("initial_lr", pg["lr"])


def attr(path: str) -> Callable[[Built], Any]:
    """The value of ``path`` (dotted, from the trainer) in the objects the trainer built."""

    def probe(b: Built) -> Any:
        obj: Any = b.trainer
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    return probe


TRAINER_CHECKS = [
    Check("--output-dir", [], lambda b: b.trainer.base_dir.is_relative_to(b.config.output_dir), True),
    Check("--method-name", ["m-x"], lambda b: "m-x" in b.trainer.base_dir.parts, True),
    Check("--experiment-name", ["e-x"], lambda b: "e-x" in b.trainer.base_dir.parts, True),
    Check("--timestamp", ["t-x"], lambda b: b.trainer.base_dir.name, "t-x"),
    Check("--relative-model-dir", ["models-x"], lambda b: b.trainer.checkpoint_dir.name, "models-x"),
    Check("--vis", [], lambda b: any(hasattr(w, "tb_writer") for w in writer.EVENT_WRITERS), True),
    # ns-train's --data alias wins over the dataparser's --data (set to a folder that does not exist)
    Check("--data", ["{scene}"], lambda b: b.trainer.pipeline.datamanager.dataparser.config.data, None),
    Check("--machine.device-type", [], lambda b: (b.trainer.device, b.model.device.type), ("cpu", "cpu")),
    Check("--logging.relative-log-dir", ["logs-x"], lambda b: _is_dir(b, "logs-x"), True),
    Check("--mixed-precision", ["True"], attr("use_grad_scaler"), True),
    Check("--start-paused", ["True"], attr("training_state"), "paused"),
    Check("--gradient-accumulation-steps", ["quats", "2"], lambda b: b.trainer.gradient_accumulation_steps["quats"], 2),
    # auto horizons follow the run length: means decays over 400 steps (its max-steps stays None)
    Check("--max-num-iterations", ["400"], lambda b: (b.lr_at("means", 399) > 2.0001e-6, b.lr_at("means", 400)),
          (True, 2e-6)),
]

#: nerfstudio optimizer groups of the Gaussians (and of the camera optimizer and bilateral grid).
GROUPS = ("means", "features-dc", "features-rest", "opacities", "scales", "quats", "camera-opt", "bilateral-grid")

MODEL_CHECKS = [
    Check("--pipeline.model.background-color", ["black"], lambda b: b.model.background_color.tolist(), [0, 0, 0]),
    Check("--pipeline.model.near-camera-prune", ["0.5"], attr("pipeline.model.config.near_camera_prune"), 0.5),
    Check("--pipeline.model.opacity-reg", ["0.5"], lambda b: float(b.loss_dict["opacity_reg"]) / float(
        torch.sigmoid(b.initial["opacities"]).mean()), 0.5),
    Check("--pipeline.model.camera-optimizer.mode", ["SO3xR3"],
          lambda b: (b.model.camera_optimizer.pose_adjustment.shape[1], b.group("camera_opt")["lr"] >= 0), (6, True)),
    Check("--pipeline.model.camera-optimizer.rot-l2-penalty", ["0.5"],
          attr("pipeline.model.camera_optimizer.config.rot_l2_penalty"), 0.5),
    Check("--pipeline.model.camera-optimizer.trans-l2-penalty", ["0.25"],
          attr("pipeline.model.camera_optimizer.config.trans_l2_penalty"), 0.25),
    Check("--pipeline.model.cull-alpha-thresh", ["0.07"], lambda b: b.strategy.prune_opa, 0.07),
    Check("--pipeline.model.cull-scale-thresh", ["0.3"], lambda b: b.strategy.prune_scale3d, 0.3),
    Check("--pipeline.model.cull-screen-size", ["0.2"], lambda b: b.strategy.prune_scale2d, 0.2),
    Check("--pipeline.model.densify-grad-thresh", ["0.0005"], lambda b: b.strategy.grow_grad2d, 0.0005),
    Check("--pipeline.model.densify-size-thresh", ["0.02"], lambda b: b.strategy.grow_scale3d, 0.02),
    Check("--pipeline.model.split-screen-size", ["0.07"], lambda b: b.strategy.grow_scale2d, 0.07),
    Check("--pipeline.model.stop-screen-size-at", ["77"], lambda b: b.strategy.refine_scale2d_stop_iter, 77),
    Check("--pipeline.model.stop-split-at", ["123"], lambda b: b.strategy.refine_stop_iter, 123),
    Check("--pipeline.model.warmup-length", ["11"], lambda b: b.strategy.refine_start_iter, 11),
    Check("--pipeline.model.refine-every", ["7"], lambda b: b.strategy.refine_every, 7),
    Check("--pipeline.model.reset-alpha-every", ["3"], lambda b: b.strategy.reset_every, 21),
    Check("--pipeline.model.use-absgrad", ["False"], lambda b: b.strategy.absgrad, False),
    Check("--pipeline.model.use-bilateral-grid", ["True"],
          lambda b: "bilateral_grid" in b.trainer.optimizers.optimizers, True),
    Check("--pipeline.model.grid-shape", ["4", "3", "2"], lambda b: tuple(b.model.bil_grids.grids.shape[2:]),
          (2, 3, 4)),
    Check("--pipeline.model.initial-opacity", ["0.3"],
          lambda b: round(float(torch.sigmoid(b.initial["opacities"]).median()), 6), 0.3),
    Check("--pipeline.model.use-scale-regularization", ["True"], lambda b: b.loss_dict["scale_reg"] > 0, True),
    # isotropic initial scales: max/min = 1, so a ratio threshold of 0.5 gives 0.1 * (1 - 0.5) at step 0
    Check("--pipeline.model.max-gauss-ratio", ["0.5"], lambda b: round(b.loss_dict["scale_reg"], 4), 0.05),
    Check("--pipeline.model.random-init", ["True"], lambda b: b.initial["means"].shape[0], 1800),
    Check("--pipeline.model.num-random", ["1800"], lambda b: b.initial["means"].shape[0], 1800),
    Check("--pipeline.model.max-gaussians", ["1500"], lambda b: b.model.num_points, 1500),
    Check("--pipeline.model.sh-degree", ["1"], lambda b: b.model.gauss_params["features_rest"].shape[1], 3),
    Check("--pipeline.model.num-downscales", ["1"], lambda b: b.train_outputs()["rgb"].shape[0], 16),
    Check("--pipeline.model.resolution-schedule", ["5000"], lambda b: b.model.config.resolution_schedule, 5000),
    Check("--pipeline.model.output-depth-during-training", ["True"], lambda b: b.train_outputs()["depth"] is not None,
          True),  # fmt: skip
    Check("--pipeline.model.rasterize-mode", ["antialiased"], _compensated, True),
    # monocular priors (issue 14): the D-NeRF fixture has neither depth nor motion masks (tests/models/)
    Check("--pipeline.model.depth-loss-weight", ["0.5"], lambda b: _depth_term(b).weight, 0.5),
    Check("--pipeline.model.depth-loss-decay-steps", ["100"], lambda b: _depth_term(b).weight_at(50), 0.375),
    Check("--pipeline.model.depth-loss-final-fraction", ["0.5"], lambda b: _depth_term(b).weight_at(10**6), 0.25),
    Check("--pipeline.model.static-background", ["True"],
          lambda b: (b.trainer.optimizers.config["static"]["optimizer"].lr, "static" in b.model.gauss_params),
          (0.0, False)),
    # optimizer groups: rates, Adam options, schedules (camera-opt: explicit horizon; means: auto = run length)
    *[Check(f"--optimizers.{g}.optimizer.lr", [lr], lambda b, g=g: _initial_lr(b, g), float(lr))
      for g, lr in zip(GROUPS, ("0.002", "0.003", "0.0004", "0.04", "0.006", "0.002", "0.0002", "0.003"), strict=True)],
    *[Check(f"--optimizers.{g}.optimizer.eps", ["1e-9"], lambda b, g=g: b.group(g)["eps"], 1e-9) for g in GROUPS],
    *[Check(f"--optimizers.{g}.optimizer.weight-decay", ["1e-6"], lambda b, g=g: b.group(g)["weight_decay"], 1e-6)
      for g in GROUPS],
    *[Check(f"--optimizers.{g}.optimizer.max-norm", ["0.5"], lambda b, g=g: b.used_optimizer(g).max_norm, 0.5)
      for g in GROUPS],
    Check("--optimizers.camera-opt.scheduler.max-steps", ["300"], lambda b: b.lr_at("camera_opt", 300), 1e-6),
    Check("--optimizers.camera-opt.scheduler.lr-final", ["1e-6"], lambda b: b.lr_at("camera_opt", 10**6), 1e-6),
    Check("--optimizers.camera-opt.scheduler.lr-pre-warmup", ["1e-7"], lambda b: b.lr_at("camera_opt", 0), 1e-7),
    Check("--optimizers.camera-opt.scheduler.warmup-steps", ["10"], lambda b: b.lr_at("camera_opt", 10), 2e-4),
    Check("--optimizers.camera-opt.scheduler.ramp", ["linear"], lambda b: b.lr_at("camera_opt", 5), (1e-7 + 2e-4) / 2),
    Check("--optimizers.means.scheduler.lr-final", ["2e-6"], lambda b: b.lr_at("means", 10**6), 2e-6),
    Check("--optimizers.means.scheduler.lr-pre-warmup", ["1e-8"], lambda b: b.lr_at("means", 0), 1e-8),
    Check("--optimizers.means.scheduler.warmup-steps", ["4"], lambda b: b.lr_at("means", 4), 0.002),
    Check("--optimizers.means.scheduler.ramp", ["linear"], lambda b: b.lr_at("means", 2), (1e-8 + 0.002) / 2),
    Check("--optimizers.bilateral-grid.scheduler.max-steps", ["250"], lambda b: b.lr_at("bilateral_grid", 250), 5e-5),
    Check("--optimizers.bilateral-grid.scheduler.lr-final", ["5e-5"], lambda b: b.lr_at("bilateral_grid", 10**6),
          5e-5),
    Check("--optimizers.bilateral-grid.scheduler.lr-pre-warmup", ["1e-5"], lambda b: b.lr_at("bilateral_grid", 0),
          1e-5),
    Check("--optimizers.bilateral-grid.scheduler.warmup-steps", ["20"], lambda b: b.lr_at("bilateral_grid", 20),
          0.003),
    Check("--optimizers.bilateral-grid.scheduler.ramp", ["linear"], lambda b: b.lr_at("bilateral_grid", 10),
          (1e-5 + 0.003) / 2),
]
# fmt: off
MOTION_CHECKS = {
    "dynsplat-4dgs": [
        Check("--pipeline.model.motion.grid-lr", ["0.02"],
              lambda b: (b.group("hexplane_grid")["initial_lr"], b.lr_at("hexplane_grid", 400)), (0.02, 0.0002)),
        Check("--pipeline.model.motion.mlp-lr", ["0.003"],
              lambda b: (b.group("hexplane_mlp")["initial_lr"], b.lr_at("hexplane_mlp", 400)), (0.003, 0.00003)),
        Check("--pipeline.model.motion.resolution", ["6", "5", "4", "3"],
              lambda b: [tuple(p.shape[2:]) for p in b.model.motion.field.levels[0]][2:4], [(3, 6), (4, 5)]),
        Check("--pipeline.model.motion.multires", ["1"], lambda b: len(b.model.motion.field.levels), 1),
        Check("--pipeline.model.motion.feature-dim", ["6"], lambda b: b.model.motion.field.levels[0][0].shape[1], 6),
        Check("--pipeline.model.motion.net-width", ["24"], lambda b: b.model.motion.feature_out.out_features, 24),
        Check("--pipeline.model.motion.aabb-margin", ["0.5"], _motion_aabb, [2.0, 2.0, 2.0]),
        Check("--pipeline.model.motion.static-warmup-steps", ["7"], lambda b: (_active(b, 6), _active(b, 7)),
              (False, True)),
        Check("--pipeline.model.motion.plane-tv-weight", ["0.5"], attr("pipeline.model.motion.config.plane_tv_weight"),
              0.5),
        Check("--pipeline.model.motion.time-smoothness-weight", ["0.5"],
              attr("pipeline.model.motion.config.time_smoothness_weight"), 0.5),
        Check("--pipeline.model.motion.l1-time-planes-weight", ["0.5"],
              attr("pipeline.model.motion.config.l1_time_planes_weight"), 0.5),
    ],
    "dynsplat-som": [
        Check("--pipeline.model.motion.bases-lr", ["0.004"],
              lambda b: (b.group("motion_bases")["initial_lr"], b.lr_at("motion_bases", 400)), (0.004, 0.0004)),
        Check("--pipeline.model.motion.coefs-lr", ["0.02"], lambda b: b.group("motion_coefs")["lr"], 0.02),
        Check("--pipeline.model.motion.num-bases", ["4"],
              lambda b: (b.model.motion.rots.shape[0], b.model.gauss_params["motion_coefs"].shape[1]), (4, 4)),
        Check("--pipeline.model.motion.static-warmup-steps", ["7"], lambda b: (_active(b, 6), _active(b, 7)),
              (False, True)),
        Check("--pipeline.model.motion.num-knots", ["3"],
              lambda b: (b.model.motion.rots.shape[1], b.model.motion.transls.shape[1]), (3, 3)),
        Check("--pipeline.model.motion.coef-init-temperature", ["0.5"],
              attr("pipeline.model.motion.config.coef_init_temperature"), 0.5),
        Check("--pipeline.model.motion.smoothness-weight", ["0.5"],
              attr("pipeline.model.motion.config.smoothness_weight"), 0.5),
        Check("--pipeline.model.motion.rigidity-weight", ["0.5"], attr("pipeline.model.motion.config.rigidity_weight"),
              0.5),
        Check("--pipeline.model.motion.rigidity-knn", ["4"], attr("pipeline.model.motion.config.rigidity_knn"), 4),
        Check("--pipeline.model.motion.rigidity-samples", ["64"], attr("pipeline.model.motion.config.rigidity_samples"),
              64),
    ],
    "dynsplat-marbles": [
        Check("--pipeline.model.motion.offsets-lr", ["0.007"],
              lambda b: (b.group("marble_offsets")["initial_lr"], b.lr_at("marble_offsets", 400)), (0.007, 0.0007)),
        Check("--pipeline.model.motion.max-motion-floats", ["360000"],
              lambda b: b.model.motion.max_gaussians() * 3 * b.model.motion.num_knots, 360000),
        Check("--pipeline.model.motion.num-knots", ["3"], lambda b: b.model.gauss_params["marble_offsets"].shape[1], 3),
        Check("--pipeline.model.motion.static-warmup-steps", ["7"], lambda b: (_active(b, 6), _active(b, 7)),
              (False, True)),
        Check("--pipeline.model.motion.isometry-weight", ["0.5"], attr("pipeline.model.motion.config.isometry_weight"),
              0.5),
        Check("--pipeline.model.motion.isometry-knn", ["4"], attr("pipeline.model.motion.config.isometry_knn"), 4),
        Check("--pipeline.model.motion.isometry-samples", ["64"], attr("pipeline.model.motion.config.isometry_samples"),
              64),
        Check("--pipeline.model.motion.velocity-weight", ["0.5"], attr("pipeline.model.motion.config.velocity_weight"),
              0.5),
        Check("--pipeline.model.motion.stillness-weight", ["0.5"],
              attr("pipeline.model.motion.config.stillness_weight"), 0.5),  # the loss: tests/motion/test_motion_marbles
        Check("--pipeline.model.motion.magnitude-weight", ["0.5"],
              attr("pipeline.model.motion.config.magnitude_weight"), 0.5),  # the loss: tests/motion/test_motion_marbles
    ],
}
# fmt: on

#: Checked on a second build of dynsplat-4dgs (they change what the first build's checks look at).
SECOND_BUILD = [
    # fixed 20000-step schedules: auto horizons, densification stop and 4DGS warm-up as for 20000 steps
    Check("--fit-schedules", ["False"],
          lambda b: (round(b.lr_at("hexplane_grid", 20000) / b.lr_at("hexplane_grid", 10**6), 6),
                     b.strategy.refine_stop_iter, b.model.motion.config.static_warmup_steps), (1.0, 15000, 3000)),
    Check("--optimizers.means.scheduler.max-steps", ["250"], lambda b: round(b.lr_at("means", 250) / 1.6e-5, 6), 1.0),
    Check("--use-grad-scaler", ["True"], attr("use_grad_scaler"), True),
    Check("--pipeline.model.disable-motion", ["True"], _motion_loss_keys, set()),
    Check("--max-num-iterations", ["400"], attr("config.max_num_iterations"), 400),
    # the D-NeRF fixture has alpha (white background): the environment map is an explicit choice there
    Check("--pipeline.model.background-color", ["environment"],
          lambda b: (b.model.environment is not None, b.train_outputs()["background"].shape), (True, (32, 32, 3))),
    Check("--pipeline.model.environment-lr", ["0.03"], lambda b: b.group("environment")["lr"], 0.03),
]  # fmt: skip


def _matches(flag: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(flag, p) for p in patterns)


def _args(checks: list[Check]) -> list[str]:
    return [a for c in checks if c.values for a in (c.flag, *c.values)]


def _assert_checks(built: Built, checks: list[Check], **expected_overrides: Any) -> None:
    problems = []
    for check in checks:
        expected = expected_overrides.get(check.flag, check.expected)
        try:
            got = check.probe(built)
        except Exception as err:  # noqa: BLE001 - report every probe
            problems.append(f"{check.flag}: probe failed: {err!r}")
            continue
        ok = got == expected
        if not ok and isinstance(expected, float) and isinstance(got, float):
            ok = math.isclose(got, expected, rel_tol=1e-5)
        if not ok and isinstance(expected, tuple) and isinstance(got, tuple) and len(got) == len(expected):
            ok = all(math.isclose(x, y, rel_tol=1e-5) for x, y in zip(got, expected, strict=True))
        if not ok:
            problems.append(f"{check.flag} {' '.join(check.values)}: got {got!r}, expected {expected!r}")
    assert not problems, "flags that do not reach what ns-train builds:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def method_flags() -> dict[str, set[str]]:
    return {m: cli_flags(m) for m in METHODS}


def test_every_flag_is_classified(method_flags):
    for method, flags in method_flags.items():
        assert {"--pipeline.model.rasterize-mode", "--optimizers.means.optimizer.lr", "--vis"} <= flags, method
        checked = {c.flag for c in [*TRAINER_CHECKS, *MODEL_CHECKS, *MOTION_CHECKS[method], *SECOND_BUILD]}
        checked.add("--pipeline.model.rasterizer-backend")  # test_rasterizer_backend_reaches_rasterize
        # the motion selector and the other motion models' flags (--pipeline.model.motion NAME switches the model):
        # each checked with the method whose own model it is, and by tests/test_cli_motion_choice.py
        checked |= {"--pipeline.model.motion"} | {c.flag for checks in MOTION_CHECKS.values() for c in checks}
        rejected = set(REJECTED)
        unclassified = sorted(
            f for f in flags if f not in checked | rejected and not _matches(f, LATER) and not _matches(f, FIXED)
        )
        assert not unclassified, f"{method}: flags neither checked, rejected nor on LATER: {unclassified}"
        stale = sorted(f for f in checked | rejected if f not in flags)
        assert not stale, f"{method}: checks for flags ns-train does not have: {stale}"


def test_ray_options_are_not_on_the_command_line(method_flags):
    for flags in method_flags.values():
        assert not {f for f in flags if f.split(".")[-1] in ("enable-collider", "collider-params", "loss-coefficients",
                                                             "eval-num-rays-per-chunk", "prompt") and "model" in f}


def test_every_inherited_splatfacto_option_is_classified():
    """nerfstudio's SplatfactoModelConfig fields are each supported, rejected or not applicable (a new nerfstudio
    version with a new field fails here until it is classified in dynsplat_ns/models/splatfacto_options.py)."""
    from nerfstudio.models.splatfacto import SplatfactoModelConfig

    from dynsplat_ns.models.splatfacto_options import NOT_APPLICABLE, SUPPORTED, UNSUPPORTED

    names = {f.name for f in dataclasses.fields(SplatfactoModelConfig)} - {"_target"}
    lists = [set(SUPPORTED), set(UNSUPPORTED), set(NOT_APPLICABLE)]
    assert names == set().union(*lists) and sum(map(len, lists)) == len(names)


@pytest.mark.parametrize("method", METHODS)
def test_method_flags_reach_the_trainer_and_model(method, dnerf_scene, tmp_path):
    checks = [*TRAINER_CHECKS, *MODEL_CHECKS, *MOTION_CHECKS[method]]
    built = build([method, *_args(checks)], dnerf_scene, tmp_path, parser_data=tmp_path / "not-used")
    _assert_checks(built, checks, **{"--data": dnerf_scene})
    assert _motion_loss_keys(built), "the motion model's regularisers are on without --pipeline.model.disable-motion"


def test_second_build_flags(dnerf_scene, tmp_path):
    built = build(["dynsplat-4dgs", *_args(SECOND_BUILD)], dnerf_scene, tmp_path)
    _assert_checks(built, SECOND_BUILD)
    # config.yml keeps "auto" (None); the values used are in the trainer's config (nerfstudio logs it)
    parsed, used = built.config.pipeline.model, built.trainer.config.pipeline.model
    assert (parsed.stop_split_at, parsed.motion.static_warmup_steps) == (None, None)
    assert (used.stop_split_at, used.motion.static_warmup_steps) == (15000, 3000)


@pytest.mark.parametrize("flag", sorted(REJECTED))
def test_unsupported_splatfacto_options_are_rejected_at_model_setup(flag, dnerf_scene, monkeypatch):
    from nerfstudio.data.scene_box import SceneBox

    monkeypatch.setenv("DYNSPLAT_DEBUG", "1")
    config = parse("dynsplat-4dgs", flag, *REJECTED[flag], "dynsplat-dnerf", "--data", str(dnerf_scene))
    with pytest.raises(DynsplatConfigError, match=re.escape(flag if flag != "--prompt" else "--pipeline.model.prompt")):
        config.pipeline.model.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=2,
                                    metadata={"num_frames": 2})  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error gsplat gives for CPU tensors")
def test_rasterizer_backend_reaches_rasterize(dnerf_scene, tmp_path):
    """On CPU, 'gsplat' must reach rasterize() (which refuses CPU tensors); 'auto' renders with the torch backend."""
    with pytest.raises(ValueError, match="CUDA"):
        build(["dynsplat-4dgs", "--pipeline.model.rasterizer-backend", "gsplat"], dnerf_scene, tmp_path)
