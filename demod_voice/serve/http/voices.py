"""Voice enrollment: ``/v1/voices`` (enroll, list, show, rename, delete, download, import).

Enrolling (multipart: ``name``, one or more reference files in any format, ``language``)
decodes each upload in a child process, checks the references, then submits the enrollment
job ``voices add`` submits (:mod:`demod_voice.voices.making`): a worker computes the
conditioning and gives it back as the job's value, which is stored as the profile: it is then
used by every request, never recomputed. A profile downloads as its portable
``.npz`` and imports on another server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field, StrictStr

from demod_voice.audio.decode import looks_like_audio
from demod_voice.backends import registry
from demod_voice.engine.handles import Priority
from demod_voice.errors import DemodVoiceError, InputError, QueueFull
from demod_voice.models.registry import installed_xtts_identity
from demod_voice.paths import write_text_atomic
from demod_voice.serve.auth import Caller
from demod_voice.serve.errors import ApiError, file_name_shown, from_engine
from demod_voice.serve.http.deps import Context, Enroller, require
from demod_voice.serve.limits import check_voice_id, deadline_error, queue_full, save_upload
from demod_voice.serve.uploads import decode_uploads, read_form
from demod_voice.serve.voices import (
    ENROLLING_RETRY_AFTER,
    find_voice,
    load_profile,
    owned_voices,
    profile_path,
    refuse_if_enrolling,
    remove_side_files,
    reserved_names,
    scope,
    side_car,
    voice_language,
)
from demod_voice.voices.making import NameTaken, check_free, recordings_of, save_enrolled
from demod_voice.voices.profiles import read_profile, write_renamed
from demod_voice.voices.references import checked_once

router = APIRouter(dependencies=[Depends(require("speak"))])
"""Reading voices: every ``speak`` key."""
manage = APIRouter(dependencies=[Depends(require("enroll"))])
"""Making, importing, downloading and deleting voices: ``enroll`` keys."""

FILE_FIELDS = ("files", "file", "reference", "references", "files[]")
MAX_FILES = 8


def _describe(ctx: Any, name: str) -> dict:
    profile = load_profile(ctx, name)
    if profile is None:
        refuse_if_enrolling(ctx, name)
        other = find_voice(ctx, name)  # "there is no voice" for a voice /v1/audio/voices lists sent clients looking for a typo
        if other is not None:
            raise ApiError(404, f"'{name}' is an installed {other.kind_label or other.kind} voice, not an enrolled one: "
                                "/v1/voices shows enrolled voices, GET /v1/audio/voices lists every voice", code="not_enrolled")
        raise ApiError(404, f"there is no voice '{name}' (GET /v1/voices lists them)", code="unknown_voice")
    return {"id": profile.name, "name": profile.name, "kind": registry.cloner().name, "language": voice_language(ctx, name),
            "created": profile.created, "references": len(profile.references), "model": profile.model, "digest": profile.digest}


@router.get("/v1/voices")
async def list_profiles(ctx: Context) -> dict:
    """Enrolled voices (XTTS profiles)."""
    names = sorted(p.name[: -len(".npz")] for p in ctx.profiles.glob("*.npz")) if ctx.profiles.is_dir() else []
    voices = []
    for name in names:
        try:
            voices.append(_describe(ctx, name))
        except (ApiError, InputError):
            continue  # damaged or oddly named files are not voices
    return {"voices": voices}


@router.get("/v1/voices/{voice_id}")
async def show(voice_id: str, ctx: Context) -> dict:
    """One enrolled voice."""
    return _describe(ctx, check_voice_id(voice_id))


@manage.delete("/v1/voices/{voice_id}")
async def delete(voice_id: str, ctx: Context) -> dict:
    """Remove an enrolled voice."""
    path = profile_path(ctx, check_voice_id(voice_id))
    if not path.is_file():
        raise _not_enrolled(ctx, voice_id, "deleted")
    not_aliased(ctx, voice_id, "deleted")
    references = _references_of(ctx, voice_id)
    path.unlink()
    remove_side_files(ctx, voice_id, references)
    return {"id": voice_id, "deleted": True}


def _references_of(ctx: Any, voice_id: str) -> tuple[str, ...]:
    """The hashes of the recordings a profile was made from (none for a damaged one: it is deleted all the same)."""
    try:
        profile = load_profile(ctx, voice_id)
    except DemodVoiceError:
        return ()
    return profile.references if profile is not None else ()


def _not_enrolled(ctx: Any, voice_id: str, done: str) -> ApiError:
    """The refusal for ``voice_id`` when no profile has that name: an installed voice (409) or nothing (404)."""
    other = find_voice(ctx, voice_id)  # a voice the server offers that is not enrolled here (an installed Piper voice)
    if other is not None:
        return ApiError(409, f"'{voice_id}' is an installed {other.kind_label or other.kind} voice, not an enrolled one: "
                             f"only enrolled voices are {done} here (the server's administrator manages installed ones)",
                        code="not_enrolled")
    return ApiError(404, f"there is no enrolled voice '{voice_id}' (GET /v1/voices lists them)", code="unknown_voice")


class Rename(BaseModel):
    """``PATCH /v1/voices/{id}``'s body."""

    name: StrictStr = Field(..., description="The voice's new name (letters, digits, '_', '.' or '-')")


@manage.patch("/v1/voices/{voice_id}")
async def rename(voice_id: str, change: Rename, ctx: Context) -> dict:
    """Give an enrolled voice a new name, its recordings not sent again: its conditioning is written under the new name
    (the name is part of the profile's digest), its language kept, the old name removed."""
    old, new = check_voice_id(voice_id), check_voice_id(change.name)
    profile = load_profile(ctx, old)
    if profile is None:
        raise _not_enrolled(ctx, old, "renamed")
    if new == old:
        return _describe(ctx, old)
    not_aliased(ctx, old, "renamed")
    free_name(ctx, new)
    target = profile_path(ctx, new)
    with claimed(ctx, old), claimed(ctx, new):
        if target.exists():
            raise ApiError(409, f"a voice '{new}' exists already: pick another name, or delete that one first", code="voice_exists")
        language = voice_language(ctx, old)
        await asyncio.to_thread(write_renamed, profile, target, new, profile.created, language)
        _write_side(ctx, new, language, side_car(ctx, old).get("owner"))
        profile_path(ctx, old).unlink(missing_ok=True)
        remove_side_files(ctx, old)
    return _describe(ctx, new)


@manage.get("/v1/voices/{voice_id}/download")
async def download(voice_id: str, ctx: Context) -> FileResponse:
    """The portable profile file (import it with ``POST /v1/voices/import`` or ``voices import``)."""
    _describe(ctx, check_voice_id(voice_id))
    return FileResponse(profile_path(ctx, voice_id), media_type="application/octet-stream", filename=f"{voice_id}.npz")


@manage.post("/v1/voices/import", status_code=201)
async def import_voice(request: Request, ctx: Context, caller: Enroller) -> JSONResponse:
    """Install a downloaded profile (multipart ``file``; ``name`` installs it under another name than it was exported with,
    as ``voices import --name`` does: two people's exports both called 'me'; ``force=true`` replaces one of the same name)."""
    form = await read_form(request, ctx.settings.limits, MAX_FILES + 1, ("file", *FILE_FIELDS))
    upload = next((form[f] for f in FILE_FIELDS if f in form and hasattr(form[f], "read")), None)
    if upload is None:
        raise ApiError(400, "send the profile file as the multipart field 'file'", code="missing_file")
    renamed = check_voice_id(str(form.get("name"))) if str(form.get("name") or "").strip() else ""
    # checked as an enrollment's: any text (a megabyte, markup) was kept and listed to all; none: the file's own, below
    given = _language(ctx, form) if form.get("language") else ""
    with tempfile.TemporaryDirectory(dir=ctx.data_dir) as work:
        saved = await save_upload(upload, Path(work), ctx.settings.limits, ".npz")
        if looks_like_audio(saved):  # was "... is not a demod-voice profile (not a zip archive); export one with 'voices export'"
            raise ApiError(400, f"'{file_name_shown(upload.filename)}' is a recording, not a voice profile: enroll it with POST "
                                "/v1/voices (fields 'name' and 'files'); import takes a file from /v1/voices/ID/download",
                           code="bad_profile")
        try:
            profile = await asyncio.to_thread(read_profile, saved)
        except InputError as err:
            raise ApiError(400, str(err).replace(str(saved), f"'{upload.filename}'"), code="bad_profile") from None
        model = await asyncio.to_thread(_server_model, ctx)
        again = bool(model) and profile.model != model  # downloaded from a server with another XTTS model: made again here
        if again:
            try:
                recordings = await asyncio.to_thread(recordings_of, profile, Path(work))
            except InputError as err:
                raise ApiError(400, str(err), code="other_model") from None
        # the language it was enrolled with travels in the file: a French voice downloaded and imported spoke English
        language = given or _language(ctx, {"language": profile.language})
        name = renamed or profile.name
        free_name(ctx, name)
        target = profile_path(ctx, name)
        with claimed(ctx, name, caller.owner):
            _refuse_existing(target, name, form, "import it under another name (the field 'name'), ")
            within_quota(ctx, caller, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if again:
                await _condition(ctx, name, recordings, target, language)
            elif name == profile.name and given in ("", profile.language):
                shutil.move(str(saved), target)
            else:  # the name and language are inside the file, under its digest
                await asyncio.to_thread(write_renamed, profile, target, name, profile.created, given)
            _write_side(ctx, name, language, caller.owner)
    return JSONResponse(_describe(ctx, name), status_code=201)


@manage.post("/v1/voices", status_code=201)
async def enroll(request: Request, ctx: Context, caller: Enroller) -> JSONResponse:
    """Enroll a voice from reference recordings (multipart: ``name``, ``files`` (one or more), ``language``, ``force``)."""
    form = await read_form(request, ctx.settings.limits, MAX_FILES + 1, FILE_FIELDS)
    if not str(form.get("name") or "").strip():  # was "'' is not a valid voice id": the client had sent no name at all
        raise ApiError(400, "give the voice a name in the multipart field 'name' (letters, digits, '_', '.' or '-'): "
                            "requests then speak with it as \"voice\": NAME", code="missing_name")
    name = check_voice_id(str(form.get("name")))
    language = _language(ctx, form)
    uploads = [item for field in FILE_FIELDS for item in form.getlist(field) if hasattr(item, "read")]
    if not uploads:
        raise ApiError(400, "send one or more reference recordings as the multipart field 'files'", code="missing_file")
    if len(uploads) > MAX_FILES:
        raise ApiError(413, f"at most {MAX_FILES} reference files per voice", code="too_many_files")
    free_name(ctx, name)
    target = profile_path(ctx, name)
    _refuse_existing(target, name, form)
    within_quota(ctx, caller, name)
    with claimed(ctx, name, caller.owner), tempfile.TemporaryDirectory(dir=ctx.data_dir) as work:
        references = await decode_uploads(uploads, Path(work), ctx.settings.limits, shared=True)
        warnings, speech = await asyncio.to_thread(_checked, references, ctx.settings.limits.max_reference_seconds)
        profile = await _condition(ctx, name, references, target, language)
        _write_side(ctx, name, language, caller.owner)
    return JSONResponse({**_describe(ctx, profile.name), "seconds": round(speech, 2), "warnings": warnings},
                        status_code=201)


def _language(ctx: Any, form: Any) -> str:
    """The form's ``language`` (the server's ``xtts.language`` when none), one the cloning backend speaks (400 otherwise).
    Its first 40 printable characters are what is checked (no language code is longer), as the refusal names what it was
    given: it echoed the whole field, a megabyte of it."""
    text = "".join(ch for ch in str(form.get("language") or "") if ch.isprintable())[:40]
    try:
        return registry.cloner().enroll_language(scope(ctx), text)
    except InputError as err:
        raise ApiError(400, str(err), code="bad_language") from None


def _checked(references: list, max_seconds: float) -> tuple[list[str], float]:
    """What the reference checks say about the recordings (too short, clipped, noisy), for the client as the command line
    shows them to its user: they went only to the server's log; and the seconds of speech the voice is learnt from (their
    silence at the start and end left out, a recording sent twice counted once: a memo's 12 s with 8 s of silence were
    "seconds": 12 beside a warning of 4 s of sound). (Read once: the enrollment's own check reuses it.)"""
    # refused ones are passed over: the enrollment itself refuses them, in its own words
    checked = list(checked_once([str(wav) for wav, _ in references], max_seconds, skip_refused=True))
    return [warning for _, warnings, _ in checked for warning in warnings], sum(r.speech for r, _, new in checked if new)


def _server_model(ctx: Any) -> str:
    """The identity of the XTTS model this server speaks with ("" when it is not installed yet: nothing to compare)."""
    return installed_xtts_identity(ctx.config.xtts.model_dir, ctx.cache)


def free_name(ctx: Any, name: str) -> None:
    """409 when a cloned voice called ``name`` would take the place of another voice, a voice alias or a model name."""
    try:
        check_free(scope(ctx), name, reserved_names(ctx.settings.voices))
    except NameTaken as err:
        raise ApiError(409, str(err), code="name_taken") from None


def not_aliased(ctx: Any, name: str, done: str) -> None:
    """409 when a voice alias (``serve.voices``) speaks with enrolled voice ``name``: renamed or deleted, the alias was left
    naming nothing, and every app that spoke with it got 404 "there is no voice profile ..." for a name it never sent."""
    for alias, target in (ctx.settings.voices or {}).items():
        named = target.get("profile") if isinstance(target, dict) else target
        if str(named or "") == name:
            raise ApiError(409, f"the voice alias '{alias}' (serve.voices) speaks with '{name}': it cannot be {done} until the "
                                "server's administrator points the alias elsewhere (it may still be replaced with force=true)",
                           code="voice_in_use")


@contextmanager
def claimed(ctx: Any, name: str, owner: Optional[str] = None) -> Iterator[None]:
    """The name ``name`` held by this request until its voice is stored (or it failed): 409 while another request holds
    it. Two enrollments of one name at once were each answered 201 with their own digest, and only the last one written
    was kept: the other client spoke with a voice it had not enrolled. (The check and the claim run on the event loop
    with no await between them, so no second request can come between them.)"""
    if name in ctx.enrolling:
        raise ApiError(409, f"a voice '{name}' is being enrolled by another request right now: wait for that one to finish "
                            "(then send force=true to replace it), or give this voice another name", code="voice_busy",
                       headers={"Retry-After": ENROLLING_RETRY_AFTER})
    ctx.enrolling.add(name)
    if owner is not None:
        ctx.enrolling_owners[name] = owner
    try:
        yield
    finally:
        ctx.enrolling.discard(name)
        ctx.enrolling_owners.pop(name, None)


def _refuse_existing(target: Path, name: str, form: Any, other: str = "") -> None:
    if target.exists() and str(form.get("force") or "").lower() not in ("1", "true", "yes"):
        raise ApiError(409, f"a voice '{name}' exists already: delete it first, {other}or send force=true", code="voice_exists")


async def _condition(ctx: Any, name: str, references: list[tuple[Path, float]], target: Path, language: str) -> Any:
    """An enrollment job: a worker computes the voice's conditioning; its value becomes the profile."""
    try:
        job = registry.cloner().enroll_job(scope(ctx), [str(p) for p, _ in references], label=f"enroll {name}")
        handle = ctx.engine.submit(job, priority=Priority.INTERACTIVE, bounded=True)
    except QueueFull as err:
        raise queue_full(err) from None
    except DemodVoiceError as err:
        raise from_engine(err) from None
    try:
        result = await asyncio.wait_for(handle.wait(), timeout=ctx.settings.limits.deadline_seconds)
    except asyncio.TimeoutError:
        handle.cancel()
        raise deadline_error(ctx.settings.limits.deadline_seconds) from None
    except DemodVoiceError as err:
        raise from_engine(err) from None
    if result.error is not None:
        raise from_engine(result.error)
    try:
        return await asyncio.to_thread(save_enrolled, target, name, result, language)
    except DemodVoiceError as err:
        raise from_engine(err) from None


def _write_side(ctx: Any, name: str, language: str, owner: Optional[str]) -> None:
    """The voice's side-car: its language, and the owner id of the key that enrolled it (its share of
    ``max_voices_per_key``; never the key itself)."""
    side = ctx.data_dir / "voices" / f"{name}.json"
    side.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(side, json.dumps({"language": language, **({"owner": owner} if owner is not None else {})}))


def within_quota(ctx: Any, caller: Caller, name: str) -> None:
    """403 when ``caller``'s key keeps ``serve.limits.max_voices_per_key`` voices already (its enrollments under way
    included; the voice ``name`` it replaces not counted): one key could fill the server's disk with voices, 16 MB each.
    An admin key (every caller on a server without keys) has no limit. Called with no await before the name's claim, so
    two requests of one key cannot both take the last place."""
    limit = ctx.settings.limits.max_voices_per_key
    if not limit or caller.may("admin"):
        return
    held = owned_voices(ctx, caller.owner) | {n for n, owner in ctx.enrolling_owners.items() if owner == caller.owner}
    held.discard(name)
    if len(held) >= limit:
        raise ApiError(403, f"this API key keeps {len(held)} voice{'s' if len(held) != 1 else ''} on this server, as many as one key may "
                            f"(serve.limits.max_voices_per_key): delete one it no longer needs (DELETE /v1/voices/ID), "
                            "replace one with force=true, or ask the server's administrator for more", code="too_many_voices")
