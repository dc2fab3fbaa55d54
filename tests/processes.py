"""Process helpers shared by the tests that start real commands, servers and clusters."""

from __future__ import annotations

import re
import time
from pathlib import Path


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
