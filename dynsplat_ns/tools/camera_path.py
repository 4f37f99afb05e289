"""``dynsplat-camera-path``: nerfstudio camera-path JSON (with ``render_time``) for a trained dynsplat run.

Paths live in nerfstudio's world (the dataparser-transformed frame that ``ns-render camera-path`` uses), so radius,
height and positions are in those units. Everything defaults from the run: the point of interest is the centroid of
the trained Gaussians, the up direction the mean up vector of the training cameras, radius/height their median
distance/height around the point of interest, resolution and field of view those of the first training camera.

Example::

    dynsplat-camera-path orbit --load-config RUN/config.yml --output-path orbit.json
    ns-render camera-path --load-config RUN/config.yml --camera-path-filename orbit.json --output-path orbit.mp4
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Union

import numpy as np
import tyro

from dynsplat_ns.tools.runs import CameraSet, ToolError, check_time, gaussian_centroid, load_config, run_tool

Vec3 = tuple[float, float, float]


# ---- geometry ------------------------------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ToolError("degenerate direction (zero length vector): check --up / --look-at / camera positions")
    return v / n


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world ``[4, 4]`` (x right, y up, looking down −z) at ``eye`` looking at ``target``."""
    back = _unit(np.asarray(eye, float) - np.asarray(target, float))
    up = np.asarray(up, float)
    if abs(float(np.dot(_unit(up), back))) > 0.999:  # looking straight along up: any perpendicular up will do
        up = np.eye(3)[int(np.argmin(np.abs(back)))]
    right = _unit(np.cross(up, back))
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(back, right), back, eye
    return c2w


@dataclass
class SceneFrame:
    """Defaults derived from a run's training cameras and Gaussians (nerfstudio world)."""

    poi: np.ndarray
    """Point of interest [3]."""
    up: np.ndarray
    """Unit up direction [3]."""
    e1: np.ndarray
    """Unit horizontal axis [3] towards the first training camera (angle 0)."""
    e2: np.ndarray
    """Unit horizontal axis [3], ``up × e1`` (angle 90°)."""
    radius: float
    """Median horizontal distance of the training cameras from the point of interest."""
    height: float
    """Median height of the training cameras above the point of interest (along up)."""
    width: int
    """Render width (first training camera)."""
    image_height: int
    """Render height (first training camera)."""
    fov: float
    """Vertical field of view in degrees (first training camera)."""
    num_times: int
    """Distinct training times (1 for a static dataset)."""


def scene_frame(train: CameraSet, poi: np.ndarray, up: np.ndarray | None = None) -> SceneFrame:
    """Orbit frame and render defaults for ``train`` cameras around ``poi``."""
    if len(train) == 0:
        raise ToolError("the run has no training cameras")
    if up is None:
        mean_up = train.c2w[:, :3, 1].mean(axis=0)
        up = mean_up if np.linalg.norm(mean_up) > 0.3 else np.array([0.0, 0.0, 1.0])
    up = _unit(np.asarray(up, float))
    rel = train.positions - poi
    heights = rel @ up
    horizontal = rel - heights[:, None] * up
    radii = np.linalg.norm(horizontal, axis=1)
    ref = horizontal[int(np.argmax(radii > 1e-9 * max(1.0, radii.max())))] if radii.max() > 1e-9 else None
    if ref is None:
        ref = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
    e1 = _unit(ref - np.dot(ref, up) * up)
    h, fy = float(train.height[0]), float(train.fy[0])
    return SceneFrame(
        poi=np.asarray(poi, float),
        up=up,
        e1=e1,
        e2=np.cross(up, e1),
        radius=float(np.median(radii)) if radii.max() > 1e-9 else float(np.median(np.linalg.norm(rel, axis=1))),
        height=float(np.median(heights)),
        width=int(train.width[0]),
        image_height=int(train.height[0]),
        fov=math.degrees(2.0 * math.atan(0.5 * h / fy)),
        num_times=1 if train.times is None else int(np.unique(np.round(train.times, 6)).size),
    )


def ring_eyes(frame: SceneFrame, center: np.ndarray, radius: float, height: float, angles_deg) -> np.ndarray:
    """Camera centres ``[N, 3]`` on a horizontal circle around ``center`` (angle 0 towards the first training view)."""
    a = np.radians(np.asarray(angles_deg, float))[:, None]
    return center + radius * (np.cos(a) * frame.e1 + np.sin(a) * frame.e2) + height * frame.up


def sweep(n: int, start: float, end: float) -> np.ndarray:
    """``n`` times from ``start`` to ``end`` inclusive (one frame: ``start``)."""
    return np.linspace(start, end, n) if n > 1 else np.array([start], float)


def path_json(
    c2ws: list[np.ndarray], times: np.ndarray, fov: float, width: int, height: int, fps: float, info: dict
) -> dict:
    """nerfstudio camera-path dict (``ns-render camera-path`` format) with ``render_time`` on every keyframe."""
    keyframes = [
        {
            "camera_to_world": np.asarray(c, float).reshape(-1).tolist(),
            "fov": float(fov),
            "aspect": width / height,
            "render_time": float(t),
        }
        for c, t in zip(c2ws, times, strict=True)
    ]
    return {
        "camera_type": "perspective",
        "render_height": int(height),
        "render_width": int(width),
        "fps": float(fps),
        "seconds": len(keyframes) / float(fps),
        "camera_path": keyframes,
        "dynsplat": info,
    }


# ---- CLI -----------------------------------------------------------------------------------------------------------
@dataclass
class _Common:
    load_config: Path
    """Trained run: its folder or its config.yml (as written by ns-train)."""
    output_path: Path = Path("camera_path.json")
    """Camera-path JSON to write (render it with ns-render camera-path --camera-path-filename)."""
    frames: int | None = None
    """Number of keyframes, one per rendered frame (default: 4 × the number of distinct training times, ≥ 24)."""
    fps: float = 24.0
    """Frames per second of the video; its length is frames / fps."""
    render_width: int | None = None
    """Render width in pixels (default: the training images', or from --render-height at their aspect ratio)."""
    render_height: int | None = None
    """Render height in pixels (default: the training images', or from --render-width at their aspect ratio)."""
    fov: float | None = None
    """Vertical field of view in degrees (default: the training cameras')."""
    poi: Vec3 | None = None
    """Point of interest x y z in nerfstudio's world (default: centroid of the trained Gaussians)."""
    up: Vec3 | None = None
    """Up direction x y z (default: mean up vector of the training cameras)."""
    novelty: bool = True
    """Also write OUTPUT.novelty.csv/.json: distance and angle of every keyframe to its nearest training camera."""

    kind = "path"

    def keyframes(self, frame: SceneFrame, n: int, train: CameraSet) -> tuple[list[np.ndarray], np.ndarray, dict]:
        """``(c2w list, times, info)`` of this path with ``n`` frames."""
        raise NotImplementedError

    def main(self) -> None:
        """Build the path from the run and write it."""
        from dynsplat_ns.tools.novelty import path_cameras, write_novelty
        from dynsplat_ns.tools.runs import split_cameras

        for name in ("time", "time_start", "time_end"):  # fail fast, before loading the run
            if getattr(self, name, None) is not None:
                check_time(getattr(self, name), "--" + name.replace("_", "-"))
        if self.frames is not None and self.frames < 1:
            raise ToolError(f"--frames {self.frames}: a camera path needs at least one frame")
        for name in ("render_width", "render_height"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ToolError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1 pixel")
        if not self.fps > 0:
            raise ToolError(f"--fps {self.fps}: must be > 0")
        if self.fov is not None and not 0 < self.fov < 180:
            raise ToolError(f"--fov {self.fov}: vertical field of view must be in (0, 180) degrees")
        config = load_config(self.load_config)
        train = split_cameras(config, "train")
        poi = np.asarray(self.poi, float) if self.poi is not None else gaussian_centroid(config)
        frame = scene_frame(train, poi, None if self.up is None else np.asarray(self.up, float))
        n = self.frames if self.frames is not None else max(24, 4 * frame.num_times)
        c2ws, times, info = self.keyframes(frame, n, train)
        for t in times:
            check_time(float(t), "render_time")
        width, height = self.render_width, self.render_height
        aspect = frame.width / frame.image_height
        if width is None:  # keep the training images' aspect ratio when only one side is given
            width = frame.width if height is None else max(1, round(height * aspect))
        if height is None:
            height = max(1, round(width / aspect))
        info = {"kind": self.kind, "poi": frame.poi.tolist(), "up": frame.up.tolist(), **info}
        data = path_json(c2ws, times, self.fov or frame.fov, width, height, self.fps, info)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self.output_path.write_text(json.dumps(data, indent=1))
        print(
            f"wrote {self.output_path}: {self.kind}, {len(c2ws)} frames, {width}x{height}, "
            f"render_time {times[0]:.3f}→{times[-1]:.3f}"
        )
        if self.novelty:
            stem = self.output_path.with_suffix("")
            for path in write_novelty(path_cameras(data), train, Path(f"{stem}.novelty"), source=str(self.output_path)):
                print(f"wrote {path}")


@dataclass
class _Timed:
    time_start: float = 0.0
    """render_time of the first frame."""
    time_end: float = 1.0
    """render_time of the last frame (time moves linearly in between)."""
    time: float | None = None
    """Render every frame at this one time instead (a frozen moment)."""

    def times(self, n: int) -> np.ndarray:
        """Times of ``n`` frames (validated to lie in [0, 1])."""
        if self.time is not None:
            return np.full(n, check_time(self.time, "--time"))
        return sweep(n, check_time(self.time_start, "--time-start"), check_time(self.time_end, "--time-end"))


@dataclass
class _Around:
    radius: float | None = None
    """Distance from the point of interest, horizontally (default: median of the training cameras)."""
    height: float | None = None
    """Camera height above the point of interest along up (default: median of the training cameras)."""
    look_at: Vec3 | None = None
    """Point the camera looks at (default: the point of interest)."""
    start_angle: float = 0.0
    """Angle of the first frame in degrees (0: towards the first training camera)."""

    def circle(self, frame: SceneFrame, n: int, degrees: float) -> tuple[list[np.ndarray], dict]:
        """Cameras on an arc of ``degrees`` around the point of interest (a full circle does not repeat its start)."""
        radius = frame.radius if self.radius is None else self.radius
        if not radius > 0:
            raise ToolError(f"--radius {radius}: must be > 0")
        height = frame.height if self.height is None else self.height
        target = frame.poi if self.look_at is None else np.asarray(self.look_at, float)
        closed = abs(degrees / 360.0 - round(degrees / 360.0)) < 1e-9 and degrees != 0
        angles = self.start_angle + sweep(n, 0.0, degrees * (n - 1) / n if closed else degrees)
        eyes = ring_eyes(frame, frame.poi, radius, height, angles)
        info = {"radius": radius, "height": height, "look_at": np.asarray(target).tolist(), "degrees": degrees}
        return [look_at(e, target, frame.up) for e in eyes], info


@dataclass
class Orbit(_Timed, _Around, _Common):
    """A circle around the point of interest while time moves from --time-start to --time-end."""

    turns: float = 1.0
    """Number of turns around the point of interest."""

    kind = "orbit"

    def keyframes(self, frame, n, train):
        c2ws, info = self.circle(frame, n, 360.0 * self.turns)
        return c2ws, self.times(n), info


@dataclass
class BulletTime(_Around, _Common):
    """Time frozen at --time while the camera moves along an orbit arc around the point of interest."""

    time: float = 0.5
    """The frozen render_time of every frame."""
    arc: float = 360.0
    """Arc swept by the camera in degrees (360: a full circle)."""

    kind = "bullet-time"

    def keyframes(self, frame, n, train):
        c2ws, info = self.circle(frame, n, self.arc)
        return c2ws, np.full(n, check_time(self.time, "--time")), info


@dataclass
class Cones(_Timed, _Common):
    """Several rings around the point of interest at different distances and elevations (cones with their apex at
    the point of interest); time sweeps --time-start → --time-end on every ring."""

    distance_scales: tuple[float, ...] = (0.8, 1.0, 1.25)
    """Ring distances as multiples of the training cameras' median distance to the point of interest."""
    elevations: tuple[float, ...] | None = None
    """Ring elevations in degrees, one per ring (default: the training elevation −15°, ±0°, +15°, ...)."""

    kind = "cones"

    def keyframes(self, frame, n, train):
        k = len(self.distance_scales)
        if k == 0 or any(not s > 0 for s in self.distance_scales):
            raise ToolError("--distance-scales: give one or more positive multiples")
        base_elev = math.degrees(math.atan2(frame.height, frame.radius))
        elevations = self.elevations
        if elevations is None:
            offsets = [15.0 * (i - (k - 1) / 2) for i in range(k)]
            elevations = tuple(float(np.clip(base_elev + o, -80.0, 80.0)) for o in offsets)
        if len(elevations) != k:
            raise ToolError(f"--elevations: {len(elevations)} values for {k} rings (--distance-scales)")
        if n < k:
            raise ToolError(f"--frames {n}: need at least one frame per ring ({k} rings)")
        distance = math.hypot(frame.radius, frame.height)
        c2ws, times = [], []
        counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
        for scale, elev, m in zip(self.distance_scales, elevations, counts, strict=True):
            d, e = distance * scale, math.radians(elev)
            eyes = ring_eyes(frame, frame.poi, d * math.cos(e), d * math.sin(e), sweep(m, 0.0, 360.0 * (m - 1) / m))
            c2ws += [look_at(p, frame.poi, frame.up) for p in eyes]
            times.append(self.times(m))
        info = {"distances": [distance * s for s in self.distance_scales], "elevations": list(elevations)}
        return c2ws, np.concatenate(times), info


@dataclass
class Spiral(_Timed, _Common):
    """Forward-facing spiral: the camera circles the mean training position in the plane facing the point of
    interest (moving in and out along the view axis) and keeps looking at it."""

    center: Vec3 | None = None
    """Centre of the spiral (default: mean training camera position; for cameras all around the object, a point
    in front of the first training view)."""
    spiral_radius: float | None = None
    """Radius of the circles (default: spread of the training camera positions, at most a quarter of the distance
    to the point of interest)."""
    depth: float | None = None
    """In/out movement along the view axis (default: half the spiral radius)."""
    turns: float = 2.0
    """Number of circles."""

    kind = "spiral"

    def keyframes(self, frame, n, train):
        positions = train.positions
        to_poi = np.linalg.norm(positions - frame.poi, axis=1)
        center = np.asarray(self.center, float) if self.center is not None else positions.mean(axis=0)
        if self.center is None and np.linalg.norm(center - frame.poi) < 0.25 * float(np.median(to_poi)):
            # cameras all around the object (a 360° capture): spiral in front of the first training view instead
            center = frame.poi + frame.radius * frame.e1 + frame.height * frame.up
        distance = float(np.linalg.norm(frame.poi - center))
        forward = _unit(frame.poi - center)
        right = _unit(np.cross(forward, frame.up)) if abs(np.dot(forward, frame.up)) < 0.999 else frame.e1
        cam_up = np.cross(right, forward)
        radius = self.spiral_radius
        if radius is None:
            spread = float(np.median(np.linalg.norm(positions - positions.mean(axis=0), axis=1)))
            radius = min(spread, 0.25 * distance) if spread > 1e-9 else 0.1 * distance
        if not radius > 0:
            raise ToolError(f"--spiral-radius {radius}: must be > 0")
        depth = 0.5 * radius if self.depth is None else self.depth
        a = np.radians(sweep(n, 0.0, 360.0 * self.turns))
        eyes = [
            center + radius * (math.cos(x) * right + math.sin(x) * cam_up) + depth * math.sin(x / 2) * forward
            for x in a
        ]
        info = {"center": center.tolist(), "radius": radius, "depth": depth, "turns": self.turns}
        return [look_at(e, frame.poi, frame.up) for e in eyes], self.times(n), info


@dataclass
class TimeSweep(_Timed, _Common):
    """A fixed view while time moves from --time-start to --time-end (default: the first training camera's view)."""

    camera_index: int = 0
    """Training camera whose pose is used (ignored with --eye)."""
    eye: Vec3 | None = None
    """Camera position x y z instead; it looks at --look-at (default: the point of interest)."""
    look_at: Vec3 | None = None
    """Point looked at from --eye."""

    kind = "time-sweep"

    def keyframes(self, frame, n, train):
        if self.eye is not None:
            target = frame.poi if self.look_at is None else np.asarray(self.look_at, float)
            c2w = look_at(np.asarray(self.eye, float), target, frame.up)
            info = {"eye": list(self.eye), "look_at": np.asarray(target).tolist()}
        else:
            if not 0 <= self.camera_index < len(train):
                raise ToolError(f"--camera-index {self.camera_index}: the run has {len(train)} training cameras")
            c2w = np.eye(4)
            c2w[:3, :4] = train.c2w[self.camera_index]
            info = {"camera_index": self.camera_index, "camera": train.names[self.camera_index]}
        return [c2w] * n, self.times(n), info


Commands = Union[
    Annotated[Orbit, tyro.conf.subcommand(name="orbit")],
    Annotated[Cones, tyro.conf.subcommand(name="cones")],
    Annotated[Spiral, tyro.conf.subcommand(name="spiral")],
    Annotated[TimeSweep, tyro.conf.subcommand(name="time-sweep")],
    Annotated[BulletTime, tyro.conf.subcommand(name="bullet-time")],
]


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``dynsplat-camera-path``)."""
    cmd = tyro.cli(Commands, args=argv, description=__doc__.split("\n\n")[0])
    return run_tool(cmd.main)


def entrypoint() -> None:
    """``dynsplat-camera-path`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
