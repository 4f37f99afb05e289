"""The 60-line custom blur type in examples/ plugs into DeblurSplatModel through the blur-component interface and
trains: its per-image weights learn the lens blur of the training images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deblur_helpers import COMMON, build, load_train, optimizer_configs, som, train_camera
from quick_train import train_steps
from script_loader import load_script

#: Weight w of the lens kernel [w, 1 - 2w, w] that blurred the training images.
W_TRUE = 0.15
STEPS = 36  # three passes over the 12 training images


def _load_example():
    """examples/custom_blur.py loaded by path, as a user would copy it (examples/ is not on sys.path)."""
    return load_script("examples/custom_blur.py")


example = _load_example()


def lens_blur(image: torch.Tensor, w: float) -> torch.Tensor:
    """``image`` [H, W, 3] blurred by [w, 1 - 2w, w] along x, then along y (edges replicated)."""
    k = torch.tensor([w, 1 - 2 * w, w])
    x = image.permute(2, 0, 1)[:, None]  # [3, 1, H, W]
    x = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), k.reshape(1, 1, 1, 3))
    x = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), k.reshape(1, 1, 3, 1))
    return x[:, 0].permute(1, 2, 0)


def test_custom_blur_example_learns_the_lens_blur_of_the_training_images(dnerf_scene):
    outputs, images = load_train(dnerf_scene)
    config = example.LensDeblurModelConfig(motion=som(), num_virtual_views=1, lens_lr=0.05, **COMMON)
    model, _ = build(outputs, config)
    assert list(model.blur_components()) == ["trajectory", "exposure", "lens"]  # after the built-in ones
    assert model.per_image_state_keys()["lens.weights"] == 0 and model.get_param_groups()["lens_blur"]
    assert optimizer_configs(config, STEPS)["lens_blur"]["optimizer"].lr == 0.05
    cameras = [train_camera(outputs, i) for i in range(len(images))]
    model.eval()
    with torch.no_grad():  # targets: the model's own sharp renders through a lens (all the scene cannot explain)
        sharp = [model.get_outputs(camera)["rgb"] for camera in cameras]
    targets = [lens_blur(image, W_TRUE) for image in sharp]
    torch.testing.assert_close(model.blurred_outputs(cameras[3])["rgb"], sharp[3], rtol=0, atol=1e-6)  # identity

    losses = train_steps(model, lambda step: (cameras[step % 12], {"image": targets[step % 12]}), STEPS,
                         optimizer_configs(config, STEPS))  # fmt: skip
    weights = model.lens.weights.detach()
    assert sum(losses[-5:]) < sum(losses[:5])
    assert 0.11 < float(weights.mean()) < 0.19 and float(weights.min()) > 0.05, weights  # each near the true 0.15
    with torch.no_grad():  # training predicts through the image's lens; evaluation renders sharp
        sharp3 = model.get_outputs(cameras[3])["rgb"]
        blurred3 = model.blurred_outputs(cameras[3])["rgb"]
    torch.testing.assert_close(blurred3, lens_blur(sharp3, float(weights[3])), rtol=0, atol=1e-5)
    assert float((blurred3 - sharp3).abs().max()) > 1e-3  # (the renders of 32 px spheres are smooth)
