"""Shared helpers for model tests: parse a generated split, build a small CPU model."""

from __future__ import annotations

from nerfstudio.data.datasets.base_dataset import InputDataset

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion import HexPlaneMotionConfig, MotionModelConfig


def load_split(scene, split: str):
    """Dataparser outputs and float RGB images of one split."""
    outputs = DNeRFDataParserConfig(data=scene).setup().get_dataparser_outputs(split)
    dataset = InputDataset(outputs)
    return outputs, [dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]


def make_model(outputs, motion: MotionModelConfig, **overrides):
    """A small CPU model over a parsed split."""
    kw = dict(motion=motion, sh_degree=1, warmup_length=1000, rasterizer_backend="torch")
    kw.update(overrides)
    cfg = DynamicSplatModelConfig(**kw)
    meta = outputs.metadata
    return cfg.setup(
        scene_box=outputs.scene_box,
        num_train_data=len(outputs.image_filenames),
        metadata=meta,
        device="cpu",
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )


def small_hexplane(**kw) -> HexPlaneMotionConfig:
    return HexPlaneMotionConfig(resolution=(8, 8, 8, 6), feature_dim=8, net_width=32, **kw)


def model_from_manager(config: DynamicSplatModelConfig, manager):
    """``config``'s model set up as the pipeline does, from a set-up datamanager: its scene box, training metadata
    (with the motion masks it read or derives) and the dataparser's seed points."""
    meta = manager.train_dataparser_outputs.metadata
    return config.setup(
        scene_box=manager.train_dataset.scene_box,
        num_train_data=len(manager.train_dataset),
        device="cpu",
        metadata=manager.train_dataset.metadata,
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )
