"""A real STAC API on loopback: ``rustac serve`` (PyPI ``rustac``) loaded with item files."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from eopack.demo.service import Service
from eopack.errors import EopackError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rustac_executable() -> str:
    """``rustac`` next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "rustac"
    if beside.exists():
        return str(beside)
    found = shutil.which("rustac")
    if not found:
        raise EopackError("rustac not found: install the test extras (pip install 'eopack[test]')")
    return found


class StacServer(Service):
    """``rustac serve --create-collections ITEMS`` on a free loopback port."""

    def __init__(self, items: list[Path], log_file: Path | None = None, host: str = "127.0.0.1"):
        self.items = items
        self.host = host
        self.port = 0
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> StacServer:
        self.port = free_port(self.host)
        out = self.log_file.open("wb") if self.log_file else subprocess.DEVNULL
        cmd = [
            rustac_executable(),
            "serve",
            "--create-collections",
            "--addr",
            f"{self.host}:{self.port}",
        ]
        self._proc = subprocess.Popen([*cmd, *map(str, self.items)], stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EopackError(f"rustac serve exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/collections", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise EopackError(f"rustac serve did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
