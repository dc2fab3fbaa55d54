"""Process helpers shared by the tests that start real commands, servers and clusters."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(__file__).resolve().parent.parent / "bin" / "demod-voice"


def wait_for(predicate, timeout: float = 120.0) -> None:
    """Poll ``predicate()`` every 50 ms until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(set(found))


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    match = re.search(r"^State:\s+(\S)", status, re.M)
    return bool(match) and match.group(1) != "Z"


def piped_cli(cwd: Path, *args: str) -> subprocess.Popen:
    """``demod-voice ARGS`` with pipes on stdin, stdout and stderr, Ctrl-C at its default (a background shell ignores it)."""
    return subprocess.Popen([sys.executable, str(BIN), *args], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def read_within(stream, size: int, seconds: float) -> bytes:
    """Up to ``size`` bytes of ``stream``, as many as come within ``seconds``."""
    got, deadline = b"", time.monotonic() + seconds
    while len(got) < size and select.select([stream], [], [], max(0.0, deadline - time.monotonic()))[0]:
        more = os.read(stream.fileno(), size - len(got))
        if not more:
            break
        got += more
    return got
