"""Limits for a child process that reads untrusted bytes (uploaded audio, an uploaded book)."""

from __future__ import annotations

import ctypes
import resource
import signal

PR_SET_PDEATHSIG = 1


def confine(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process's address space and CPU time, and have it killed when its parent dies.

    Called first thing in the child's own interpreter, not in ``preexec_fn``: the server has threads, and
    running Python between fork and exec is unsafe there.
    """
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    try:  # a reader never outlives a killed server
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
