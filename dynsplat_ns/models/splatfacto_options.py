"""Which of splatfacto's options (inherited by ``DynamicSplatModelConfig``) dynsplat models honour.

nerfstudio 1.1.5's ``SplatfactoModelConfig`` (and its base ``ModelConfig``) fields fall in three groups:

* :data:`SUPPORTED`: they do what splatfacto's docstring says (the value says where).
* :data:`UNSUPPORTED`: features we do not implement. The config holds the one value that describes what the model
  does; any other value is rejected by :func:`check_splatfacto_options` when the model is set up, with an error
  naming the flag (instead of being accepted and ignored).
* :data:`NOT_APPLICABLE`: options of ray-marching NeRF models that splatfacto ignores too. ``DynamicSplatModelConfig``
  hides them from the command line (``tyro.conf.Suppress``), so ``ns-train`` rejects them as unknown flags.
"""

from __future__ import annotations

from typing import Any

from dynsplat_ns.errors import DynsplatConfigError

#: Inherited options that work, and where they take effect.
SUPPORTED: dict[str, str] = {
    "warmup_length": "densification strategy (refine_start_iter)",
    "refine_every": "densification strategy (refine_every, reset and pause periods)",
    "resolution_schedule": "training-resolution schedule (splatfacto's _get_downscale_factor)",
    "background_color": "background (DynamicSplatModel, with 'auto')",
    "num_downscales": "training-resolution schedule",
    "cull_alpha_thresh": "densification strategy (prune_opa)",
    "cull_scale_thresh": "densification strategy (prune_scale3d)",
    "reset_alpha_every": "densification strategy (reset_every = reset_alpha_every * refine_every)",
    "densify_grad_thresh": "densification strategy (grow_grad2d)",
    "use_absgrad": "densification strategy (absgrad) and rasterize(absgrad=...)",
    "densify_size_thresh": "densification strategy (grow_scale3d)",
    "sh_degree_interval": "spherical-harmonics degree schedule",
    "cull_screen_size": "densification strategy (prune_scale2d)",
    "split_screen_size": "densification strategy (grow_scale2d)",
    "stop_screen_size_at": "densification strategy (refine_scale2d_stop_iter)",
    "random_init": "initial points (uniform in the scene box instead of the dataparser's seed points)",
    "num_random": "initial points",
    "ssim_lambda": "photometric loss (splatfacto's get_loss_dict)",
    "stop_split_at": "densification strategy (refine_stop_iter; None = 75 % of the run)",
    "sh_degree": "colours",
    "use_scale_regularization": "loss (splatfacto's PhysGaussian scale regulariser)",
    "max_gauss_ratio": "loss (with use_scale_regularization)",
    "output_depth_during_training": "render mode (RGB+ED while training)",
    "rasterize_mode": "rasterize(rasterize_mode=...): 'classic' or 'antialiased', both backends",
    "camera_optimizer": "camera pose refinement (modes off, SO3xR3, SE3; 'camera_opt' optimizer group)",
    "use_bilateral_grid": "per-image bilateral grids ('bilateral_grid' optimizer group)",
    "grid_shape": "bilateral grid shape",
}

#: Inherited options we do not implement: the only accepted value, and why.
UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "n_split_samples": (2, "gsplat's DefaultStrategy always splits into 2; splatfacto 1.1.5 ignores it too"),
    "random_scale": (None, "random points fill the scene box; --pipeline.model.num-random sets their count"),
    "color_corrected_metrics": (False, "dynsplat's evaluation metrics are not colour-corrected"),
    "prompt": (None, "dynsplat models take no text prompt (--prompt)"),
}

#: ModelConfig options for ray-marching models (no rays here, in splatfacto neither); hidden from the command line.
NOT_APPLICABLE: tuple[str, ...] = ("enable_collider", "collider_params", "loss_coefficients", "eval_num_rays_per_chunk")


def flag(name: str) -> str:
    """The ``ns-train`` flag of a model option."""
    return "--pipeline.model." + name.replace("_", "-")


def check_splatfacto_options(config: Any) -> None:
    """Rejects unsupported splatfacto options that are set to anything but the value we implement.

    Args:
        config: a ``DynamicSplatModelConfig``.

    Raises:
        DynsplatConfigError: naming every offending flag, its value, and why it is not supported.
    """
    problems = []
    for name, (accepted, why) in UNSUPPORTED.items():
        value = getattr(config, name, accepted)
        if value != accepted:
            problems.append(f"{flag(name)} {value!r} is not supported ({why}; only {accepted!r})")
    if problems:
        raise DynsplatConfigError("; ".join(problems))
