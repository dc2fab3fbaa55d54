"""What one request may ask: each limit is a config key (``serve.limits``) with a clear 4xx answer.

Input characters and upload sizes: 413. A full engine queue: 429 with ``Retry-After``. A
request unfinished at its deadline: 504 (and its job is cancelled). Voice ids never form paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from demod_voice.batch.rows import text_problem
from demod_voice.serve.errors import ApiError, file_name_shown
from demod_voice.serve.errors import queue_full as queue_full  # defined beside ApiError (no errors <-> limits circle)
from demod_voice.voices.profiles import NAME, name_rule

READ_BLOCK = 1 << 16


def check_input(text: str, limits: Any) -> str:
    """The text to speak: not empty, at most ``max_input_chars`` (413)."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "'input' is empty: give the text to speak", code="empty_input")
    problem = text_problem(text)
    if problem:
        raise ApiError(400, f"'input' {problem}; send plain UTF-8 text", code="bad_text")
    if len(text) > limits.max_input_chars:
        raise ApiError(413, f"'input' has {len(text)} characters; this server takes at most {limits.max_input_chars} per request "
                            "(serve.limits.max_input_chars): split the text", code="input_too_long")
    return text


def check_voice_id(name: str) -> str:
    """A voice id: letters, digits, ``_ . -``, up to 64, not starting with ``. - _`` (never a path)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(400, f"'{str(name)[:80]}' is not a valid voice id: {name_rule(name)}", code="bad_voice_id")
    return name


def media_type(content_type: Optional[str]) -> str:
    """A ``Content-Type`` header's type alone, lower case (``multipart/form-data; boundary=x`` -> ``multipart/form-data``)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


FORM_ROUTES = {"/v1/voices": "-F name=alice -F files=@ref.wav", "/v1/voices/import": "-F file=@alice.npz",
               "/v1/batch": "-F csv=@rows.csv -F references=@ref.wav", "/v1/books": "-F book=@novel.epub -F voice=en_US-joe-medium",
               "/v1/audio/conversions": "-F file=@take.wav -F voice=alice"}
"""The POST routes that read a multipart form (through :func:`demod_voice.serve.uploads.read_form`), each with its own
fields as curl sends them, for the 415 (every route said the voices' fields)."""


def not_a_form(path: str) -> ApiError:
    """415 for a form route sent something else (JSON, or a recording as the raw body)."""
    example = FORM_ROUTES.get(path.rstrip("/"), "-F name=value -F file=@file")
    return ApiError(415, f"send this as a multipart/form-data form, its files as file fields (curl {example})", code="not_a_form")


def upload_limit(limits: Any) -> int:
    """Bytes one upload may hold."""
    return int(limits.max_upload_mb * 1_000_000)


def check_content_length(headers: Any, limits: Any) -> None:
    """Refuse a request body announced larger than the upload limit before reading it (413)."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > upload_limit(limits) + 1_000_000:
        raise ApiError(413, f"the request is {int(declared) / 1e6:.1f} MB; uploads are limited to {limits.max_upload_mb:g} MB "
                            "(serve.limits.max_upload_mb)", code="upload_too_large")


async def save_upload(upload: Any, folder: Path, limits: Any, suffix: str = "") -> Path:
    """Stream an uploaded file into a new file in ``folder`` under a name of ours (never the client's);
    413 as soon as it passes the limit, and nothing left behind."""
    limit = upload_limit(limits)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=suffix)
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            while block := await upload.read(READ_BLOCK):
                size += len(block)
                if size > limit:
                    raise ApiError(413, f"upload '{file_name_shown(upload.filename)}' is larger than {limits.max_upload_mb:g} MB "
                                        "(serve.limits.max_upload_mb)", code="upload_too_large")
                handle.write(block)
    except BaseException:
        os.unlink(name)
        raise
    if size == 0:
        os.unlink(name)
        raise ApiError(400, f"upload '{file_name_shown(upload.filename)}' is empty", code="empty_upload")
    return Path(name)


def deadline_error(seconds: float) -> ApiError:
    """504 for a request past ``deadline_seconds``."""
    return ApiError(504, f"the request did not finish within {seconds:g} s (serve.limits.deadline_seconds); it was cancelled",
                    "server_error", "deadline_exceeded")
