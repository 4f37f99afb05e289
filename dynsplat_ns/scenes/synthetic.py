"""A tiny numpy ray-caster for a synthetic dynamic scene (moving spheres over a static box).

The scene lives in D-NeRF's (Blender's) world frame: z is up, everything fits inside the ``[-1.5, 1.5]^3`` box
that D-NeRF dataparsers use as their scene box, and cameras sit on a sphere of radius ~4 looking at the origin.
Cameras use the OpenGL convention (x right, y up, looking down -z), like D-NeRF's ``transform_matrix``.

Everything here is analytic, so tests can ask where a sphere is at time ``t`` (:meth:`Scene.sphere_centers`) and
project it into a camera (:func:`project_points`) to check rendered pixels.

Example:
    >>> scene = default_scene()
    >>> c2w = look_at(np.array([0.0, -4.0, 2.0]))
    >>> rgba = render_rgba(scene, c2w, t=0.25, width=64, height=64, focal=focal_from_angle(0.69, 64))
    >>> rgba.shape
    (64, 64, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .textures import slab_checker, sphere_checker

#: D-NeRF's Blender scenes use this horizontal field of view (radians).
DNERF_CAMERA_ANGLE_X = 0.6911112070083618


@dataclass(frozen=True)
class Sphere:
    """A coloured sphere whose centre moves smoothly with time ``t`` in [0, 1].

    The centre is ``base + a0 * cos(2π f t + φ) + a1 * sin(2π f t + φ)`` where ``a0``/``a1`` are amplitude vectors,
    so a circle (``a0 ⟂ a1``, equal lengths), a line oscillation (``a1 = 0``) or an ellipse are all expressible.
    """

    base: tuple[float, float, float]
    """Centre of the motion (and the centre itself when motion is off)."""
    radius: float
    """Sphere radius in world units."""
    color: tuple[float, float, float]
    """Albedo, RGB in [0, 1]."""
    amp_cos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Amplitude vector multiplying ``cos(2π f t + φ)``."""
    amp_sin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Amplitude vector multiplying ``sin(2π f t + φ)``."""
    frequency: float = 1.0
    """Number of periods over t ∈ [0, 1]."""
    phase: float = 0.0
    """Phase φ in radians."""
    bounce: bool = False
    """Use ``|sin(2π f t + φ)|`` for the ``amp_sin`` term: a ball bouncing off the floor (``amp_sin`` pointing up),
    ``2 f`` bounces per clip."""

    def center(self, t: float | np.ndarray, motion: bool = True) -> np.ndarray:
        """Centre at time(s) ``t``.

        Args:
            t: A scalar time or an array of times, shape ``[T]``.
            motion: If False, the sphere stays at ``base``.

        Returns:
            ``[3]`` for a scalar ``t``, else ``[T, 3]``.
        """
        t_arr = np.asarray(t, dtype=np.float64)
        base = np.asarray(self.base, dtype=np.float64)
        if not motion:
            return np.broadcast_to(base, t_arr.shape + (3,)).copy()
        angle = 2.0 * math.pi * self.frequency * t_arr[..., None] + self.phase
        sin = np.abs(np.sin(angle)) if self.bounce else np.sin(angle)
        return base + np.cos(angle) * np.asarray(self.amp_cos) + sin * np.asarray(self.amp_sin)


@dataclass(frozen=True)
class Box:
    """A box, axis-aligned at t = 0; it may turn about the vertical (z) axis through its centre."""

    lo: tuple[float, float, float]
    """Minimum corner (at t = 0)."""
    hi: tuple[float, float, float]
    """Maximum corner (at t = 0)."""
    color: tuple[float, float, float]
    """Albedo, RGB in [0, 1]."""
    yaw_turns: float = 0.0
    """Turns about the vertical axis through the centre over t ∈ [0, 1] (0: static)."""
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """The scene's slab only: slides by ``shift · sin(2π t)`` (0: static; it is then part of the moving region)."""

    def offset(self, t: float, motion: bool = True) -> np.ndarray:
        """Translation ``[3]`` of the slab at time ``t``."""
        return np.asarray(self.shift, dtype=np.float64) * (math.sin(2.0 * math.pi * float(t)) if motion else 0.0)

    def yaw(self, t: float, motion: bool = True) -> float:
        """Rotation angle (radians) about z at time ``t``."""
        return 2.0 * math.pi * self.yaw_turns * float(t) if motion else 0.0


@dataclass(frozen=True)
class Scene:
    """Spheres + one static box, lit by a directional light with an ambient term (Lambert)."""

    spheres: tuple[Sphere, ...]
    """The (possibly moving) spheres."""
    box: Box
    """The static box."""
    motion: bool = True
    """If False, every sphere stays at its ``base`` and no box turns (a static scene, useful as a control)."""
    extra_boxes: tuple[Box, ...] = ()
    """More boxes (static, or turning with ``yaw_turns``) on top of :attr:`box`."""
    light_dir: tuple[float, float, float] = (0.4, -0.5, 0.77)
    """Direction *towards* the light (normalised on use)."""
    ambient: float = 0.35
    """Ambient fraction: shade = albedo * (ambient + (1 - ambient) * max(0, n·l))."""
    checker: float = 0.0
    """Contrast of a checkerboard on the top of :attr:`box` (0: plain; 0.6: squares at 40 % and 100 % of the
    albedo): texture whose detail blur destroys (the deblur benchmarks)."""
    checker_period: float = 0.2
    """Side of a checker square in world units."""
    sphere_checker: float = 0.0
    """Contrast of a checker of 8 × 4 longitude/latitude cells on every sphere, attached to the sphere (it moves with
    it: texture that object motion blur smears; 0: plain)."""
    radius: float = field(default=1.2)
    """Approximate radius of the region the scene occupies (for reference; not used in rendering)."""

    def sphere_centers(self, t: float | np.ndarray) -> np.ndarray:
        """Sphere centres at time(s) ``t``: ``[S, 3]`` for a scalar ``t``, else ``[T, S, 3]``."""
        centers = [s.center(t, self.motion) for s in self.spheres]
        return np.stack(centers, axis=-2)

    def sphere_colors(self) -> np.ndarray:
        """Sphere albedos, ``[S, 3]`` floats in [0, 1]."""
        return np.asarray([s.color for s in self.spheres], dtype=np.float64)


def default_scene(motion: bool = True, motion_scale: float = 1.0) -> Scene:
    """The standard test scene: three coloured spheres moving above a grey slab.

    The motions have amplitudes of 0.4–0.6 world units (about a third to a half of the scene radius of 1.2), so a
    static model visibly fails. Everything stays inside ``[-1.5, 1.5]^3`` at all times.

    Args:
        motion: Whether the spheres move.
        motion_scale: Multiplies every motion amplitude (0.5 halves the paths; 1 is the standard scene).

    Returns:
        The scene (deterministic; it does not depend on any seed).
    """
    spheres = (
        # Red: circle of radius 0.55 in the horizontal plane.
        Sphere(
            base=(0.0, 0.0, 0.15),
            radius=0.3,
            color=(0.9, 0.15, 0.1),
            amp_cos=(0.55, 0.0, 0.0),
            amp_sin=(0.0, 0.55, 0.0),
        ),
        # Green: bobs up and down by ±0.45.
        Sphere(
            base=(0.55, -0.45, 0.35),
            radius=0.25,
            color=(0.15, 0.85, 0.2),
            amp_sin=(0.0, 0.0, 0.45),
            frequency=1.0,
            phase=0.5,
        ),
        # Blue: sways along x by ±0.6, twice per clip.
        Sphere(
            base=(-0.2, 0.6, 0.6),
            radius=0.22,
            color=(0.15, 0.3, 0.95),
            amp_cos=(0.6, 0.0, 0.0),
            frequency=2.0,
            phase=1.0,
        ),
    )
    box = Box(lo=(-0.8, -0.8, -0.75), hi=(0.8, 0.8, -0.45), color=(0.7, 0.7, 0.65))
    if motion_scale != 1.0:
        scaled = lambda amp: tuple(a * motion_scale for a in amp)  # noqa: E731
        spheres = tuple(replace(s, amp_cos=scaled(s.amp_cos), amp_sin=scaled(s.amp_sin)) for s in spheres)
    return Scene(spheres=spheres, box=box, motion=motion)


def bounce_scene(motion: bool = True, motion_scale: float = 1.0) -> Scene:
    """A ball bouncing about two of its diameters high next to a turning box and a static pillar, on a grey slab.

    The kind of scene issue 11's numbers were measured on: one fast vertical motion at full amplitude, one rigid
    rotation (a quarter turn over the clip) and static structure, all inside ``[-1.5, 1.5]^3``.

    Args:
        motion: Whether the ball moves and the box turns.
        motion_scale: Multiplies the bounce height and the box's turn (1: full amplitude).

    Returns:
        The scene (deterministic).
    """
    ball = Sphere(
        base=(0.35, -0.3, -0.23),  # resting on the slab (top at z = -0.45)
        radius=0.22,
        color=(0.9, 0.15, 0.1),
        amp_sin=(0.0, 0.0, 0.9 * motion_scale),
        bounce=True,
    )
    slab = Box(lo=(-0.8, -0.8, -0.75), hi=(0.8, 0.8, -0.45), color=(0.7, 0.7, 0.65))
    turning = Box(
        lo=(-0.55, -0.45, -0.45), hi=(-0.15, -0.05, -0.05), color=(0.15, 0.3, 0.95), yaw_turns=0.25 * motion_scale
    )
    pillar = Box(lo=(0.05, 0.3, -0.45), hi=(0.25, 0.5, 0.75), color=(0.85, 0.7, 0.15))
    return Scene(spheres=(ball,), box=slab, motion=motion, extra_boxes=(turning, pillar))


#: Scenes the generators can write, by name (``--scene`` of ``dynsplat-make-scene dnerf``).
SCENES = {"spheres": default_scene, "bounce": bounce_scene}


def focal_from_angle(camera_angle_x: float, width: int) -> float:
    """Focal length in pixels from a horizontal field of view, as D-NeRF defines it."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def look_at(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """OpenGL camera-to-world matrix (camera looks down -z, y up) at ``eye`` looking at ``target``.

    Args:
        eye: Camera position ``[3]``.
        target: Point to look at (default: origin).
        up: World up (default: +z, Blender's convention).

    Returns:
        ``[4, 4]`` float64 camera-to-world matrix.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: pick any horizontal right vector
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, back, eye
    return c2w


def spherical_eye(radius: float, azimuth: float, elevation: float) -> np.ndarray:
    """Point on a sphere around the origin (z up); angles in radians, elevation from the horizontal plane."""
    return radius * np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def camera_rays(c2w: np.ndarray, width: int, height: int, focal: float, supersample: int = 1):
    """World-space rays through pixel (sub-)samples.

    Args:
        c2w: ``[4, 4]`` (or ``[3, 4]``) OpenGL camera-to-world.
        width: Image width in pixels.
        height: Image height in pixels.
        focal: Focal length in pixels (principal point at the image centre).
        supersample: ``k`` → ``k×k`` stratified samples per pixel.

    Returns:
        ``(origins [3], directions [H, W, k*k, 3])`` with unit directions.
    """
    k = int(supersample)
    offs = (np.arange(k) + 0.5) / k  # sub-pixel sample positions in (0, 1)
    u = (np.arange(width)[:, None] + offs[None, :]).reshape(-1)  # [W*k]
    v = (np.arange(height)[:, None] + offs[None, :]).reshape(-1)  # [H*k]
    uu, vv = np.meshgrid(u, v, indexing="xy")  # [H*k, W*k]
    dirs_cam = np.stack([(uu - 0.5 * width) / focal, -(vv - 0.5 * height) / focal, -np.ones_like(uu)], axis=-1)
    dirs = dirs_cam @ np.asarray(c2w, dtype=np.float64)[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    # [H*k, W*k, 3] -> [H, k, W, k, 3] -> [H, W, k*k, 3]
    dirs = dirs.reshape(height, k, width, k, 3).transpose(0, 2, 1, 3, 4).reshape(height, width, k * k, 3)
    return np.asarray(c2w, dtype=np.float64)[:3, 3].copy(), dirs


def intersect_sphere(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float):
    """Exact ray–sphere hit for unit ``dirs [..., 3]``. Returns ``(t [...], hit [...])``; ``t`` is inf on a miss."""
    oc = origin - center
    b = dirs @ oc
    c = float(oc @ oc) - radius * radius
    disc = b * b - c
    sq = np.sqrt(np.maximum(disc, 0.0))
    t_near, t_far = -b - sq, -b + sq
    t = np.where(t_near > 1e-9, t_near, t_far)
    hit = (disc >= 0.0) & (t > 1e-9)
    return np.where(hit, t, np.inf), hit


def intersect_box(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Exact ray–AABB hit (slab method). Returns ``(t [...], normal [..., 3], hit [...])``; ``t`` is inf on a miss."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1 = (lo - origin) * inv
        t2 = (hi - origin) * inv
    t1 = np.nan_to_num(t1, nan=-np.inf)
    t2 = np.nan_to_num(t2, nan=np.inf)
    t_min, t_max = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = t_min.max(axis=-1), t_max.min(axis=-1)
    hit = (t_near <= t_far) & (t_far > 1e-9)
    t = np.where(t_near > 1e-9, t_near, t_far)
    # Normal of the entry face: the slab axis that set t_near, pointing against the ray.
    axis = t_min.argmax(axis=-1)
    normal = np.zeros(dirs.shape)
    np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(dirs, axis[..., None], -1)), axis=-1)
    return np.where(hit, t, np.inf), normal, hit


def _intersect_turning_box(origin: np.ndarray, dirs: np.ndarray, box: Box, yaw: float):
    """:func:`intersect_box` for a box turned by ``yaw`` about the vertical axis through its centre."""
    center = (np.asarray(box.lo) + np.asarray(box.hi)) / 2.0
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # box frame → world
    local_origin = (origin - center) @ rot  # world → box frame (row vectors: x @ R = Rᵀ x)
    local_dirs = dirs @ rot
    t, normal, hit = intersect_box(local_origin, local_dirs, np.asarray(box.lo) - center, np.asarray(box.hi) - center)
    return t, normal @ rot.T, hit


def render_rgba(
    scene: Scene, c2w: np.ndarray, t: float, width: int, height: int, focal: float, supersample: int = 2
) -> np.ndarray:
    """Ray-cast the scene at time ``t``.

    Args:
        scene: The scene.
        c2w: OpenGL camera-to-world ``[4, 4]``.
        t: Time in [0, 1].
        width: Image width.
        height: Image height.
        focal: Focal length in pixels.
        supersample: ``k×k`` samples per pixel (``1`` → binary alpha; ``2`` → fractional alpha at edges).

    Returns:
        ``[H, W, 4]`` float32 in [0, 1], *straight* (not premultiplied) RGB and coverage alpha, as PNGs store it.
    """
    origin, dirs = camera_rays(c2w, width, height, focal, supersample)
    return trace_rays(scene, origin, dirs, t)["rgba"]


def trace_rays(scene: Scene, origin: np.ndarray, dirs: np.ndarray, t: float) -> dict[str, np.ndarray]:
    """Ray-cast the scene at time ``t`` along arbitrary rays (any camera model).

    Args:
        scene: The scene.
        origin: Ray origin ``[3]`` (the camera centre).
        dirs: Unit directions ``[H, W, S, 3]`` (``S`` samples per pixel, averaged).
        t: Time in [0, 1].

    Returns:
        ``rgba`` ``[H, W, 4]`` float32 (straight RGB, coverage alpha), ``distance`` ``[H, W]`` (mean hit distance
        along the ray over the samples that hit, NaN where none does) and ``moving`` ``[H, W]`` (fraction of samples
        whose first hit is a sphere or a sliding slab, i.e. the dynamic part of the scene when ``scene.motion``).
    """
    slab_offset = scene.box.offset(t, scene.motion)
    best_t, box_normal, slab_hit = intersect_box(origin, dirs, scene.box.lo + slab_offset, scene.box.hi + slab_offset)
    albedo = np.broadcast_to(np.asarray(scene.box.color), dirs.shape).copy()
    if scene.checker > 0:
        hit = origin + dirs * np.where(np.isfinite(best_t), best_t, 0.0)[..., None] - slab_offset
        albedo = albedo * slab_checker(scene.checker, scene.checker_period, hit)
    normal = box_normal
    for box in scene.extra_boxes:
        t_b, n_b, hit = _intersect_turning_box(origin, dirs, box, box.yaw(t, scene.motion))
        closer = hit & (t_b < best_t)
        best_t = np.where(closer, t_b, best_t)
        normal = np.where(closer[..., None], n_b, normal)
        albedo = np.where(closer[..., None], np.asarray(box.color), albedo)
        slab_hit = slab_hit & ~closer
    on_sphere = slab_hit & (scene.motion and any(scene.box.shift))  # a sliding slab moves too
    for sphere, center in zip(scene.spheres, scene.sphere_centers(t), strict=True):
        t_s, hit = intersect_sphere(origin, dirs, center, sphere.radius)
        closer = hit & (t_s < best_t)
        best_t = np.where(closer, t_s, best_t)
        n_s = (origin + dirs * np.where(closer, t_s, 0.0)[..., None] - center) / sphere.radius
        normal = np.where(closer[..., None], n_s, normal)
        color = np.asarray(sphere.color) * (sphere_checker(scene.sphere_checker, n_s) if scene.sphere_checker else 1)
        albedo = np.where(closer[..., None], color, albedo)
        on_sphere |= closer
    hit_any = np.isfinite(best_t)
    light = np.asarray(scene.light_dir, dtype=np.float64)
    light /= np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0.0, None)
    shade = albedo * (scene.ambient + (1.0 - scene.ambient) * lambert)[..., None]
    shade = np.where(hit_any[..., None], shade, 0.0)
    alpha = hit_any.mean(axis=-1)  # coverage over the k*k samples
    premult = shade.mean(axis=-2)
    rgb = np.where(alpha[..., None] > 0, premult / np.maximum(alpha, 1e-12)[..., None], 0.0)
    rgba = np.concatenate([np.clip(rgb, 0.0, 1.0), alpha[..., None]], axis=-1).astype(np.float32)
    with np.errstate(invalid="ignore"):
        distance = np.where(hit_any, best_t, 0.0).sum(axis=-1) / hit_any.sum(axis=-1)
    return {"rgba": rgba, "distance": distance, "moving": on_sphere.mean(axis=-1)}


def project_points(points: np.ndarray, c2w: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """Project world points ``[..., 3]`` into pixel coordinates ``[..., 2]`` (x right, y down; pixel centres at +0.5).

    Points behind the camera get NaN.
    """
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    p = np.asarray(points, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = focal * p[..., 0] / depth + 0.5 * width
        y = -focal * p[..., 1] / depth + 0.5 * height
    out = np.stack([x, y], axis=-1)
    out[depth <= 0] = np.nan
    return out


# ----------------------------------------------------------------------------------------------------------------------
# General camera models (for the LLFF / D2RF / EyefulTower generators)
# ----------------------------------------------------------------------------------------------------------------------


def over_background(rgba: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """Composite straight RGBA ``[H, W, 4]`` over a colour: opaque RGB ``[H, W, 3]`` float in [0, 1]."""
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] → uint8."""
    return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def forward_facing_poses(
    n: int, distance: float = 4.0, spread: float = 0.6, height: float = 0.8, seed: int = 0
) -> list[np.ndarray]:
    """OpenGL camera-to-worlds of a forward-facing capture (LLFF style): cameras on a small patch of a plane in front
    of the scene (along -y, slightly above), all looking at the origin, in a smooth serpentine order."""
    rng = np.random.default_rng(seed)
    cols = max(1, int(np.ceil(np.sqrt(n))))
    out = []
    for i in range(n):
        row, col = divmod(i, cols)
        col = col if row % 2 == 0 else cols - 1 - col
        fx = (col / max(cols - 1, 1) - 0.5) * 2 * spread
        fz = (row / max((n - 1) // cols, 1) - 0.5) * spread
        jitter = rng.uniform(-0.05, 0.05, size=3) * spread
        eye = np.array([fx, -distance, height + fz]) + jitter
        out.append(look_at(eye))
    return out


def opengl_to_llff(c2w: np.ndarray) -> np.ndarray:
    """OpenGL ``[3|4, 4]`` camera-to-world → LLFF's ``[3, 4]`` with rotation columns [down, right, back]."""
    c2w = np.asarray(c2w, dtype=np.float64)[:3, :4]
    return np.concatenate([-c2w[:, 1:2], c2w[:, 0:1], c2w[:, 2:4]], axis=1)


def depth_bounds(scene: Scene, c2w: np.ndarray, t: float = 0.0, margin: float = 0.25) -> tuple[float, float]:
    """Near/far depths (along the viewing axis) of the scene's spheres and box corners seen from ``c2w``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    lo, hi = np.asarray(scene.box.lo) + scene.box.offset(t), np.asarray(scene.box.hi) + scene.box.offset(t)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    centers = scene.sphere_centers(t)
    radii = np.array([s.radius for s in scene.spheres])
    forward = -c2w[:3, 2]
    d_box = (corners - c2w[:3, 3]) @ forward
    d_sph = (centers - c2w[:3, 3]) @ forward
    near = min(d_box.min(), (d_sph - radii).min()) - margin
    far = max(d_box.max(), (d_sph + radii).max()) + margin
    return max(near, 0.05), far


def surface_points(scene: Scene, n: int, t: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random points on the spheres (at time ``t``) and the box top with their shaded colours (a fake SfM cloud).

    Returns:
        ``(xyz float64 [n, 3], rgb uint8 [n, 3])``.
    """
    rng = np.random.default_rng(seed)
    n_box = n // 2
    lo, hi = np.asarray(scene.box.lo) + scene.box.offset(t), np.asarray(scene.box.hi) + scene.box.offset(t)
    box = np.stack([rng.uniform(lo[0], hi[0], n_box), rng.uniform(lo[1], hi[1], n_box), np.full(n_box, hi[2])], 1)
    box_rgb = np.tile(np.asarray(scene.box.color), (n_box, 1))
    which = rng.integers(0, len(scene.spheres), n - n_box)
    dirs = rng.normal(size=(n - n_box, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    centers, radii = scene.sphere_centers(t), np.array([s.radius for s in scene.spheres])
    sph = centers[which] + dirs * radii[which, None]
    sph_rgb = scene.sphere_colors()[which]
    xyz = np.concatenate([box, sph])
    return xyz, to_uint8(np.concatenate([box_rgb, sph_rgb]))
