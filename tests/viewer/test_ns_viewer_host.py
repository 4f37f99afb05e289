"""The real ``ns-viewer`` on a dynsplat run binds to the host saved in the run's config.yml (not to its own command-line
default, 0.0.0.0), through the hook the dynsplat pipeline sets up before nerfstudio builds the viewer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import free_port, wait_until_listening

BIN = Path(sys.executable).parent
ENV = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
#: An explicit, non-default host saved with the run (any 127.x address is loopback on Linux).
SAVED_HOST = "127.0.0.2"
pytestmark = pytest.mark.slow


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on TCP ``port`` (from /proc/net/tcp{,6})."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.is_file():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order 32-bit words
                found.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


def test_ns_viewer_binds_to_the_host_saved_with_the_run(dnerf_scene, tmp_path):
    if not Path("/proc/net/tcp").is_file() or not (BIN / "ns-viewer").is_file():
        pytest.skip("needs Linux's /proc/net/tcp and nerfstudio's ns-viewer next to this Python")
    out = tmp_path / "outputs"
    train = subprocess.run(
        [str(BIN / "ns-train"), "dynsplat-4dgs", "--output-dir", str(out), "--experiment-name", "tiny",
         "--timestamp", "run", "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "1",
         "--steps-per-eval-image", "1000", "--steps-per-eval-all-images", "1000", "--pipeline.model.sh-degree", "0",
         "--pipeline.model.motion.resolution", "4", "4", "4", "4",
         "--viewer.websocket-host", SAVED_HOST, "dynsplat-dnerf", "--data", str(dnerf_scene)],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    config = out / "tiny" / "dynsplat-4dgs" / "run" / "config.yml"
    assert f"websocket_host: {SAVED_HOST}" in config.read_text()

    port = free_port()
    log_path = tmp_path / "ns-viewer.log"
    with log_path.open("w") as log:
        viewer = subprocess.Popen(
            [str(BIN / "ns-viewer"), "--load-config", str(config), "--viewer.websocket-port", str(port),
             "--viewer.max-num-display-images", "0"],
            cwd=tmp_path, env=ENV, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_listening(viewer, port, log_path, listening_addresses)
            assert listening_addresses(port) == [SAVED_HOST], log_path.read_text()[-3000:]
        finally:
            viewer.kill()
            viewer.wait(timeout=60)
