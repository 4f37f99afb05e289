"""Every method's motion model is selectable on ns-train's command line (issue 12 §1; dynsplat_ns/motion/choice.py):
``--pipeline.model.motion NAME`` and then that model's ``--pipeline.model.motion.<field>`` flags, while the method's
own motion flags work as before and the dataparser subcommand stays last."""

from __future__ import annotations

import pytest
import yaml
from cli_helpers import cli_flags, parse
from flag_build import clear_writers

from dynsplat_ns.motion.hexplane import HexPlaneMotionConfig
from dynsplat_ns.motion.marbles import MarblesMotionConfig
from dynsplat_ns.motion.som import ShapeOfMotionConfig
from dynsplat_ns.motion.static import StaticMotionConfig

DATA = ("dynsplat-dnerf", "--data", "scene")


def motion(*args: str):
    return parse(*args, *DATA).pipeline.model.motion


def test_choice_with_its_own_flags():
    got = motion("dynsplat-deblur", "--pipeline.model.motion", "hexplane", "--pipeline.model.motion.grid-lr", "0.02")
    assert type(got) is HexPlaneMotionConfig and got.grid_lr == 0.02
    # flags before the choice work too; the shared warm-up flag goes to the chosen model
    got = motion("dynsplat-4dgs", "--pipeline.model.motion.static-warmup-steps", "5", "--pipeline.model.motion", "som",
                 "--pipeline.model.motion.bases-lr", "0.004")  # fmt: skip
    assert type(got) is ShapeOfMotionConfig and (got.bases_lr, got.static_warmup_steps) == (0.004, 5)


def test_default_argv_keeps_the_methods_model():
    assert motion("dynsplat-deblur") == ShapeOfMotionConfig()
    assert motion("dynsplat-4dgs") == HexPlaneMotionConfig()
    assert motion("dynsplat-marbles", "--pipeline.model.motion.offsets-lr", "0.001") == MarblesMotionConfig(
        offsets_lr=0.001
    )
    assert motion("dynsplat-som", "--pipeline.model.motion", "None", "--pipeline.model.motion.num-bases", "4") == (
        ShapeOfMotionConfig(num_bases=4)
    )


def test_switching_takes_the_chosen_models_defaults():
    # dynsplat-som's warm-up default (0) is not carried over to hexplane, whose default is None ("auto")
    assert motion("dynsplat-som", "--pipeline.model.motion", "hexplane") == HexPlaneMotionConfig()
    assert motion("dynsplat-4dgs", "--pipeline.model.motion", "static") == StaticMotionConfig()


def test_flag_of_another_model_is_an_error(capsys):
    with pytest.raises(SystemExit):
        motion("dynsplat-som", "--pipeline.model.motion", "hexplane", "--pipeline.model.motion.bases-lr", "0.1")
    assert "bases-lr is a flag of the som motion model" in capsys.readouterr().err.replace("\n", " ")


def test_help_lists_the_choice_and_every_models_flags():
    flags = cli_flags("dynsplat-som")
    assert {"--pipeline.model.motion", "--pipeline.model.motion.bases-lr", "--pipeline.model.motion.grid-lr",
            "--pipeline.model.motion.offsets-lr"} <= flags  # fmt: skip


def test_train_with_a_chosen_model_and_reload_its_config(dnerf_scene, tmp_path):
    """A 3-step ns-train run of dynsplat-som switched to marbles; the saved config.yml loads with that model."""
    from nerfstudio.scripts.train import main

    clear_writers()
    config = parse("dynsplat-som", "--pipeline.model.motion", "marbles", "--pipeline.model.motion.offsets-lr", "0.002",
                   "--max-num-iterations", "3", "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "1000",
                   "--output-dir", str(tmp_path), "--timestamp", "run", "--machine.device-type", "cpu",
                   "--vis", "tensorboard", "--pipeline.model.rasterizer-backend", "torch",
                   "dynsplat-dnerf", "--data", str(dnerf_scene))  # fmt: skip
    try:
        main(config)
    finally:
        clear_writers()
    (saved,) = tmp_path.glob("*/dynsplat-som/run/config.yml")
    loaded = yaml.load(saved.read_text(), Loader=yaml.Loader)
    assert loaded.pipeline.model.motion == MarblesMotionConfig(offsets_lr=0.002)
    assert list(saved.parent.glob("nerfstudio_models/*.ckpt"))


def test_a_registered_plugin_model_keeps_its_flags_and_is_selectable(monkeypatch):
    """A method of another package with its own motion model (README "How to add a motion model", step 7)."""
    import dataclasses

    import tyro
    from nerfstudio.configs import method_configs

    from dynsplat_ns.method_configs.common import dynsplat_trainer_config
    from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
    from dynsplat_ns.motion.base import MotionModelConfig

    @dataclasses.dataclass
    class VelocityMotionConfig(MotionModelConfig):
        velocity_lr: float = 1e-3
        """Learning rate."""

    method = dynsplat_trainer_config("my-velocity", DynamicSplatModelConfig(motion=VelocityMotionConfig()))
    monkeypatch.setitem(method_configs.all_methods, "my-velocity", method)
    som = method_configs.all_methods["dynsplat-som"]
    union = tyro.extras.subcommand_type_from_defaults({"my-velocity": method, "dynsplat-som": som})

    def run(*args: str):
        return tyro.cli(tyro.conf.FlagConversionOff[union], args=[*args, *DATA]).pipeline.model.motion

    assert run("my-velocity", "--pipeline.model.motion.velocity-lr", "0.5") == VelocityMotionConfig(velocity_lr=0.5)
    assert run("my-velocity", "--pipeline.model.motion", "hexplane") == HexPlaneMotionConfig()
    assert run("dynsplat-som", "--pipeline.model.motion", "velocity") == VelocityMotionConfig()
