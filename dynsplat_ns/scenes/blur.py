"""Blur operators for the synthetic generators: camera shake, object motion blur and depth-dependent defocus.

A blurred view is the mean of ``S`` *sub-exposure* renders (:func:`render_exposure`). Sub-exposure ``i`` sits at
``s = i / (S - 1)`` of the exposure and is rendered

* ``shake``: from the nominal pose moved by a camera-frame SE(3) offset that runs linearly (rotation vector and
  translation) from ``start`` to ``end = -start`` (:func:`random_shake`), so mid-exposure is the nominal pose;
* ``motion``: at time ``t + (s - 0.5) * exposure * frame_interval`` (the camera fixed unless ``shake`` too), so moving
  objects smear and static ones stay sharp;
* ``defocus``: through :func:`defocus_layered`, a per-pixel disc blur of radius ``aperture * |1/z - 1/focus|``
  pixels (``z`` the rendered depth along the viewing axis), composited back to front in thin depth layers.

Kinds combine (``"shake,motion"``): the sub-exposures then share ``s`` for the pose and the time, and ``defocus``
blurs each sub-exposure by its own depth before the mean. Magnitudes are in pixels at the rendered size
(:class:`BlurSettings`), so the defaults give a blur of a few pixels at any resolution. :func:`gradient_energy`
measures sharpness (tests and benchmarks compare it between blurred and sharp views).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Blur kinds, in the order they are listed in ``blur_gt.json``.
BLUR_KINDS = ("shake", "motion", "defocus")


@dataclass(frozen=True)
class BlurSettings:
    """Magnitudes of the synthetic blurs (the kinds themselves are chosen separately, see :func:`parse_blur`)."""

    sub_exposures: int = 9
    """Renders averaged per blurred view (``shake`` / ``motion``; ``defocus`` alone needs one)."""
    shake_rotation_px: float = 4.0
    """Camera rotation between exposure start and end, as the image shift it causes at the image centre, in pixels
    (angle = px / focal: ~4° at 64 px wide, ~0.5° at 512 px). Each view draws 0.6-1× of it about a random axis."""
    shake_translation_px: float = 2.0
    """Camera translation between exposure start and end, as the parallax it causes at the scene centre, in pixels
    (translation = px · depth / focal: ~3 % of the scene depth at 64 px wide). Each view draws 0.6-1× of it."""
    exposure: float = 1.0
    """Exposure window of ``motion`` as a fraction of the frame interval (1.0: ± half an interval around the frame
    time)."""
    aperture: float = 40.0
    """Circle-of-confusion scale in pixel·world units: radius = aperture · |1/z - 1/focus| pixels (40: ~3 px for the
    depth range of the default scene)."""
    max_coc_px: float = 8.0
    """Largest circle-of-confusion radius in pixels (the background at infinity is clipped to it)."""
    coc_step_px: float = 0.5
    """Width of a depth layer of :func:`defocus_layered`, in pixels of circle-of-confusion radius."""


def parse_blur(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Blur kinds from ``"none"``, ``"shake,motion"``, ``["shake", "defocus"]`` or None (= none), in
    :data:`BLUR_KINDS` order.

    Raises:
        ValueError: On an unknown kind, or ``none`` combined with another kind.
    """
    items = [spec] if spec is None or isinstance(spec, str) else list(spec)
    kinds = {k.strip().lower() for item in items if item is not None for k in str(item).split(",") if k.strip()}
    if "none" in kinds:
        if len(kinds) > 1:
            raise ValueError(f"blur {spec!r}: 'none' cannot be combined with other kinds")
        kinds = set()
    unknown = sorted(kinds - set(BLUR_KINDS))
    if unknown:
        raise ValueError(f"blur {spec!r}: unknown kind(s) {unknown}; choose from none, {', '.join(BLUR_KINDS)}")
    return tuple(k for k in BLUR_KINDS if k in kinds)


# ----------------------------------------------------------------------------------------------------------------------
# Camera shake
# ----------------------------------------------------------------------------------------------------------------------


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation of a rotation vector (axis · angle in radians; Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def offset_pose(c2w: np.ndarray, rotvec: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``c2w @ [R(rotvec) | translation]``: the camera moved by an offset given in its own axes."""
    offset = np.eye(4)
    offset[:3, :3], offset[:3, 3] = rotation_matrix(rotvec), np.asarray(translation, dtype=np.float64)
    return np.asarray(c2w, dtype=np.float64) @ offset


def random_shake(
    rng: np.random.Generator, focal: float, scene_depth: float, settings: BlurSettings
) -> dict[str, np.ndarray]:
    """Random shake path of one exposure: ``start`` / ``end`` offsets (``*_rotvec`` in radians, ``*_translation`` in
    world units, in the nominal camera's axes), symmetric about the nominal pose (``end = -start``).

    Args:
        rng: Random generator.
        focal: Focal length in pixels.
        scene_depth: Distance from the camera to the scene centre (scales the translation).
        settings: Magnitudes (``shake_rotation_px``, ``shake_translation_px``).
    """
    axis = rng.normal(size=3) * np.array([1.0, 1.0, 0.25])  # mostly pitch / yaw, a little roll
    trans_dir = rng.normal(size=3) * np.array([1.0, 1.0, 0.3])  # mostly sideways
    angle = rng.uniform(0.6, 1.0) * settings.shake_rotation_px / focal
    length = rng.uniform(0.6, 1.0) * settings.shake_translation_px * scene_depth / focal
    rotvec = angle * axis / np.linalg.norm(axis)
    translation = length * trans_dir / np.linalg.norm(trans_dir)
    return {
        "start_rotvec": -0.5 * rotvec, "end_rotvec": 0.5 * rotvec,
        "start_translation": -0.5 * translation, "end_translation": 0.5 * translation,
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# Defocus
# ----------------------------------------------------------------------------------------------------------------------


def depth_from_distance(distance: np.ndarray, focal: float) -> np.ndarray:
    """Depth along the viewing axis ``[H, W]`` of a centred pinhole from the distance along each pixel's ray (inf
    where nothing is hit)."""
    height, width = distance.shape
    x = (np.arange(width) + 0.5 - 0.5 * width) / focal
    y = (np.arange(height) + 0.5 - 0.5 * height) / focal
    norm = np.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2)
    depth = np.asarray(distance, dtype=np.float64) / norm
    return np.where(np.isfinite(depth) & (depth > 0), depth, np.inf)


def coc_radius(depth: np.ndarray, focus: float, aperture: float, max_coc_px: float = np.inf) -> np.ndarray:
    """Circle-of-confusion radius in pixels, ``aperture · |1/z - 1/focus|`` (``z`` = inf: the background)."""
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(depth), 1.0 / np.asarray(depth, dtype=np.float64), 0.0)
    return np.minimum(aperture * np.abs(inv - 1.0 / focus), max_coc_px)


def disc_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disc ``[2R+1, 2R+1]`` of a (sub-)pixel radius."""
    half = int(np.ceil(radius + 0.5))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0)
    return kernel / kernel.sum()


def disc_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Convolve ``[H, W, C]`` with a disc of ``radius`` pixels (zero outside the image; FFT)."""
    if radius < 0.25:
        return image
    kernel = disc_kernel(radius)
    half = kernel.shape[0] // 2
    height, width = image.shape[:2]
    shape = (height + 2 * half, width + 2 * half)
    spectrum = np.fft.rfft2(image, s=shape, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[..., None]
    full = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    return full[half : half + height, half : half + width]


def defocus_layered(
    rgb: np.ndarray, depth: np.ndarray, focus: float, aperture: float, max_coc_px: float = 8.0, step_px: float = 0.5
) -> np.ndarray:
    """Depth-dependent defocus: thin layers of signed circle of confusion, each disc-blurred by its radius and
    composited back to front (premultiplied, renormalised by the accumulated coverage).

    Args:
        rgb: ``[H, W, 3]`` float image.
        depth: ``[H, W]`` depth along the viewing axis (inf = background, the farthest layer).
        focus: Focus distance (depth that stays sharp).
        aperture: Circle-of-confusion scale: radius = aperture · |1/z - 1/focus| pixels.
        max_coc_px: Largest radius.
        step_px: Layer thickness in pixels of radius (pixels within ±step/2 of the focus stay untouched).

    Returns:
        ``[H, W, 3]`` float image.
    """
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(depth), 1.0 / depth, 0.0)
    signed = np.clip(aperture * (inv - 1.0 / focus), -max_coc_px, max_coc_px)  # < 0: behind the focus plane
    layer = np.round(signed / step_px).astype(np.int64)
    layer[~np.isfinite(depth)] = layer.min() - 1  # the background is behind everything
    acc = np.zeros(rgb.shape[:2] + (4,))
    for index in np.unique(layer):  # ascending = far to near
        mask = (layer == index).astype(np.float64)[..., None]
        radius = float(np.abs(signed[layer == index]).mean())
        radius = 0.0 if radius < 0.5 * step_px else radius
        blurred = disc_blur(np.concatenate([rgb * mask, mask], axis=-1), radius)
        acc = blurred + (1.0 - blurred[..., 3:4]) * acc
    return acc[..., :3] / np.maximum(acc[..., 3:4], 1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Exposure
# ----------------------------------------------------------------------------------------------------------------------


def subexposure_offsets(count: int) -> np.ndarray:
    """Positions ``s`` in [0, 1] of ``count`` sub-exposures (start and end included; one sits mid-exposure)."""
    return np.linspace(0.0, 1.0, count) if count > 1 else np.array([0.5])


def render_exposure(
    render: Callable[[np.ndarray, float], dict],
    c2w: np.ndarray,
    t: float,
    focal: float,
    kinds: Sequence[str],
    settings: BlurSettings,
    shake: dict[str, np.ndarray] | None = None,
    window: tuple[float, float] | None = None,
    focus: float | None = None,
) -> np.ndarray:
    """Mean of the sub-exposure renders of one blurred view (float ``[H, W, 3]`` in [0, 1]).

    Args:
        render: ``render(c2w, t)`` → dict with ``rgb`` (uint8 or float ``[H, W, 3]``) and ``distance`` ``[H, W]``
            (along the ray; NaN where nothing is hit).
        c2w: Nominal OpenGL camera-to-world.
        t: Frame time.
        focal: Focal length in pixels (for the depth of ``defocus``).
        kinds: Active blur kinds (see :func:`parse_blur`).
        settings: Magnitudes.
        shake: ``random_shake`` offsets (needed for ``shake``).
        window: Exposure window ``(t0, t1)`` (needed for ``motion``).
        focus: Focus distance (needed for ``defocus``).
    """
    moving = "shake" in kinds or "motion" in kinds
    total = None
    offsets = subexposure_offsets(settings.sub_exposures if moving else 1)
    for s in offsets:
        pose, time = c2w, t
        if "shake" in kinds:
            assert shake is not None
            rotvec = (1.0 - s) * shake["start_rotvec"] + s * shake["end_rotvec"]
            translation = (1.0 - s) * shake["start_translation"] + s * shake["end_translation"]
            pose = offset_pose(c2w, rotvec, translation)
        if "motion" in kinds:
            assert window is not None
            time = (1.0 - s) * window[0] + s * window[1]
        out = render(pose, time)
        rgb = np.asarray(out["rgb"], dtype=np.float64)
        rgb = rgb / 255.0 if np.asarray(out["rgb"]).dtype == np.uint8 else rgb
        if "defocus" in kinds:
            assert focus is not None
            depth = depth_from_distance(out["distance"], focal)
            rgb = defocus_layered(rgb, depth, focus, settings.aperture, settings.max_coc_px, settings.coc_step_px)
        total = rgb if total is None else total + rgb
    return total / len(offsets)


def gradient_energy(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared finite-difference gradient of the grey image (a sharpness measure; blur lowers it).

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` (uint8 or float; uint8 is scaled to [0, 1]).
        mask: Optional ``[H, W]`` bool: average only over pixels where it is set.
    """
    arr = np.asarray(image)
    grey = arr.astype(np.float64) / (255.0 if arr.dtype == np.uint8 else 1.0)
    grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :-1] = np.diff(grey, axis=1)
    gy[:-1, :] = np.diff(grey, axis=0)
    energy = gx**2 + gy**2
    return float(energy[mask].mean() if mask is not None else energy.mean())
