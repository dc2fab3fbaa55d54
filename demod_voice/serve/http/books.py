"""Books as a job API: ``POST /v1/books`` (a .txt, .md or .epub and a voice) -> a job id;
``GET /v1/books/{id}`` progress (``GET /v1/books``: every book of the caller's key), ``/result`` the ``.m4b`` (or a zip of the chapter files, captions
and report), ``DELETE /v1/books/{id}`` stops the book and deletes it with its files.

The upload is read as ``demod-voice book`` reads a file (:mod:`demod_voice.book.read`), but in a child process with
memory and CPU limits (:mod:`demod_voice.book.isolated`), never in the server; its job reads what the child read:
an EPUB's members are counted and capped before anything is inflated, and its XML is parsed with
entity expansion off (a package that declares entities is refused). A book is refused up front
when it cannot be read, holds nothing to read or more than ``book.serve_max_chars``. Voices are the
server's own: a Piper voice it offers, or an enrolled voice (XTTS). A book belongs to the key that
sent it: another key gets 404. Running, budgets, expiry: :mod:`demod_voice.serve.http.book_jobs`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from demod_voice.book.contents import EpubLimits
from demod_voice.book.isolated import read_isolated
from demod_voice.book.master import LOUDNESS, TRUE_PEAK
from demod_voice.book.voice import heard_speaker
from demod_voice.errors import DemodVoiceError, InputError, ModelMissing
from demod_voice.serve.errors import ApiError, file_name_shown, from_engine, quoted, redact
from demod_voice.serve.http import job_store
from demod_voice.serve.http.book_jobs import BOOK, READ, client_report, client_text, output_of, progress, start_book
from demod_voice.serve.http.deps import Context, Speaker, require
from demod_voice.serve.limits import save_upload
from demod_voice.serve.uploads import read_form
from demod_voice.serve.voices import UnknownVoice, alias_target, find_voice, profile_path, speak_with

router = APIRouter(dependencies=[Depends(require("speak"))])

KINDS = (".txt", ".md", ".markdown", ".epub")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ .-]{0,99}")
"""A client's file name kept as the book's (its stem is the title of a .txt or .md); others become ``book.SUFFIX``."""
FORMATS = ("m4b", "mp3", "opus", "flac")
MAX_RETAKES = 5


@router.post("/v1/books", status_code=202)
async def create(request: Request, ctx: Context, caller: Speaker) -> dict:
    """Multipart: ``book`` (the file), ``voice``; optional ``format`` (m4b, mp3, opus, flac), ``captions`` (srt, vtt),
    ``verify`` (true/false), ``retakes``, ``loudness`` (LUFS), ``true_peak`` (dBTP), ``language`` and ``speaker``
    (of the voice), ``normalize`` (true/false)."""
    await asyncio.to_thread(job_store.expire_jobs, ctx, BOOK)
    await asyncio.to_thread(job_store.check_storage, ctx, caller.owner)
    folder = job_store.reserve(ctx, BOOK, caller.owner)  # the cap, and this book's place under it, before any await
    job_id = folder.name
    try:
        form = await read_form(request, ctx.settings.limits, 1, ("book", "file"))
        upload, suffix = _upload(form)
        options = _options(ctx, form)
        (folder / "out").mkdir()
        saved = await save_upload(upload, folder, ctx.settings.limits, suffix)
        shown = Path(str(upload.filename)).name
        source = saved.rename(folder / (shown if PLAIN_NAME.fullmatch(shown) else f"book{suffix}"))
        summary = await asyncio.to_thread(_check_book, ctx, source)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job_store.write_state(folder, id=job_id, owner=caller.owner, state="queued", source=source.name, options=options, stage="queued",
                          done=0, total=summary["chars"], chapter=None, chapters=summary["chapters"], takes=None, audio_seconds=None,
                          failed_verification=None, outputs=[], error=None, created=job_store.now(), finished=None)
    await asyncio.to_thread(start_book, ctx, job_id)  # its budget is cut to its key's room on disk: every file stat'ed
    return {"id": job_id, "state": "queued", "title": summary["title"], "chapters": summary["chapters"], "chars": summary["chars"]}


@router.get("/v1/books")
async def listed(ctx: Context, caller: Speaker) -> dict:
    """This key's books, newest first, each as ``GET /v1/books/{id}`` shows it (another key's are never listed)."""
    return {"object": "list", "data": await asyncio.to_thread(job_store.owned, ctx, BOOK, caller.owner, progress)}


@router.get("/v1/books/{job_id}")
async def status(job_id: str, ctx: Context, caller: Speaker) -> dict:
    """Progress of a book: its stage (synthesis, verification, retakes, mastering), characters done of the stage's total."""
    return progress(job_store.job_dir(ctx, BOOK, job_id, caller.owner))


@router.delete("/v1/books/{job_id}")
async def delete(job_id: str, ctx: Context, caller: Speaker) -> dict:
    """Stop a book (its takes are cancelled) and delete it with every file it made."""
    folder = job_store.job_dir(ctx, BOOK, job_id, caller.owner)
    await asyncio.to_thread(job_store.delete_job, folder)
    return {"id": job_id, "deleted": True}


@router.get("/v1/books/{job_id}/result")
async def result(job_id: str, ctx: Context, caller: Speaker, archive: bool = False) -> FileResponse:
    """The ``.m4b`` of a finished book; a zip of every output, the captions and ``report.json`` when it made chapter
    files or captions, or with ``?archive=true`` (409 while it runs, or when it failed)."""
    folder = job_store.job_dir(ctx, BOOK, job_id, caller.owner)
    state = job_store.read_state(folder)
    if state.get("state") != "done":
        why = "fetch the result when it is done" if state.get("state") in job_store.ACTIVE else "it made no result"
        raise ApiError(409, f"book {job_id} is {state.get('state')}; {why}", code="not_finished")
    options = state.get("options", {})
    target = output_of(folder, options)
    if not archive and options.get("format", "m4b") == "m4b" and not options.get("captions"):
        return FileResponse(target, media_type="audio/mp4", filename=f"book-{job_id}.m4b")
    return FileResponse(await asyncio.to_thread(_zip, folder), media_type="application/zip", filename=f"book-{job_id}.zip")


# --- checking the request -------------------------------------------------------------------------


def _upload(form: Any) -> tuple[Any, str]:
    """The book's upload and its suffix (400 when missing or of a kind this server does not read)."""
    upload = form.get("book") or form.get("file")
    if not hasattr(upload, "read"):
        raise ApiError(400, "send the book (.txt, .md or .epub) as the multipart field 'book'", code="missing_file")
    suffix = Path(str(upload.filename or "")).suffix.lower()
    if suffix not in KINDS:
        raise ApiError(400, f"'{file_name_shown(upload.filename)}' is not a book this server reads: send a .txt, .md or .epub file",
                       code="bad_book")
    return upload, suffix


def _options(ctx: Any, form: Any) -> dict:
    """The form's options, checked (400 naming the field)."""
    fmt = _choice(form, "format", FORMATS, "m4b")
    captions = _choice(form, "captions", ("", "srt", "vtt"), "")
    retakes = int(_number(form, "retakes", 2, 0, MAX_RETAKES))
    return {"voice": _voice(ctx, form), "format": fmt, "captions": captions, "verify": _flag(form, "verify", False),
            "retakes": retakes, "loudness": _number(form, "loudness", -18.0, *LOUDNESS),
            "true_peak": _number(form, "true_peak", -1.0, *TRUE_PEAK), "normalize": _flag(form, "normalize", True)}


def _field(form: Any, name: str) -> Optional[str]:
    value = form.get(name)
    if value is None or hasattr(value, "read"):
        return None
    return str(value).strip()


def _choice(form: Any, name: str, choices: tuple[str, ...], default: str) -> str:
    value = _field(form, name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise ApiError(400, f"'{name}' must be one of {', '.join(c for c in choices if c)}, not '{quoted(value)}'", code="bad_option")
    return value.lower()


def _number(form: Any, name: str, default: float, low: float, high: float) -> float:
    value = _field(form, name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not low <= number <= high:
        raise ApiError(400, f"'{name}' must be a number from {low:g} to {high:g}, not '{quoted(value)}'", code="bad_option")
    return number


def _flag(form: Any, name: str, default: bool) -> bool:
    value = _field(form, name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ApiError(400, f"'{name}' must be true or false, not '{quoted(value)}'", code="bad_option")
    return value.lower() in ("true", "1", "yes")


def _voice(ctx: Any, form: Any) -> dict:
    """The voice that reads the book: any voice this server offers (``GET /v1/audio/voices``), found as a speech request
    finds one (cloned voices before voices that are models of their own; backends in registry order)."""
    name = _field(form, "voice") or ""
    language = _field(form, "language") or None
    speaker = _field(form, "speaker") or None
    if not name:
        raise ApiError(400, "name the voice that reads the book in the field 'voice' (GET /v1/audio/voices lists them)", code="missing_voice")
    found, speaker = _found(ctx, name, speaker)
    name = found.id
    if found.by_model:
        if language:
            raise ApiError(400, f"'language' is for cloned voices; '{quoted(name)}' speaks its own", code="bad_option")
        model = found.model_path or ""
        if speaker:
            _spoken(ctx, found, speaker)
        return {"kind": found.kind, "name": name, "path": model if Path(model).is_file() else "", "speaker": speaker}
    if speaker:
        raise ApiError(400, "'speaker' is for voices with several speakers; a cloned voice has one", code="bad_option")
    if language:
        _spoken(ctx, found, None, language)
    return {"kind": found.kind, "name": name, "language": language}


def _found(ctx: Any, name: str, speaker: Optional[str]) -> tuple[Any, Optional[str]]:
    """The voice ``name`` means, and the speaker: a voice alias (``serve.voices``, listed by ``GET /v1/audio/voices`` and
    spoken by speech, but "no voice" here) is the voice it names, with its own speaker."""
    aliases = ctx.settings.voices or {}
    if name in aliases:
        if speaker:
            raise ApiError(400, f"'{quoted(name)}' is a voice alias with its own speaker: leave 'speaker' out", code="bad_option")
        try:
            return alias_target(ctx, name, aliases[name])
        except UnknownVoice as err:
            raise ApiError(404, str(err), code="unknown_voice") from None
    found = find_voice(ctx, name)
    if found is None:
        try:
            profile_path(ctx, name)  # a name that could form a path is refused as such
        except InputError as err:
            raise ApiError(400, str(err), code="bad_voice_id") from None
        raise ApiError(404, f"there is no voice '{quoted(name)}' on this server (GET /v1/audio/voices)", code="unknown_voice")
    return found, speaker


def _spoken(ctx: Any, voice: Any, speaker: Optional[str], language: Optional[str] = None) -> None:
    """400 for a speaker the voice does not have, or a language it cannot speak, before the book is queued: the job read
    it with the one speaker of a single-speaker voice without a word, and a speaker a voice of several lacks (or a
    language like ``xx``) failed the book only once it ran."""
    try:
        speech = speak_with(ctx, voice, speaker, language)
        if speaker:
            heard_speaker(speech, voice.id, speaker)
    except ModelMissing as err:  # damaged since it was listed: the server's to fix, in the administrator's words
        raise from_engine(err) from None
    except InputError as err:
        raise ApiError(400, redact(str(err)), code="bad_option") from None
    except DemodVoiceError as err:  # a language whose package is missing here (Chinese without pypinyin): 503
        raise from_engine(err) from None


def _check_book(ctx: Any, source: Path) -> dict:
    """Read the book in a limited child process (EPUB caps, no entities, characters bounded), and keep what it read for
    the job (``read.json``): 413 when over the book's limits, 400 for anything unreadable; messages name the book's
    file, never a server path."""
    settings = ctx.config.book
    if source.stat().st_size > settings.serve_max_upload_mb * 1_000_000:
        raise ApiError(413, f"'{source.name}' is larger than {settings.serve_max_upload_mb:g} MB (book.serve_max_upload_mb)",
                       code="upload_too_large")
    limits = EpubLimits(settings.max_epub_members, settings.max_member_mb << 20, settings.max_unpacked_mb << 20)
    serve_limit = settings.serve_max_chars <= settings.max_chars
    try:
        book = read_isolated(source, limits, min(settings.max_chars, settings.serve_max_chars), source.parent / READ)
    except InputError as err:
        message = client_text(str(err), source.parent)
        if "book.max_chars" in message:
            raise ApiError(413, message.replace("book.max_chars", "book.serve_max_chars") if serve_limit else message,
                           code="book_too_long") from None
        raise ApiError(400, message, code="bad_book") from None
    return {"title": book.title, "chapters": len(book.chapters), "chars": sum(c.chars for c in book.chapters)}


def _zip(folder: Path) -> Path:
    """Every output (the .m4b or chapter files), the captions and the report, by name (no server path leaves)."""
    return job_store.result_zip(folder, folder / "takes" / "report.json", "report.json", client_report)

