"""Shared helpers of the deblur tests: a tiny deblur model over a generated D-NeRF scene, training cameras with their
image index, and one training step."""

from __future__ import annotations

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.engine.optimizers import Optimizers

from dynsplat_ns.dataparsers.dnerf import DNeRFDataParserConfig
from dynsplat_ns.deblur.model import DeblurSplatModelConfig
from dynsplat_ns.method_configs.common import gaussian_optimizers
from dynsplat_ns.models.dynamic_splat import DynamicSplatModelConfig
from dynsplat_ns.motion import ShapeOfMotionConfig

#: Settings shared by every model of these tests (small and deterministic: white background, torch rasterizer).
COMMON = dict(sh_degree=1, warmup_length=1000, rasterizer_backend="torch", background_color="white")


def load_train(scene):
    """Parsed train split and its float RGB images."""
    outputs = DNeRFDataParserConfig(data=scene).setup().get_dataparser_outputs("train")
    dataset = InputDataset(outputs)
    return outputs, [dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]


def som(**kw) -> ShapeOfMotionConfig:
    return ShapeOfMotionConfig(num_bases=4, **kw)


def build(outputs, config: DynamicSplatModelConfig, steps: int = 10, step: int = 1):
    """``config``'s model over ``outputs`` (CPU, training mode), with optimizers attached at ``step``."""
    torch.manual_seed(0)
    meta = outputs.metadata
    model = config.setup(
        scene_box=outputs.scene_box,
        num_train_data=len(outputs.image_filenames),
        metadata=meta,
        device="cpu",
        seed_points=(meta["points3D_xyz"], meta["points3D_rgb"]),
    )
    model.train()
    optimizers = Optimizers(optimizer_configs(config, steps), model.get_param_groups())
    model.step_cb(optimizers, step)
    return model, optimizers


def optimizer_configs(config: DynamicSplatModelConfig, steps: int) -> dict:
    """What the trainer builds at run start: splatfacto's groups, the motion model's and the model's own."""
    groups = {**gaussian_optimizers(steps), **config.motion.optimizer_configs(steps)}
    if hasattr(config, "extra_optimizer_configs"):
        groups.update(config.extra_optimizer_configs(steps))
    return groups


def deblur_config(**kw) -> DeblurSplatModelConfig:
    return DeblurSplatModelConfig(**{"motion": som(), **COMMON, **kw})


def train_camera(outputs, index: int) -> Cameras:
    """Training camera ``index`` as the datamanager hands it to the model (``metadata["cam_idx"]``)."""
    camera = outputs.cameras[index : index + 1]
    camera.metadata = {"cam_idx": index}
    return camera


def train_step(model, outputs, images, index: int):
    """One training forward/backward with the model's full loss; statistics accumulated (step 1: no refinement)."""
    camera = train_camera(outputs, index)
    out = model(camera)
    batch = {"image": images[index]}
    loss = sum(model.get_loss_dict(out, batch, model.get_metrics_dict(out, batch)).values())
    loss.backward()
    model.step_post_backward(1)
    return out
