"""Limits for a child process that reads untrusted bytes (uploaded audio, an uploaded book), and the end of a child
with its parent."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
"""The folder holding this ``demod_voice`` package: where a child interpreter imports it from."""


def python_child(code: str = "", module: str = "") -> list[str]:
    """The command for a fresh interpreter of this Python that runs ``code``, or ``module`` as ``python -m`` would, and
    imports this ``demod_voice``. ``python -c`` and ``-m`` put the working folder first on the import path, so a child
    started where a folder named ``demod_voice`` (or ``ctypes``) lay ran that code: another checkout's, or whatever a
    downloaded folder held. The first statement (``sys`` is built in) puts this package's folder in its place."""
    run = code or f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    first = (f"import sys; sys.path[0:1] = [{PACKAGE_ROOT!r}] if sys.path and sys.path[0] in ('', '.') "
             f"else [{PACKAGE_ROOT!r}, *sys.path[0:1]]\n")
    return [sys.executable, "-c", first + run]


def reader_child(code: str) -> list[str]:
    """:func:`python_child` for a short-lived reader of untrusted bytes (an upload being decoded, a book being read) that
    ignores Ctrl-C, SIGTERM and SIGHUP from its first statement, before any import. The process that started it stops
    it (its time limit; and :func:`confine` kills it with its parent): systemd's default stop (``KillMode=control-group``)
    sends SIGTERM to every process of the service at once, and a reader that ended on it failed the upload the server
    was draining as not audio at all ("the decoder failed", 400)."""
    held = "import signal\nfor number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP): signal.signal(number, signal.SIG_IGN)\n"
    return python_child(held + code)


def confine(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process's address space and CPU time, and have it killed when its parent dies.

    Called first thing in the child's own interpreter, not in ``preexec_fn``: the server has threads, and
    running Python between fork and exec is unsafe there.
    """
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    die_with_parent(signal.SIGKILL)  # a reader never outlives a killed server


def die_with_parent(sig: int = signal.SIGTERM, parent: int = 0) -> None:
    """Have this process sent ``sig`` when the process that started it ends, however it ends (Linux's parent-death
    signal; elsewhere nothing). ``parent``: that process's pid, when known: if it has ended already, ``sig`` comes now."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os.kill(os.getpid(), sig)
