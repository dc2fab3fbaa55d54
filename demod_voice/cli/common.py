"""What every subcommand shares: the log level from -v/-q, and the effective settings."""

from __future__ import annotations

import argparse
import logging
from typing import Any, Optional

log = logging.getLogger(__name__)


def log_level(args: argparse.Namespace) -> int:
    """-q: errors only; default: warnings; -v: info; -vv: debug."""
    if getattr(args, "quiet", False):
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(getattr(args, "verbose", 0), logging.DEBUG)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars: when stderr is a terminal (a log file or a pipe gets none), or when --progress asks; never with -q."""
    import sys

    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def load_settings(args: argparse.Namespace, overrides: Optional[dict[str, Any]] = None):
    """The effective config for this invocation: defaults < file < environment < flags."""
    from demod_voice.config import load_config

    flags = {"device": getattr(args, "device", None), **(overrides or {})}
    config, path = load_config(getattr(args, "config", None), overrides=flags)
    log.debug("config file: %s", path or "none (defaults)")
    return config


# --- xtts-zero-shot ------------------------------------------------------------

