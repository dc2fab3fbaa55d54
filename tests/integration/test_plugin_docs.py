"""docs/plugins.md's worked example runs as written: its three files, copied out of the page, make a package that
installs, and each command the page shows after it does what its comment says (``models list`` lists the voice, the
batch row is spoken, the server answers the ``curl`` on its default port with a WAV)."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from conftest import run_cli
from live_server import start_server

from demod_voice.config import ServeSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
FILES = ("pyproject.toml", "demod_voice_sine/request.py", "demod_voice_sine/engine.py")


def _worked() -> tuple[dict[str, str], list[str]]:
    """The example's files (named by the line before each block) and the lines of its last block, joined at ``\\``."""
    section = DOC.read_text(encoding="utf-8").split("## A minimal plugin, worked", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"`([^`\n]+)`[^\n]*:\n\n```\w*\n(.*?)```", section, re.S)
    files = {name: body for name, body in blocks if name in FILES}
    assert sorted(files) == sorted(FILES), f"the page's files: {[name for name, _ in blocks]}"
    commands = section.split("```")[1::2][-1].replace("\\\n", " ")
    return files, [line for line in commands.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    files, _ = _worked()
    work = tmp_path_factory.mktemp("worked")
    for name, body in files.items():
        (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "src" / name).write_text(body, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index", "--no-deps",
                           "--target", str(work / "site"), str(work / "src")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return work / "site"


def test_the_worked_example_does_what_the_page_says(site, tmp_path):
    httpx = pytest.importorskip("httpx")
    _, lines = _worked()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    server = None
    try:
        for line in lines:
            command, _, comment = line.partition("  #")
            words = shlex.split(command)
            if words[:2] == ["demod-voice", "serve"]:
                server = start_server(tmp_path / "srv", {}, *words[2:-1] if words[-1] == "&" else words[2:], env=env)
            elif words[0] == "demod-voice":
                done = run_cli(*words[1:], env=env, cwd=tmp_path)
                assert done.returncode == 0, (line, done.stderr.decode())
                if words[1:3] == ["models", "list"]:
                    assert comment.split()[:2] in [row.split()[:2] for row in done.stdout.decode().splitlines()], done.stdout
                elif comment.strip():
                    assert (tmp_path / comment.strip()).is_file(), line
            elif words[0] == "printf":
                text = words[1].encode().decode("unicode_escape")
                (tmp_path / words[-1]).write_text(text, encoding="utf-8")
            else:
                assert words[0] == "curl" and server is not None, line
                host, port, route = re.fullmatch(r"(\w+):(\d+)(/\S+)", words[2]).groups()
                assert int(port) == ServeSettings().port, f"the page's curl asks port {port}; serve listens on {ServeSettings().port}"
                answer = httpx.post(server.url + route, json=json.loads(words[words.index("-d") + 1]), timeout=60)
                assert answer.status_code == 200, answer.text
                samples, rate = soundfile.read(io.BytesIO(answer.content), dtype="float32")
                assert words[words.index("-o") + 1].endswith(".wav") and rate == 16000 and len(samples)
    finally:
        if server is not None:
            assert server.stop() == 0, server.log_text()
    assert server is not None
