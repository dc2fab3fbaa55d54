"""Uploaded recordings, decoded away from the server: any format FFmpeg reads becomes a plain WAV.

Untrusted bytes are parsed by FFmpeg (through PyAV) in a short-lived child process with
memory and CPU limits, never in the server itself: a malformed file that crashes or hangs a
decoder costs one child. The child writes 16-bit mono PCM (at the file's rate, at most 48 kHz)
and stops as soon as the audio passes the allowed length, whatever the header claims.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from demod_voice.audio.decode import NO_SOUND, NoSound, TooLong, decode_to_wav, plain_error, without_paths
from demod_voice.sandbox import confine, reader_child
from demod_voice.serve.errors import ApiError, file_name_shown
from demod_voice.serve.limits import FORM_TYPES, check_content_length, media_type, not_a_form, save_upload, upload_limit
from demod_voice.voices.profiles import is_profile_file

log = logging.getLogger(__name__)

MEMORY_LIMIT = 1 << 30
"""Address space of the decoding child (bytes)."""
CPU_SECONDS = 60
TIMEOUT = 90
MAX_RATE = 48000


async def decode_uploads(uploads: list, work: Path, limits: Any, shared: bool, sources: int = 0) -> list[tuple[Path, float]]:
    """Each upload saved under a name of ours, then decoded (:func:`decode_reference`) to a WAV ``work/INDEX/NAME``, NAME
    the client's file name made safe (:func:`decoded_name`), so that a later check naming the file (too short, silent)
    names the client's file, not ours. ``shared``: their lengths together within ``serve.limits.max_reference_seconds`` (an enrollment's
    references); else each of them (a conversion's source and references). The first ``sources`` uploads are recordings to
    convert, not references (what a too long one is told differs). ``(wav, seconds)`` for each."""
    import asyncio

    out: list[tuple[Path, float]] = []
    total = 0.0
    for index, upload in enumerate(uploads):
        saved = await save_upload(upload, work, limits)
        shown = file_name_shown(upload.filename)
        wav = work / str(index) / decoded_name(shown)
        wav.parent.mkdir()
        budget = limits.max_reference_seconds - total if shared else limits.max_reference_seconds
        try:
            seconds = await asyncio.to_thread(decode_reference, saved, wav, budget, shown, index < sources)
        except ApiError as err:
            if err.code == "reference_too_long" and shared and out:
                raise too_long_together(limits.max_reference_seconds, shown, total) from None
            raise
        saved.unlink()
        total += seconds
        out.append((wav, seconds))
    return out


def too_long_together(limit: float, shown: str, before: float) -> ApiError:
    """413 for recordings of one voice longer than ``limit`` together, ``shown`` the one that went past it after ``before``
    seconds in the ones before it. It was "'b.wav' is longer than 10 s of audio (serve.limits.max_reference_seconds)": what
    was left of the limit, named as the limit, for a file of 20 s."""
    return ApiError(413, f"the recordings are longer than {limit:g} s of audio together (serve.limits.max_reference_seconds, "
                         f"all files of one voice): '{shown}' goes past it after {before:.1f} s in the files before it; send "
                         "fewer or shorter recordings (6-30 s in all is enough for a voice reference)", code="reference_too_long")


def decoded_name(name: str) -> str:
    """The name a decoded upload is kept under: the client's own (its last part, printable), suffix and all, so that a
    check naming the file names the file the client sent (a silent ``take.m4a`` was "reference take.wav is silent").
    The content is a WAV whatever the suffix: the readers tell it by its header. ``.raw`` alone is taken by libsndfile
    as headerless audio, so such a name ends in ``.wav``."""
    name = name.replace("\\", "_").strip(". ") or "recording"
    stem, dot, suffix = name.rpartition(".")
    if not (dot and stem) or len(suffix) > 8 or " " in suffix:  # no suffix, or a dot inside a name ("Mr. Smith speaking")
        stem, suffix = name, ""
    suffix = "wav" if suffix.lower() == "raw" else suffix
    return f"{stem[:60]}.{suffix}" if suffix else stem[:60]


def decode_reference(source: Path, target: Path, max_seconds: float, shown_name: str, to_convert: bool = False) -> float:
    """Decode ``source`` into a WAV at ``target`` in a child process; return its seconds.

    400 when it is not decodable audio (or holds none), 413 when longer than ``max_seconds``: a reference is told that a
    part of it is enough, a recording ``to_convert`` (a conversion's source, whose every second is wanted) how to have it
    converted whole.
    """
    command = [*reader_child("from demod_voice.serve.uploads import _child; _child()"), str(source), str(target), str(max_seconds)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ApiError(400, f"'{shown_name}' took too long to decode; send a plain wav, flac, mp3 or ogg file",
                       code="bad_audio") from None
    try:
        answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        log.debug("decoder child ended with %s: %s", done.returncode, done.stderr[-2000:])
        raise ApiError(400, f"'{shown_name}' could not be decoded as audio (the decoder failed)", code="bad_audio") from None
    if answer.get("error") == "too_long":
        advice = (f"convert it in parts of up to {max_seconds:g} s, or whole with 'demod-voice convert' on the command line"
                  if to_convert else "send a shorter part of it (6-30 s is enough for a voice reference)")
        raise ApiError(413, f"'{shown_name}' is longer than {max_seconds:g} s of audio (serve.limits.max_reference_seconds): "
                            f"{advice}", code="reference_too_long")
    if answer.get("error") == "no_sound":
        raise ApiError(400, f"'{shown_name}' {NO_SOUND}", code="bad_audio")
    if answer.get("error") == "profile":  # a downloaded voice sent as a recording: "not a format FFmpeg recognises"
        raise ApiError(400, f"'{shown_name}' is a saved voice (a profile downloaded from /v1/voices/ID/download), not a "
                            "recording: install it with POST /v1/voices/import (multipart field 'file')", code="bad_audio")
    if answer.get("error"):
        why = without_paths(str(answer["error"]), source, target)
        raise ApiError(400, f"'{shown_name}' is not audio that can be read ({why}); use wav, flac, mp3, ogg, m4a...",
                       code="bad_audio")
    return float(answer["seconds"])


async def read_form(request: Any, limits: Any, max_files: int, file_fields: tuple[str, ...] = ()) -> Any:
    """A request's multipart form, parts bounded (the body as a whole was bounded by the request guard); 400 for a
    body the parser cannot read, or one whose ``file_fields`` came as text (:func:`not_a_file`)."""
    from starlette.exceptions import HTTPException

    if media_type(request.headers.get("content-type")) not in FORM_TYPES:
        raise not_a_form(request.url.path)
    check_content_length(request.headers, limits)
    try:
        form = await request.form(max_files=max_files, max_fields=16, max_part_size=min(upload_limit(limits), 1 << 20))
    except Exception as err:  # noqa: BLE001 - the multipart parser raises several kinds for a malformed body
        if isinstance(err, HTTPException) and str(err.detail).startswith(TEXT_TOO_BIG):
            raise not_a_file(file_fields[0] if file_fields else "file", "a form field of over 1 MiB") from None
        if isinstance(err, (ApiError, HTTPException)):  # HTTPException: the body passed its limit (guard.BodyTooLarge)
            raise
        raise ApiError(400, f"the multipart body could not be read ({type(err).__name__}: {str(err)[:120]})", code="bad_multipart") from None
    for field in file_fields:
        if any(isinstance(value, str) for value in form.getlist(field)):
            raise not_a_file(field, f"the field '{field}'")
    return form


TEXT_TOO_BIG = ("Part exceeded maximum size", "Field exceeded maximum size")
"""How Starlette begins its refusal of a text part over ``max_part_size`` (a file part has no such limit)."""


def not_a_file(field: str, what: str) -> ApiError:
    """400 for a file sent as a text part, with no file name: ``curl -F 'files=<take.m4a'`` (``<`` reads the file into a text
    field), OkHttp's ``createFormData`` given no file name. It was "send ... as the multipart field 'files'", the field
    the client had sent, or, over 1 MiB, "not a valid multipart/form-data body"."""
    return ApiError(400, f"{what} came as text, not as a file: send each file as a file part with a file name "
                         f"(curl -F '{field}=@FILE', not '{field}=<FILE')", code="not_a_file")


def _child() -> None:
    """In the child: decode ``argv[1]`` to a WAV at ``argv[2]``, at most ``argv[3]`` seconds; print one JSON line."""
    confine(MEMORY_LIMIT, CPU_SECONDS)
    source, target, max_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    try:
        seconds = decode_to_wav(source, target, max_seconds, MAX_RATE, own_audio_only=True)
    except TooLong:
        Path(target).unlink(missing_ok=True)
        print(json.dumps({"error": "too_long"}))
        return
    except NoSound:
        Path(target).unlink(missing_ok=True)
        print(json.dumps({"error": "no_sound"}))
        return
    except Exception as err:  # noqa: BLE001 - any decoder failure is reported as one line
        Path(target).unlink(missing_ok=True)
        print(json.dumps({"error": "profile" if is_profile_file(Path(source)) else plain_error(err, Path(source), Path(target))}))
        return
    print(json.dumps({"seconds": seconds}))
