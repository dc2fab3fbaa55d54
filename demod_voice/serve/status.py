"""What ``health`` says about the server's extras (``serve``, ``serve --wyoming``): checks the front
doors hand to :func:`demod_voice.health.run_checks`, which itself knows nothing of the server."""

from __future__ import annotations

from demod_voice.checks import OK, WARN, Check
from demod_voice.serve.server import serve_status
from demod_voice.serve.wyoming.server import wyoming_status


def check_serve() -> Check:
    """The ``serve`` extra (optional: its absence only warns)."""
    usable, detail, fix = serve_status()
    return Check("serve", OK if usable else WARN, detail, fix, needed_by=())


def check_wyoming() -> Check:
    """The ``wyoming`` extra for ``serve --wyoming`` (optional: its absence only warns)."""
    usable, detail, fix = wyoming_status()
    return Check("wyoming", OK if usable else WARN, detail, fix, needed_by=())


SERVER_CHECKS = (check_serve, check_wyoming)
"""The checks ``health`` and the page's Health tab add after the backends'."""
