"""Step schedules follow --max-num-iterations: "auto" (None) values are resolved when the run starts, explicit values
are kept, and config.yml (what ns-eval / ns-render / --load-config read back) keeps "auto"."""

from __future__ import annotations

import yaml

from dynsplat_ns.training.trainer import resolve_run_schedules


def _parse(*args: str):
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    return tyro.cli(AnnotatedBaseConfigUnion, args=["dynsplat-4dgs", *args, "dynsplat-dnerf", "--data", "x"])


def _summary(config) -> dict:
    """The values a run uses: scheduler horizons, densification stop, 4DGS warm-up, motion learning rates."""
    used, _ = resolve_run_schedules(config)
    return {
        "sched": {k: g["scheduler"].max_steps for k, g in used.optimizers.items() if g.get("scheduler")},
        "stop_split_at": used.pipeline.model.stop_split_at,
        "warmup": used.pipeline.model.motion.static_warmup_steps,
        "grid_lr": used.optimizers["hexplane_grid"]["optimizer"].lr,
    }


def _parsed_and_loaded(*args: str) -> dict:
    config = _parse(*args)
    loaded = yaml.load(yaml.dump(config), Loader=yaml.Loader)  # as config.yml is written and read back
    return {"parsed": _summary(config), "loaded": _summary(loaded), "config": config}


def test_schedules_fit_max_iterations_and_explicit_values_are_kept():
    default = _parsed_and_loaded()
    config = default["config"]
    assert config.pipeline.model.stop_split_at is None and config.pipeline.model.motion.static_warmup_steps is None
    assert "hexplane_grid" not in config.optimizers  # built from --pipeline.model.motion.grid-lr when the run starts
    assert set(default["parsed"]["sched"].values()) == {20000} and default["parsed"]["stop_split_at"] == 15000
    assert default["parsed"]["warmup"] == 3000

    short = _parsed_and_loaded(
        "--max-num-iterations", "3000", "--optimizers.camera-opt.scheduler.max-steps", "1234",
        "--pipeline.model.motion.grid-lr", "0.05",
    )  # fmt: skip
    for which in ("parsed", "loaded"):
        sched = short[which]["sched"]
        assert sched["camera_opt"] == 1234, "an explicit value is kept"
        assert sched["means"] == sched["hexplane_grid"] == sched["bilateral_grid"] == 3000
        assert short[which]["stop_split_at"] == 2250  # 75 % of the run, as 15000 of 20000
        assert short[which]["warmup"] == 450  # 15 %, as 3000 of 20000
        assert short[which]["grid_lr"] == 0.05

    # an explicit value equal to the 20000-step default is kept, not rescaled
    explicit = _parsed_and_loaded("--max-num-iterations", "3000", "--pipeline.model.stop-split-at", "15000",
                                  "--pipeline.model.motion.static-warmup-steps", "3000")["parsed"]  # fmt: skip
    assert (explicit["stop_split_at"], explicit["warmup"]) == (15000, 3000)

    off = _parsed_and_loaded("--max-num-iterations", "3000", "--fit-schedules", "False")["parsed"]
    assert set(off["sched"].values()) == {20000} and off["stop_split_at"] == 15000 and off["warmup"] == 3000


def test_motion_groups_in_optimizers_are_rejected():
    import dataclasses

    import pytest
    from nerfstudio.engine.optimizers import AdamOptimizerConfig

    from dynsplat_ns.errors import DynsplatConfigError

    config = _parse()
    stray = {"hexplane_grid": {"optimizer": AdamOptimizerConfig(lr=1.0), "scheduler": None}}
    config = dataclasses.replace(config, optimizers={**config.optimizers, **stray})
    with pytest.raises(DynsplatConfigError, match="--pipeline.model.motion.grid-lr"):
        resolve_run_schedules(config)
    used, _ = resolve_run_schedules(resolve_run_schedules(_parse())[0])  # resolving twice changes nothing
    assert used.optimizers["hexplane_grid"]["optimizer"].lr == 1.6e-2
