"""ns-viewer on a dynsplat run, looked at in a real browser (headless Chromium over the DevTools protocol).

Trains a tiny dynsplat-marbles model with ns-train (CPU), gives it a known motion (every Gaussian slides along
``SHIFT`` over t ∈ [0, 1]; a few training steps alone barely move anything), starts ``ns-viewer`` without host flags
and checks that it listens on loopback only, then opens the viewer in headless Chromium and asserts:

* a frame is rendered: the 3D canvas is not uniform and differs from the canvas before the first frame;
* nerfstudio's low-resolution-first behaviour: a smaller frame arrives before the full-resolution one (Max res);
* the control panel has a "Time" slider over [0, 1]; clicking its right end changes the rendered frame.

Chromium is driven through its DevTools websocket with ``websockets`` (a viser dependency), so nothing beyond the
project's own dependencies and the ``chromium`` binary is needed. Skipped when Chromium is not installed
(``scripts/install_chromium.sh`` installs it with apt).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import free_port
from PIL import Image

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

#: World-space translation of every Gaussian between t=0 and t=1 (the scene box is [-1.5, 1.5]^3).
SHIFT = (1.0, 1.0, 0.0)
#: "Max res" of the viewer's still frames, set with DYNSPLAT_VIEWER_MAX_RES (a bit below the CPU default, 256).
MAX_RES = 192
#: Browser viewport.
VIEWPORT = (1200, 800)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--mute-audio",
    "--enable-unsafe-swiftshader",  # WebGL on the CPU (SwiftShader) without a GPU: viser draws frames with WebGL
)

#: Installed before the page loads: records every "Resolution: WxHpx" the viewer's stats panel shows (one per frame
#: whose size differs from the previous one), so no frame is missed between polls.
RECORD_RESOLUTIONS = r"""
window.__resolutions = [];
new MutationObserver(() => {
  const m = document.body && document.body.innerText.match(/Resolution:\s*(\d+)\s*[x×]\s*(\d+)px/);
  if (!m) return;
  const res = [Number(m[1]), Number(m[2])];
  const last = window.__resolutions[window.__resolutions.length - 1];
  if (!last || last[0] !== res[0] || last[1] !== res[1]) window.__resolutions.push(res);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

#: The control panel's "Time" slider (viser/Mantine: <label for=ID>Time</label> ... <div id=ID> [role=slider]).
FIND_TIME_SLIDER = r"""
(() => {
  for (const label of document.querySelectorAll('label')) {
    if (label.textContent.trim() !== 'Time') continue;
    const root = document.getElementById(label.htmlFor);
    const thumb = root && root.querySelector('[role="slider"]');
    if (!thumb) continue;
    root.scrollIntoView({block: 'center'});
    const r = (root.querySelector('.mantine-Slider-trackContainer') || thumb.parentElement).getBoundingClientRect();
    return {min: Number(thumb.getAttribute('aria-valuemin')), max: Number(thumb.getAttribute('aria-valuemax')),
            value: Number(thumb.getAttribute('aria-valuenow')), visible: r.width > 0 && r.height > 0,
            left: r.left, right: r.right, y: r.top + r.height / 2};
  }
  return null;
})()
"""

#: The resolution of the frame on show, from the viewer's stats panel ("Resolution: WxHpx"), or null.
CURRENT_RESOLUTION = r"""
(() => {
  const m = document.body && document.body.innerText.match(/Resolution:\s*(\d+)\s*[x×]\s*(\d+)px/);
  return m ? [Number(m[1]), Number(m[2])] : null;
})()
"""

CANVAS_RECT = r"""
(() => {
  const c = document.querySelector('canvas[data-engine^="three.js"]') || document.querySelector('canvas');
  if (!c) return null;
  const r = c.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
})()
"""


# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> Any:
    """Polls ``predicate`` until it returns something truthy; fails with ``what`` (and ``details()``, e.g. the
    viewer's log) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def listening_addresses(port: int) -> list[str] | None:
    """Local addresses of the sockets listening on TCP ``port`` (from /proc/net/tcp{,6}), or None off Linux."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].is_file():
        return None
    found = []
    for table in tables:
        if not table.is_file():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc stores each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


def run_checked(cmd: list[str], cwd: Path, timeout: float) -> None:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def stop(proc: subprocess.Popen | None) -> None:
    """Ends a process started by this test (its own session: the process and its children), politely first."""
    if proc is None or proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        lines = wait_for(lambda: port_file.is_file() and port_file.read_text().split(), 20, "Chromium's DevTools port")
        base = f"http://127.0.0.1:{int(lines[0])}"

        def page_targets():
            with urllib.request.urlopen(f"{base}/json/list", timeout=5) as response:
                return [t for t in json.load(response) if t.get("type") == "page"]

        page = wait_for(page_targets, 10, "a Chromium page")[0]
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self._id = 0

    def send(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # skip events until our reply
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - already gone; stop() below ends it regardless
            pass
        self.ws.close()
        stop(self.proc)


def canvas_pixels(browser: Chromium, *shots: np.ndarray) -> list[np.ndarray]:
    """The 3D canvas' current region of each screenshot, its outer 10% (the axes gizmo in a corner) cut away."""
    left, top, right, bottom = browser.js(CANVAS_RECT)
    h, w = bottom - top, right - left
    rows, cols = slice(int(top + 0.1 * h), int(bottom - 0.1 * h)), slice(int(left + 0.1 * w), int(right - 0.1 * w))
    crops = [shot[rows, cols].astype(np.float32) for shot in shots]
    assert all(crop.size > 0 for crop in crops), (left, top, right, bottom)
    return crops


def train_tiny_run(tmp_path: Path) -> Path:
    """ns-train dynsplat-marbles for 3 CPU steps on a small generated scene, then the known motion (SHIFT) written
    into its checkpoint. Returns the run's config.yml."""
    import torch

    from dynsplat_ns.scenes import dnerf as make_dnerf_scene

    scene = make_dnerf_scene.make_dnerf_scene(tmp_path / "scene", size=32, n_train=6, n_val=1, n_test=1, seed=0)
    out = tmp_path / "outputs"
    run_checked(
        [str(BIN / "ns-train"), "dynsplat-marbles", "--output-dir", str(out), "--experiment-name", "tiny",
         "--timestamp", "run", "--machine.device-type", "cpu", "--vis", "tensorboard",
         "--max-num-iterations", "3", "--steps-per-save", "1000", "--steps-per-eval-image", "1000",
         "--steps-per-eval-all-images", "100000", "--pipeline.model.sh-degree", "0",
         "--pipeline.model.num-random", "1000", "--pipeline.model.initial-opacity", "0.5",
         "--pipeline.datamanager.stereo-seeds", "0",
         "dynsplat-dnerf", "--data", str(scene)],
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    run_dir = out / "tiny" / "dynsplat-marbles" / "run"
    (ckpt_path,) = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))[-1:]
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    offsets = ckpt["pipeline"]["_model.gauss_params.marble_offsets"]  # [N, T, 3]
    ramp = torch.linspace(0.0, 1.0, offsets.shape[1])[None, :, None]
    ckpt["pipeline"]["_model.gauss_params.marble_offsets"] = (ramp * torch.tensor(SHIFT)).expand_as(offsets).clone()
    torch.save(ckpt, ckpt_path)
    return run_dir / "config.yml"


# ----------------------------------------------------------------------------------------------------------------------
# the test
# ----------------------------------------------------------------------------------------------------------------------


def test_ns_viewer_in_headless_chromium(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium is not installed (looked for: " + ", ".join(CHROMIUM_NAMES) + "); install it with "
            "scripts/install_chromium.sh or `apt-get install chromium`"
        )
    if not (BIN / "ns-viewer").is_file() or not (BIN / "ns-train").is_file():
        pytest.skip("nerfstudio's ns-train / ns-viewer are not installed next to this Python")
    started = time.monotonic()

    def phase(name: str) -> None:  # timings, shown by pytest on failure (or with -s)
        print(f"[{time.monotonic() - started:5.1f} s] {name}", flush=True)

    config = train_tiny_run(tmp_path)
    phase("trained")

    port = free_port()
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1", "DYNSPLAT_VIEWER_MAX_RES": str(MAX_RES)}
    log_path = tmp_path / "ns-viewer.log"
    viewer = browser = None
    with open(log_path, "w") as log:
        try:
            # No host flag: dynsplat viewers bind to loopback by default. No training-image frustums in the scene,
            # so the canvas shows only the model's render.
            viewer = subprocess.Popen(
                [str(BIN / "ns-viewer"), "--load-config", str(config), "--viewer.websocket-port", str(port),
                 "--viewer.max-num-display-images", "0"],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

            def viewer_up() -> bool:
                if viewer.poll() is not None:
                    pytest.fail(f"ns-viewer exited with {viewer.returncode}:\n{log_path.read_text()[-4000:]}")
                with socket.socket() as s:
                    s.settimeout(0.5)
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_for(viewer_up, 60, f"ns-viewer to listen on 127.0.0.1:{port}", interval=0.25)
            phase("ns-viewer listening")
            addresses = listening_addresses(port)
            if addresses is not None:
                assert addresses and set(addresses) <= {"127.0.0.1", "::1"}, f"ns-viewer listens on {addresses}"

            browser = Chromium(chromium, tmp_path / "chromium-profile")
            browser.send("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                         deviceScaleFactor=1, mobile=False)  # fmt: skip
            browser.send("Page.enable")
            browser.send("Page.addScriptToEvaluateOnNewDocument", source=RECORD_RESOLUTIONS)
            browser.send("Page.navigate", url=f"http://127.0.0.1:{port}/")

            # A blank viewer: the page before the first frame arrives (the viewer renders once the browser has
            # connected and reported its camera; the first frame often arrives with the control panel, so this is
            # the page before it connects). Only compared against when no frame had arrived by the screenshot.
            wait_for(lambda: browser.js(CANVAS_RECT), 20, "the viewer page's 3D canvas")
            if not browser.js("!!document.createElement('canvas').getContext('webgl2')"):
                pytest.skip("this Chromium has no WebGL 2 (needed by the viewer page), even with SwiftShader")
            blank_shot = browser.screenshot()
            blank_is_blank = not browser.js("window.__resolutions.some(r => r[0] > 0)")
            Image.fromarray(blank_shot).save(tmp_path / "page_before_first_frame.png")

            # Full-resolution frame: longest side == Max res (the viewer pads to the canvas aspect, so >=).
            def full_res_frames(start: int = 0):
                frames = browser.js("window.__resolutions")[start:]
                return [i for i, r in enumerate(frames) if max(r) >= MAX_RES] and frames

            phase("page loaded")
            frames = wait_for(
                full_res_frames, 45, "a full-resolution frame in the viewer",
                details=lambda: f"frames: {browser.js('window.__resolutions')}\n"
                f"ns-viewer log:\n{log_path.read_text()[-3000:]}",
            )  # fmt: skip
            phase(f"full-resolution frame; frame sizes so far {frames}")
            time.sleep(0.5)  # the image message precedes the stats text; let the canvas draw it
            shot = browser.screenshot()
            Image.fromarray(shot).save(tmp_path / "page_t0.png")
            frame, blank = canvas_pixels(browser, shot, blank_shot)

            first_full = next(i for i, r in enumerate(frames) if max(r) >= MAX_RES)
            assert any(0 < max(r) < MAX_RES for r in frames[:first_full]), f"no low-res frame first: {frames}"
            assert frame.std(axis=(0, 1)).mean() > 5.0, f"uniform canvas (std {frame.std(axis=(0, 1))})"
            if blank_is_blank:
                assert np.abs(frame - blank).mean() > 8.0, "the canvas looks like the viewer before any frame"

            slider = browser.js(FIND_TIME_SLIDER)
            assert slider is not None, "no 'Time' slider in the viewer's control panel"
            assert slider["visible"] and (slider["min"], slider["max"], slider["value"]) == (0, 1, 0), slider

            # Move the Time slider to its end, as a user would (a click on the right end of its track).
            time.sleep(0.3)  # the scroll into view settles
            slider = browser.js(FIND_TIME_SLIDER)
            browser.click(slider["right"] - 1, slider["y"])
            wait_for(lambda: (browser.js(FIND_TIME_SLIDER) or {}).get("value", 0) >= 0.9, 5, "Time to move to 1")

            # The frame at Time=1 may come at full resolution straight away (a low-res frame first comes only when
            # the render is slow for the viewer's time budget), and then the stats panel's resolution text does not
            # change: so wait for the canvas itself to change, with the full resolution showing.
            def changed_full_res_frame():
                resolution = browser.js(CURRENT_RESOLUTION)
                if resolution is None or max(resolution) < MAX_RES:
                    return None
                shot = browser.screenshot()
                (moved,) = canvas_pixels(browser, shot)
                change = np.abs(moved - frame).mean()
                return (shot, moved, change) if change > 4.0 else None

            shot, moved, change = wait_for(
                changed_full_res_frame, 45, "a changed full-resolution frame after moving Time to 1",
                interval=0.5,
                details=lambda: f"mean |diff| to the Time=0 frame now: "
                f"{np.abs(canvas_pixels(browser, browser.screenshot())[0] - frame).mean():.2f}; "
                f"resolution now: {browser.js(CURRENT_RESOLUTION)}; Time slider: {browser.js(FIND_TIME_SLIDER)}\n"
                f"ns-viewer log:\n{log_path.read_text()[-3000:]}",
            )  # fmt: skip
            phase(f"full-resolution frame at Time=1 (mean |diff| to Time=0: {change:.2f})")
            Image.fromarray(shot).save(tmp_path / "page_t1.png")
            assert moved.std(axis=(0, 1)).mean() > 5.0
        finally:
            if browser is not None:
                browser.close()
            stop(viewer)
