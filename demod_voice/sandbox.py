"""Limits for a child process that reads untrusted bytes (uploaded audio, an uploaded book), and the end of a child
with its parent."""

from __future__ import annotations

import ctypes
import os
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
