"""Logging set-up shared by every front door and the workers: one line per record on stderr."""

from __future__ import annotations

import logging
import sys

PROG = "demod-voice"


class LogFormatter(logging.Formatter):
    """``demod-voice: warning: message`` (level omitted for info), one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return f"{PROG}: {message}"
        return f"{PROG}: {record.levelname.lower()}: {message}"


def configure_logging(level: int) -> None:
    """Send log records of ``level`` and above to stderr (stdout is kept for data)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    if level > logging.DEBUG:
        logging.getLogger("py.warnings").setLevel(logging.ERROR)


