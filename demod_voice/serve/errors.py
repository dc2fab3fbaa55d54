"""How failures reach HTTP clients: OpenAI's error shape, the right status, one line that says what to do.

``{"error": {"message": ..., "type": ..., "code": ...}}``; no traceback ever leaves the server.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

from demod_voice.backends.plugin import UnknownVoice
from demod_voice.errors import Cancelled, DemodVoiceError, DependencyError, InputError, ModelMissing, QueueFull, RuntimeFailure
from demod_voice.logs import printable

log = logging.getLogger(__name__)

_PATH = re.compile(r"(?<![\w:/.])(?:~|\.{1,2})?/(?:[^\s'\"/]+/)+([^\s'\"/]*)")


class ApiError(Exception):
    """A refusal with its HTTP status (and headers such as ``Retry-After``)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: Optional[str] = None,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body."""
        return {"error": {"message": sendable(str(self)), "type": self.kind, "code": self.code}}


def sendable(message: str) -> str:
    """``message`` as UTF-8 can carry it: a message may quote what a client sent, and a lone surrogate in it failed the
    answer's encoding (an HTTP 500; a Wyoming connection closed with a traceback). Such characters are escaped (``\\ud800``)."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def quoted(text: Any, most: int = 80) -> str:
    """What a message may quote of a client's text: its printable characters, at most ``most`` (cut with ``...``)."""
    shown = "".join(ch for ch in str(text) if ch.isprintable())
    return shown if len(shown) <= most else shown[: most - 3] + "..."


def file_name_shown(name: Any) -> str:
    """A client's file name, safe to quote: its last part (after either slash), printable, short."""
    return quoted(str(name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()) or "(unnamed)"


def redact(text: str) -> str:
    """``text`` with every file path cut to its last part: no server path reaches a client."""
    return _PATH.sub(lambda match: match.group(1) or "(folder)", str(text))


def client_text(err: BaseException) -> str:
    """What a client of any front door (HTTP, Wyoming, the page) reads for ``err``: a missing model in the
    administrator's words (:class:`~demod_voice.errors.ModelMissing`), a failure of the work with its paths cut to their
    last part (a backend's load error names its model file, a plugin's exception whatever file it opened: the server's
    layout is not the client's business), anything else as it is (a refusal may quote what the client sent)."""
    if isinstance(err, ModelMissing):
        return err.server_message
    return redact(str(err)) if isinstance(err, RuntimeFailure) else str(err)


def servers_to_fix(err: Exception) -> bool:
    """Whether ``err`` is the server's to fix (a model damaged or missing, a package missing, a failed synthesis), not
    the client's (its request, a full queue, a cancellation)."""
    if isinstance(err, (ModelMissing, DependencyError)):
        return True
    return isinstance(err, RuntimeFailure) and not isinstance(err, (QueueFull, Cancelled))


def log_for_server(err: Exception) -> None:
    """Say in the server's log, in the server's own words, a failure its administrator must fix (a voice damaged on its
    disk answered 503 to every request and the log said nothing: the client's message names no path, by design, so
    nobody could tell which file to install again)."""
    if servers_to_fix(err):
        log.warning("a request failed: %s", printable(str(err)))


def from_engine(err: DemodVoiceError) -> ApiError:
    """The HTTP answer for an error raised by voice resolution or the engine (:func:`log_for_server` first)."""
    log_for_server(err)
    if isinstance(err, QueueFull):
        return queue_full(err)
    if isinstance(err, UnknownVoice):
        return ApiError(404, str(err), code=err.code)
    if isinstance(err, ModelMissing):  # the server's to fix, not the client's: no paths, no command-line flags
        return ApiError(503, client_text(err), "server_error", err.code)
    if isinstance(err, InputError):
        return ApiError(400, str(err), code="bad_input")
    if isinstance(err, DependencyError):
        return ApiError(503, client_text(err), "server_error", "missing_dependency")
    if isinstance(err, Cancelled):
        return ApiError(503, client_text(err), "server_error", "cancelled")
    return ApiError(500, client_text(err), "server_error", "synthesis_failed")


def queue_full(err: Any) -> ApiError:
    """429 with ``Retry-After`` for the engine's :class:`~demod_voice.errors.QueueFull`."""
    seconds = max(1, int(round(getattr(err, "retry_after", 1.0))))
    return ApiError(429, f"the server is busy ({err}); retry after {seconds} s", "rate_limit_error", "queue_full",
                    {"Retry-After": str(seconds)})
