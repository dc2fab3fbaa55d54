"""Where the log's lines carry the time: a plain file, read later, yes; a terminal, a pipe or journald's socket, no."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d demod-voice: ")
CHILD = """
import logging
from demod_voice.logs import configure_logging, say
configure_logging(logging.INFO)
logging.getLogger("demod_voice.x").warning("a warning")
logging.getLogger("demod_voice.x").info("some news")
say("serving on http://127.0.0.1:5002")
"""


BATCH = """
import logging
from demod_voice.batch.run import Progress
from demod_voice.cli import batch
from demod_voice.logs import configure_logging
configure_logging(logging.WARNING)
batch.LINE_EVERY = 0.0
console = batch.Console(bar=False, quiet=False)
for event in (Progress("status", "1 row(s) already made"), Progress("start", total=2), Progress("row", "row 2: no text", failed=1),
              Progress("row", failed=1), Progress("end")):
    console(event)
logging.getLogger("demod_voice.x").warning("a warning")
"""


BOOK_AND_TRAINING = """
import logging
from types import SimpleNamespace
from demod_voice.cli.book import _Bar
from demod_voice.logs import configure_logging
from demod_voice.training.train import say
configure_logging(logging.WARNING)
_Bar(enabled=False, quiet=False).say("chapter 1: 12 takes made")
say(SimpleNamespace(progress=True), "epoch 1/2  loss 3.100  4.0 s/epoch  ETA 4 s")
logging.getLogger("demod_voice.x").warning("a warning")
"""


def _lines_on(kind: str, tmp_path, code: str = CHILD) -> list[str]:
    """What the child running ``code`` wrote on a stderr that is ``kind``: a file, a pipe, or a socket (systemd's
    journal stream)."""
    command = [sys.executable, "-c", code]
    if kind == "file":
        log = tmp_path / "serve.log"
        with open(log, "wb") as handle:
            subprocess.run(command, stderr=handle, check=True, timeout=60)
        return log.read_text().splitlines()
    if kind == "pipe":
        return subprocess.run(command, stderr=subprocess.PIPE, check=True, timeout=60).stderr.decode().splitlines()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        subprocess.run(command, stderr=theirs, check=True, timeout=60)
        theirs.close()
        said = b""
        while piece := ours.recv(65536):
            said += piece
    return said.decode().splitlines()


@pytest.mark.parametrize("kind", ["file", "pipe", "journal-socket"])
def test_a_log_written_to_a_plain_file_says_when_each_line_happened(kind, tmp_path):
    """``serve 2> serve.log`` (nohup, tmux, systemd's ``StandardError=append:``) wrote no time on any line: nobody could
    tell when the voice failed or the server stopped. journald and docker stamp what comes through their pipe or socket
    themselves: a time there would be said twice."""
    lines = _lines_on(kind, tmp_path)
    assert len(lines) == 3, lines
    if kind == "file":
        assert all(STAMPED.match(line) for line in lines), lines
        assert [STAMPED.sub("", line) for line in lines] == ["warning: a warning", "some news",
                                                             "serving on http://127.0.0.1:5002"], lines
    else:
        assert lines == ["demod-voice: warning: a warning", "demod-voice: some news",
                         "demod-voice: serving on http://127.0.0.1:5002"], lines


@pytest.mark.parametrize("kind", ["file", "pipe"])
def test_a_batchs_progress_in_a_log_file_begins_as_the_logs_own_lines(kind, tmp_path):
    """``batch ... 2> run.log``: its status lines, failed rows and progress lines are printed beside the log's records,
    and had no time where the records came to have one."""
    lines = _lines_on(kind, tmp_path, BATCH)
    assert len(lines) == 5 and "row 2: no text" in lines[1] and "2 of 2 rows (100%)" in lines[3], lines
    assert all(bool(STAMPED.match(line)) == (kind == "file") for line in lines), lines


@pytest.mark.parametrize("kind", ["file", "pipe"])
def test_a_books_and_a_trainings_progress_in_a_log_file_begin_as_the_logs_own_lines(kind, tmp_path):
    """``book ... 2> book.log`` and ``piper-train ... 2> train.log`` (a night's run, read in the morning): their own lines
    (a chapter made, an epoch's losses and ETA) had no time beside the log's stamped records (hops3's found-and-left)."""
    lines = _lines_on(kind, tmp_path, BOOK_AND_TRAINING)
    assert len(lines) == 3 and "chapter 1: 12 takes made" in lines[0] and "epoch 1/2" in lines[1], lines
    assert all(bool(STAMPED.match(line)) == (kind == "file") for line in lines), lines


@pytest.mark.parametrize("level, shown", [("INFO", False), ("DEBUG", True)])
def test_the_pages_calls_to_its_own_api_are_not_logged_as_http_requests_at_v(level, shown):
    """At ``serve -v`` every action on the web page (its calls to the server's own API, in process through httpx) added a
    line "HTTP Request: POST http://127.0.0.1/v1/voices "HTTP/1.1 403 Forbidden"" beside the refusal's own line: an
    administrator read it as a request the server sent out. httpx's request lines are for ``-vv``."""
    code = f"""
import asyncio, logging
import httpx
from demod_voice.logs import configure_logging
configure_logging(logging.{level})

async def app(scope, receive, send):
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{{}}"}})

async def call():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        await client.get("/v1/voices")

asyncio.run(call())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ("HTTP Request: GET http://127.0.0.1/v1/voices" in done.stderr) is shown, done.stderr
