"""``dynsplat-novelty``: how novel is each view? Distance and viewing-angle difference to the nearest training camera.

For every camera of a camera path (or of a dataset split) it writes a CSV and a JSON row: the nearest training camera
(index, image, time), the distance to it (also relative to the typical spacing between training cameras), the angle
between the two viewing directions, the smallest angle to any training camera and the time difference. A view close
to a training camera in position, direction and time is a near-copy of a training frame, not a novel view.

Example::

    dynsplat-novelty --load-config RUN/config.yml --camera-path orbit.json --output-dir renders/
    dynsplat-novelty --load-config RUN/config.yml --split test
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from dynsplat_ns.tools.runs import CameraSet, ToolError, load_config, run_tool, split_cameras

#: Column order of the CSV (and keys of each JSON row).
COLUMNS = (
    "index",
    "name",
    "time",
    "nearest_train_index",
    "nearest_train_image",
    "nearest_train_time",
    "distance",
    "distance_over_spacing",
    "angle_deg",
    "min_angle_deg",
    "time_diff",
    "near_training_view",
)


def load_path(path: Path) -> dict:
    """Read and check a nerfstudio camera-path JSON.

    Raises:
        ToolError: Missing/invalid file, no keyframes, a malformed ``camera_to_world`` or a time outside [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"{path}: camera path file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ToolError(f"{path}: not a readable camera-path JSON: {err}") from None
    frames = data.get("camera_path") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise ToolError(f"{path}: the camera path has no frames ('camera_path' must be a non-empty list)")
    for i, kf in enumerate(frames):
        m = kf.get("camera_to_world") if isinstance(kf, dict) else None
        if not isinstance(m, list) or len(m) != 16:
            raise ToolError(f"{path}: keyframe {i}: 'camera_to_world' must be 16 numbers (a row-major 4x4)")
        t = kf.get("render_time")
        if t is not None and not (isinstance(t, (int, float)) and 0.0 <= t <= 1.0):
            raise ToolError(f"{path}: keyframe {i}: render_time {t!r} is outside [0, 1]")
    return data


def path_cameras(data: dict) -> CameraSet:
    """The keyframes of a camera-path dict as a :class:`CameraSet` (times None unless every keyframe has one)."""
    frames = data["camera_path"]
    n = len(frames)
    c2w = np.array([np.asarray(kf["camera_to_world"], float).reshape(4, 4)[:3] for kf in frames])
    has_time = all("render_time" in kf for kf in frames)
    height = int(data.get("render_height", 0))
    fovs = np.array([float(kf.get("fov", 50.0)) for kf in frames])
    return CameraSet(
        c2w=c2w,
        times=np.array([float(kf["render_time"]) for kf in frames]) if has_time else None,
        names=[f"frame_{i:05d}" for i in range(n)],
        width=np.full(n, int(data.get("render_width", 0))),
        height=np.full(n, height),
        fy=0.5 * height / np.tan(np.radians(fovs) / 2),
    )


def train_spacing(train: CameraSet) -> float:
    """Median distance from each training camera to its nearest other training camera (1.0 with fewer than 2)."""
    if len(train) < 2:
        return 1.0
    d = np.linalg.norm(train.positions[:, None] - train.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    spacing = float(np.median(d.min(axis=1)))
    return spacing if spacing > 1e-12 else 1.0


def novelty_rows(
    query: CameraSet, train: CameraSet, near_distance: float = 0.25, near_angle: float = 5.0
) -> list[dict]:
    """One row per ``query`` camera (see COLUMNS).

    Args:
        query: Cameras to judge (path keyframes or a split).
        train: The run's training cameras.
        near_distance: ``near_training_view`` needs ``distance_over_spacing`` at most this.
        near_angle: ... and ``angle_deg`` at most this (degrees), and the same time (±0.5/num training times).
    """
    if len(train) == 0:
        raise ToolError("the run has no training cameras")
    spacing = train_spacing(train)
    dist = np.linalg.norm(query.positions[:, None] - train.positions[None], axis=-1)
    cos = np.clip(query.forwards @ train.forwards.T, -1.0, 1.0)
    angles = np.degrees(np.arccos(cos))
    num_times = 1 if train.times is None else max(1, np.unique(np.round(train.times, 6)).size)
    rows = []
    for i in range(len(query)):
        j = int(np.argmin(dist[i]))
        t = None if query.times is None else float(query.times[i])
        tj = None if train.times is None else float(train.times[j])
        dt = abs(t - tj) if t is not None and tj is not None else None
        same_time = dt is None or dt <= 0.5 / num_times + 1e-9
        rel = float(dist[i, j]) / spacing
        rows.append(
            {
                "index": i,
                "name": query.names[i],
                "time": t,
                "nearest_train_index": j,
                "nearest_train_image": train.names[j],
                "nearest_train_time": tj,
                "distance": float(dist[i, j]),
                "distance_over_spacing": rel,
                "angle_deg": float(angles[i, j]),
                "min_angle_deg": float(angles[i].min()),
                "time_diff": dt,
                "near_training_view": bool(rel <= near_distance and angles[i, j] <= near_angle and same_time),
            }
        )
    return rows


def summarize(rows: list[dict]) -> dict:
    """Min/median/max of distance, relative distance and angle; count of near-copies of training views."""
    out: dict = {"num_cameras": len(rows), "num_near_training_views": sum(r["near_training_view"] for r in rows)}
    for key in ("distance", "distance_over_spacing", "angle_deg"):
        values = np.array([r[key] for r in rows], float)
        out[key] = {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}
    return out


def write_novelty(query: CameraSet, train: CameraSet, stem: Path, source: str, **kw) -> list[Path]:
    """Write ``stem.csv`` and ``stem.json`` for ``query`` against ``train``; returns both paths."""
    rows = novelty_rows(query, train, **kw)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = Path(f"{stem}.csv"), Path(f"{stem}.json")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    payload = {
        "source": source,
        "num_train_cameras": len(train),
        "train_spacing": train_spacing(train),
        "summary": summarize(rows),
        "cameras": rows,
    }
    json_path.write_text(json.dumps(payload, indent=1, allow_nan=False, default=_json_default))
    return [csv_path, json_path]


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {value!r}")


@dataclass
class Novelty:
    """Distance and viewing-angle difference of each camera to its nearest training camera (CSV + JSON)."""

    load_config: Path
    """Trained run: its folder or its config.yml."""
    camera_path: Path | None = None
    """Camera-path JSON to judge (as rendered by ns-render camera-path)."""
    split: Literal["train", "val", "test"] | None = None
    """Dataset split to judge instead of a path (default: test, when no --camera-path is given)."""
    output_dir: Path | None = None
    """Folder for novelty.csv/.json, e.g. next to your renders (default: beside the path JSON, or the run folder)."""
    near_distance: float = 0.25
    """A view is a near-copy when its distance is at most this × the median spacing of the training cameras ..."""
    near_angle: float = 5.0
    """... its viewing direction within this many degrees, and its time within half a frame."""

    def main(self) -> None:
        """Compute and write the table."""
        if self.camera_path is not None and self.split is not None:
            raise ToolError("give either --camera-path or --split, not both")
        config = load_config(self.load_config)
        run_dir = Path(self.load_config)
        run_dir = run_dir if run_dir.is_dir() else run_dir.parent
        if self.camera_path is not None:
            query, source = path_cameras(load_path(self.camera_path)), str(self.camera_path)
            default_dir, name = self.camera_path.parent, f"{self.camera_path.stem}.novelty"
        else:
            split = self.split or "test"
            query, source = split_cameras(config, split), f"{split} split"
            default_dir, name = run_dir, f"novelty_{split}"
        out_dir = self.output_dir if self.output_dir is not None else default_dir
        train = split_cameras(config, "train")
        kw = {"near_distance": self.near_distance, "near_angle": self.near_angle}
        for path in write_novelty(query, train, out_dir / name, source, **kw):
            print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``dynsplat-novelty``)."""
    cmd = tyro.cli(Novelty, args=argv, description=__doc__.split("\n\n")[0])
    return run_tool(cmd.main)


def entrypoint() -> None:
    """``dynsplat-novelty`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
