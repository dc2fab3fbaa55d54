"""A real ``demod-voice serve`` in a subprocess on 127.0.0.1 (a free port), for the serve tests and benches."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml
from processes import alive, children  # noqa: F401 - shared helpers, used through this module too

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """A started server."""

    process: subprocess.Popen
    url: str
    log: Path
    folder: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def start_server(folder: Path, config: dict, *args: str, timeout: float = 60, env: Optional[dict] = None) -> LiveServer:
    """Write ``config`` to ``folder/config.yaml`` and start the server with it; wait until it listens."""
    folder.mkdir(parents=True, exist_ok=True)
    # port 0: the server binds a free port itself and says which; a port found free here and given to it could be taken
    # (a client's connection, another server) in the seconds the server takes to start
    config = {**config, "serve": {**config.get("serve", {}), "port": 0, "host": "127.0.0.1"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = folder / "server.log"
    full_env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache"), "XDG_CONFIG_HOME": str(folder / "xdg"), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if not (k.startswith("DEMOD_VOICE_") and k not in ("DEMOD_VOICE_TEST_CACHE",))}
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "demod_voice", "serve", "--config", str(folder / "config.yaml"), *args],
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, cwd=folder)
    server = LiveServer(process, "", log, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        where = re.search(r"serving on (http://127\.0\.0\.1:\d+)", server.log_text())
        if where:
            server.url = where.group(1)
            return server
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log_text()}")
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"the server did not start within {timeout} s:\n{server.log_text()}")


def wait_until(condition, timeout: float = 15.0, step: float = 0.05) -> bool:
    """Poll ``condition()`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def metric(text: str, name: str, labels: str = "") -> float:
    """A sample from Prometheus text (``labels`` as written between the braces, or none)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What ``sock`` sends until ``marker`` has come (or the peer closes)."""
    data = b""
    while marker not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data
