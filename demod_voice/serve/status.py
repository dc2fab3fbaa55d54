"""Whether the server's extras are installed (``serve``, ``serve --wyoming``), and what ``health`` says
about them: checks the front doors hand to :func:`demod_voice.health.run_checks`, which itself knows
nothing of the server. Nothing here imports the server's packages at module level."""

from __future__ import annotations

from demod_voice.checks import OK, WARN, Check
from demod_voice.errors import DependencyError
from demod_voice.serve.wyoming.server import wyoming_status


def check_installed() -> None:
    """The ``serve`` extra: FastAPI, uvicorn, multipart parsing, PyAV, prometheus-client."""
    import importlib

    missing = []
    for name, module in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python-multipart", "python_multipart"), ("av", "av"),
                         ("prometheus-client", "prometheus_client")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(name)
    if missing:
        raise DependencyError(f"serve needs {', '.join(missing)}: pip install 'demod-voice[serve]'")


def serve_status() -> tuple[bool, str, str]:
    """For ``health``: (usable, what was found, how to fix it) for the ``serve`` extra and PyAV's encoders."""
    from importlib import metadata

    try:
        check_installed()
    except DependencyError as err:
        return False, str(err), "pip install 'demod-voice[serve]'"
    import av

    missing = []
    for name in ("libmp3lame", "libopus", "aac", "flac"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several kinds for an encoder its FFmpeg lacks
            missing.append(name)
    found = f"fastapi {metadata.version('fastapi')}, uvicorn {metadata.version('uvicorn')}, PyAV {av.__version__}"
    if missing:
        return False, f"{found}; PyAV's FFmpeg lacks the {', '.join(missing)} encoder(s)", "reinstall av from the registry's wheels"
    return True, f"{found} (mp3, opus, aac, flac encoders)", ""


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
