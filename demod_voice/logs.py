"""Logging set-up shared by every front door and the workers: one line per record on stderr."""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from datetime import datetime
from typing import Optional, TextIO

PROG = "demod-voice"


class LogFormatter(logging.Formatter):
    """``demod-voice: warning: message`` (level omitted for info), one line per record; with ``times``, the local time
    first (``2026-12-07 09:05:12.345+00:00 demod-voice: ...``)."""

    def __init__(self, times: bool = False) -> None:
        super().__init__()
        self.times = times

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno != logging.INFO:
            message = f"{record.levelname.lower()}: {message}"
        return f"{stamp(record.created) if self.times else ''}{PROG}: {message}"


def stamp(created: float) -> str:
    """The time ``created`` (seconds since the epoch) as it begins a line of a log file: local, to the millisecond, with
    its offset from UTC."""
    return datetime.fromtimestamp(created).astimezone().isoformat(sep=" ", timespec="milliseconds") + " "


def read_later(stream: TextIO) -> bool:
    """Whether lines written to ``stream`` are read later from a plain file (``2> serve.log``, nohup's ``nohup.out``,
    systemd's ``StandardError=append:``), which keeps no time: a person reading it could not tell when anything happened.
    A terminal is read as it is written; a pipe or a socket goes to what stamps each line itself (journald, whose
    ``JOURNAL_STREAM`` names that socket; docker; svlogd), where a time of ours would be said twice."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # a stream with no file (pytest's capture), or a closed one
        return False


def configure_logging(level: int, times: Optional[bool] = None) -> None:
    """Send log records of ``level`` and above to stderr (stdout is kept for data); ``times``: begin each line with the
    time (``None``: where stderr is a plain file, :func:`read_later`; a worker decides as its server does, on the same
    file)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter(read_later(sys.stderr) if times is None else times))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    if level > logging.DEBUG:
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
        # httpx says each request it sends at info: the web page's calls to the server's own API (in process) read, at
        # -v, as requests the server sent out
        logging.getLogger("httpx").setLevel(logging.WARNING)


def line(message: str) -> str:
    """``demod-voice: message``, begun with the time where the log's lines are (:func:`configure_logging`): a line written
    beside the log's own (a batch's progress, where a server listens) reads as they do."""
    times = any(isinstance(h.formatter, LogFormatter) and h.formatter.times for h in logging.getLogger().handlers)
    return f"{stamp(time.time()) if times else ''}{PROG}: {message}"


def printable(text: str) -> str:
    """``text`` for one log line: control characters escaped (a newline in a client's voice name, or in an SSML
    attribute a warning quotes, forged a log line)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def say(message: str) -> None:
    """:func:`line` on stderr, whatever the log level."""
    print(line(message), file=sys.stderr, flush=True)
