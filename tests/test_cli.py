"""The eopack command: the demo servers stop with it, on SIGTERM as on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def rustac_serving(path: Path) -> list[int]:
    """PIDs of ``rustac serve`` processes serving files under ``path`` (the demo's state)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "rustac" in cmdline and str(path) in cmdline:
            found.append(int(entry.name))
    return found


def test_serve_demo_stops_its_servers_on_sigterm(tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "eopack.cli", "serve-demo", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        stac = next(line for line in lines if "EOPACK_STAC_URL" in line)
        assert stac.startswith("export EOPACK_STAC_URL=http://127.0.0.1:")
        assert rustac_serving(state), "the demo's STAC server (rustac serve) is not running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while rustac_serving(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rustac_serving(state) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in rustac_serving(state):  # a failed test leaves nothing running either
            os.kill(pid, signal.SIGKILL)
