"""dynsplat-deblur models defocus by itself where the data says the training images are defocused (D2RF bokeh)."""

from __future__ import annotations

import pytest
from deblur_helpers import build, deblur_config

from dynsplat_ns.dataparsers.d2rf import D2RFDataParserConfig
from dynsplat_ns.deblur.defocus import DefocusBlur
from dynsplat_ns.deblur.model import defocus_choice


def outputs(scene, image_source: str):
    return D2RFDataParserConfig(data=scene, image_source=image_source).setup().get_dataparser_outputs("train")


@pytest.mark.parametrize(
    ("image_source", "flag", "on"),
    [("bokeh", None, True), ("sharp", None, False), ("half-res", None, False), ("bokeh", False, False),
     ("sharp", True, True)],
)  # fmt: skip
def test_defocus_follows_the_image_source_unless_a_flag_says(d2rf_scene, image_source, flag, on):
    model, _ = build(outputs(d2rf_scene, image_source), deblur_config(defocus=flag))
    assert isinstance(model.defocus, DefocusBlur) is on
    assert ("defocus" in model.blur_components()) is on
    assert model.defocus_choice.startswith(f"defocus {'on' if on else 'off'}")
    if flag is None and on:
        assert "images_bokeh" in model.defocus_choice  # the log says why
    if flag is not None:
        assert f"--pipeline.model.defocus {flag}" in model.defocus_choice


def test_auto_keeps_the_defocus_optimizer_groups_available():
    groups = deblur_config(defocus=None).extra_optimizer_configs(100)
    assert set(deblur_config(defocus=True).extra_optimizer_configs(100)) == set(groups)
    assert set(deblur_config(defocus=False).extra_optimizer_configs(100)) < set(groups)


def test_other_dataparsers_leave_it_off():
    assert defocus_choice(None, {}).startswith("defocus off")
    assert defocus_choice(None, {"training_blur": {}}).startswith("defocus off")
