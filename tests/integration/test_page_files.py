"""The page's files (a person's uploaded recordings, the downloads it makes) are the server's alone and end with it.

Gradio keeps uploads in ``$TMPDIR/gradio`` unless told otherwise: folders any local user can read, kept after the
server stops. The server gives the page a private folder of its own and removes it when it stops.
"""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import httpx
import pytest
from live_server import start_server

pytest.importorskip("gradio")

TIMEOUT = 60.0


def upload(url: str, name: str, data: bytes) -> Path:
    answer = httpx.post(f"{url}/ui/gradio_api/upload", files=[("files", (name, data))], timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return Path(answer.json()[0])


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_uploads_are_private_and_removed_when_the_server_stops(tmp_path, piper_voice, monkeypatch):
    scratch = tmp_path / "tmp"  # the server's temporary folder (TMPDIR), watched here
    scratch.mkdir()
    config = {"serve": {"piper_voices": [str(piper_voice)], "grace_seconds": 1.0}}
    env = {"TMPDIR": str(scratch)}
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    killed = start_server(tmp_path / "first", config, "--ui", env=env)
    try:
        upload(killed.url, "take-1.wav", b"RIFF-not-really")
    finally:
        killed.stop(signal.SIGKILL)
    assert leftovers(scratch), "a killed server had nothing to leave: the test shows nothing"

    live = start_server(tmp_path / "second", config, "--ui", env=env)
    try:
        kept = upload(live.url, "take-2.wav", b"RIFF-a-voice")
        assert kept.is_file() and kept.resolve().is_relative_to(scratch.resolve())
        # A folder between the temporary folder and the recording is the server user's alone: no one else reaches it.
        between = [f for f in kept.parents if f.resolve().is_relative_to(scratch.resolve()) and f.resolve() != scratch.resolve()]
        modes = {str(f): oct(stat.S_IMODE(f.stat().st_mode)) for f in between}
        assert any(stat.S_IMODE(f.stat().st_mode) & 0o077 == 0 for f in between), modes
        # What the killed server left was swept when this one started.
        assert not any("take-1" in name for name in leftovers(scratch)), leftovers(scratch)
    finally:
        assert live.stop(signal.SIGTERM) == 0
    assert leftovers(scratch) == [], leftovers(scratch)
