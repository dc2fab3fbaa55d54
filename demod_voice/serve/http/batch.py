"""Batch as a job API: ``POST /v1/batch`` (a CSV, its reference recordings and its source recordings) -> a job id;
``GET /v1/batch/{id}`` progress (``GET /v1/batch``: every job of the caller's key), ``/events`` the same as a server-sent event stream,
``/result`` a zip of the outputs and the report, ``DELETE /v1/batch/{id}`` stops the job and
deletes it with its files.

The CSV is the ``batch`` command's format, checked row by row against the policy for remote rows
(:mod:`demod_voice.batch.rows`): nothing in it may reach outside the job, each row's text is at
most ``serve.limits.max_input_chars``, and rows that clone a voice from uploaded recordings need
the ``enroll`` scope. Conversion rows (a ``source`` column, no text) name a recording uploaded as
a ``sources`` file, never a server path; like ``POST /v1/audio/conversions`` they need the ``enroll``
scope, and their uploads get what references get: the upload size limit, decoding in a confined
child process, ``serve.limits.max_reference_seconds`` per file. A job belongs to the key that made it: another key gets 404 for it. How jobs
are kept, bounded and run: :mod:`demod_voice.serve.http.batch_jobs`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from demod_voice.batch.rows import MAX_PROBLEMS_SHOWN, RemoteRules, check_remote_rows, clones
from demod_voice.errors import InputError
from demod_voice.serve.errors import ApiError, quoted
from demod_voice.serve.http import job_store
from demod_voice.serve.http.batch_jobs import (
    ACTIVE,
    BATCH,
    JOB_ID,
    delete_job,
    expire_jobs,
    job_dir,
    now,
    progress,
    read_state,
    resume_jobs,
    start_job,
    stop_jobs,
    write_state,
)
from demod_voice.serve.http.deps import Context, Speaker, require
from demod_voice.serve.lexicons import SPOKEN_GROWTH
from demod_voice.serve.limits import save_upload
from demod_voice.serve.uploads import decode_reference, decoded_name, read_form
from demod_voice.serve.voices import default_voice, load_profile, piper_voices

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require("speak"))])

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""An uploaded reference's name as rows give it (``fullmatch``)."""
FILE_NAME_RULE = "letters, digits, '_', '.', '-'; no folders"
REFERENCE_FIELDS = ("references", "reference", "files")
SOURCE_FIELDS = ("sources", "sources[]")
MAX_FILES = 64
"""Reference and source files one job may upload, together."""

__all__ = ["JOB_ID", "check_rows", "remote_rules", "resume_jobs", "router", "stop_jobs"]


# --- routes -------------------------------------------------------------------------------------


@router.post("/v1/batch", status_code=202)
async def create(request: Request, ctx: Context, caller: Speaker) -> dict:
    """Multipart: ``csv`` (the batch file), ``references`` and ``sources`` (files the CSV names), optional ``model`` (default
    Piper voice)."""
    await asyncio.to_thread(expire_jobs, ctx)
    await asyncio.to_thread(job_store.check_storage, ctx, caller.owner)
    folder = job_store.reserve(ctx, BATCH, caller.owner)  # the cap, and this job's place under it, before any await
    job_id = folder.name
    try:
        form = await read_form(request, ctx.settings.limits, MAX_FILES + 1, ("csv", "file", *REFERENCE_FIELDS, *SOURCE_FIELDS))
        sheet = form.get("csv") or form.get("file")
        if not hasattr(sheet, "read"):
            raise ApiError(400, "send the batch file as the multipart field 'csv'", code="missing_file")
        uploads = [item for field in REFERENCE_FIELDS for item in form.getlist(field) if hasattr(item, "read")]
        source_uploads = [item for field in SOURCE_FIELDS for item in form.getlist(field) if hasattr(item, "read")]
        if (uploads or source_uploads) and not caller.may("enroll"):
            raise _needs_enroll()
        for name in ("refs", "srcs", "out"):
            (folder / name).mkdir()
        raw = await _read_csv(ctx, sheet, folder)
        model = _piper_path(ctx, str(form.get("model"))) if form.get("model") else default_piper(ctx)
        refs = await _save_references(ctx, uploads, folder)
        sources = await _save_references(ctx, source_uploads, folder, "srcs", "source")
        total = await asyncio.to_thread(_check_and_write, ctx, raw, refs, folder, model, caller, sources)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    write_state(folder, id=job_id, owner=caller.owner, state="queued", total=total, done=0, failed=0, skipped=0, error=None,
                created=now(), finished=None, model=model)
    await asyncio.to_thread(start_job, ctx, job_id)  # its budget is cut to its key's room on disk: every file stat'ed
    return {"id": job_id, "state": "queued", "total": total}


@router.get("/v1/batch")
async def listed(ctx: Context, caller: Speaker) -> dict:
    """This key's batch jobs, newest first, each as ``GET /v1/batch/{id}`` shows it (another key's are never listed)."""
    return {"object": "list", "data": await asyncio.to_thread(job_store.owned, ctx, BATCH, caller.owner, progress)}


@router.get("/v1/batch/{job_id}")
async def status(job_id: str, ctx: Context, caller: Speaker) -> dict:
    """Progress of a batch job."""
    return progress(job_dir(ctx, job_id, caller.owner))


@router.delete("/v1/batch/{job_id}")
async def delete(job_id: str, ctx: Context, caller: Speaker) -> dict:
    """Stop a job (its rows are cancelled) and delete it with every file it made."""
    folder = job_dir(ctx, job_id, caller.owner)
    await asyncio.to_thread(delete_job, ctx, folder)
    return {"id": job_id, "deleted": True}


@router.get("/v1/batch/{job_id}/events")
async def events(job_id: str, ctx: Context, caller: Speaker) -> StreamingResponse:
    """Progress as server-sent events (``batch.progress``), ending with the final state."""
    folder = job_dir(ctx, job_id, caller.owner)
    first = progress(folder)

    async def stream() -> Any:
        last: Optional[dict] = None
        current = first
        while True:
            if current != last:
                yield f"event: batch.progress\ndata: {json.dumps(current)}\n\n".encode()
                last = current
            if current["state"] not in ACTIVE or ctx.draining.is_set():
                return
            await asyncio.sleep(0.5)
            try:
                current = progress(folder)
            except OSError:
                return  # deleted meanwhile

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/v1/batch/{job_id}/result")
async def result(job_id: str, ctx: Context, caller: Speaker) -> FileResponse:
    """A zip of the outputs and ``report.jsonl`` (409 while the job runs)."""
    folder = job_dir(ctx, job_id, caller.owner)
    state = read_state(folder)
    if state.get("state") in ACTIVE:
        raise ApiError(409, f"batch job {job_id} is {state['state']}; fetch the result when it is done", code="not_finished")
    archive = await asyncio.to_thread(_zip, folder)
    return FileResponse(archive, media_type="application/zip", filename=f"batch-{job_id}.zip")


def _zip(folder: Path) -> Path:
    """The outputs and the report, whose paths are made relative to the job's output folder (no server path leaves)."""
    return job_store.result_zip(folder, folder / "report.jsonl", "report.jsonl", _client_report)


def _client_report(folder: Path) -> str:
    """``report.jsonl`` as its client may see it: outputs relative to the job, no server path in any field."""
    lines = []
    for line in (folder / "report.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        output = str(entry.get("output") or "")
        prefix = str(folder / "out") + "/"
        entry["output"] = output[len(prefix):] if output.startswith(prefix) else Path(output).name
        if entry.get("error"):
            entry["error"] = str(entry["error"]).replace(prefix, "").replace(str(folder) + "/", "")
        lines.append(json.dumps(entry, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


# --- checking the upload --------------------------------------------------------------------------


def _needs_enroll() -> ApiError:
    return ApiError(403, "cloning a voice from reference recordings or converting source recordings needs a key with the 'enroll' "
                         "scope; use enrolled voices (the 'voice' column) or Piper voices with this key", "permission_error",
                    "needs_enroll")


async def _save_references(ctx: Any, uploads: list, folder: Path, sub: str = "refs", kind: str = "reference") -> dict[str, str]:
    """Uploaded recordings (``kind``), decoded to WAV in a confined child at ``folder/sub/<index>/<the upload's name>``
    (a message about the file then names it as its client does); the base name as the CSV gives it -> the path relative
    to the CSV."""
    saved_names: dict[str, str] = {}
    for index, upload in enumerate(uploads):
        name = str(upload.filename or "")
        if not _plain_name(name):
            raise ApiError(400, f"{kind} file name '{quoted(name)}' is not a plain file name ({FILE_NAME_RULE})", code="bad_file_name")
        if kind == "source" and name in saved_names:
            raise ApiError(400, f"two source files are named '{name}'; give each recording its own name", code="bad_file_name")
        saved = await save_upload(upload, folder / sub, ctx.settings.limits)
        relative = f"{sub}/{index}/{decoded_name(name)}"  # its own name: a silent take.m4a was called take.wav
        (folder / relative).parent.mkdir()
        await asyncio.to_thread(decode_reference, saved, folder / relative, ctx.settings.limits.max_reference_seconds, name,
                                kind == "source")
        saved.unlink()
        saved_names[name] = relative
    return saved_names


def _plain_name(name: str) -> bool:
    return bool(FILE_NAME.fullmatch(name))


async def _read_csv(ctx: Any, sheet: Any, folder: Path) -> Path:
    """The uploaded batch file, as sent: read as ``batch`` reads one (a UTF-16 "Unicode Text" sheet, which the page's
    check took, was refused here as "not UTF-8 (byte 0)", a workbook as "not UTF-8 (byte 10)")."""
    saved = await save_upload(sheet, folder, ctx.settings.limits, ".csv")
    return saved.rename(folder / "upload.csv")


def _piper_path(ctx: Any, name: str) -> str:
    voices = piper_voices(ctx)
    if name not in voices:
        raise ApiError(400, f"there is no Piper voice '{quoted(name)}' on this server (GET /v1/models)", code="unknown_voice")
    return str(voices[name])


def default_piper(ctx: Any) -> Optional[str]:
    """The job's voice for rows naming none, as for a speech request naming none: ``piper.default_voice`` where this
    server offers it."""
    offered = piper_voices(ctx)
    name = default_voice(ctx)
    return str(offered[name]) if name in offered else None


def remote_rules(ctx: Any, references: dict[str, str], model: Optional[str], sources: Optional[dict[str, str]] = None) -> RemoteRules:
    """What rows sent to this server may name (for the batch API and the web page alike)."""

    def piper(name: str) -> str:
        try:
            return _piper_path(ctx, name)
        except ApiError as err:
            raise InputError(str(err)) from None

    return RemoteRules(ctx.settings.limits.max_input_chars, references, lambda name: load_profile(ctx, name) is not None, piper, model,
                       sources or {})


def check_rows(ctx: Any, rows: list, references: dict[str, str], model: Optional[str], caller: Any,
               sources: Optional[dict[str, str]] = None) -> str:
    """Rows from a client checked against this server's policy: the CSV its job runs; :class:`ApiError` (400/403/413)."""
    limit = ctx.settings.limits.max_batch_rows
    if not rows:
        raise ApiError(400, "the batch file has a header but no rows", code="bad_csv")
    if len(rows) > limit:
        raise ApiError(413, f"the batch has {len(rows):,} rows; at most {limit:,} per job (serve.limits.max_batch_rows): split it into "
                            "several jobs", code="too_many_rows")
    if any(clones(row.values) for row in rows) and not caller.may("enroll"):
        raise _needs_enroll()
    try:
        return check_remote_rows(rows, remote_rules(ctx, references, model, sources))
    except InputError as err:
        raise ApiError(400, str(err), code="bad_rows") from None


def _check_and_write(ctx: Any, raw: Path, refs: dict[str, str], folder: Path, model: Optional[str], caller: Any,
                     sources: dict[str, str]) -> int:
    """Every row of the upload ``raw`` checked against what this job may use; the rewritten CSV saved as ``input.csv``;
    rows counted."""
    from demod_voice.batch import read_rows

    try:
        rows = read_rows(raw)
    except InputError as err:
        message = str(err).replace(f"batch file {raw}", "the batch file").replace(str(raw), "the batch file")
        raise ApiError(400, message, code="bad_csv") from None
    finally:
        raw.unlink()
    (folder / "input.csv").write_text(check_rows(ctx, rows, refs, model, caller, sources), encoding="utf-8")
    _check_as_run(ctx, folder, model, getattr(caller, "owner", None) or None)
    return len(rows)


def _check_as_run(ctx: Any, folder: Path, model: Optional[str], key_id: Optional[str] = None) -> None:
    """The checked rows through the job's own row checks (a dry run: nothing made or fetched), so that a row the job
    would refuse (a speaker, language or backend its voice lacks) is this answer's 400 with every such line, not a job
    that fails later with the first of them and "(and 3 more, listed above)" in a log its client cannot see."""
    from demod_voice.batch import BatchRequest, build_jobs, read_rows
    from demod_voice.batch.run import RowProblems
    from demod_voice.voices.profiles import REENROLL_HTTP, reenroll_advice

    request = BatchRequest(csv_path=folder / "input.csv", output_dir=folder / "out", config=ctx.config, model=model,
                           dry_run=True, progress=False, server_lexicons=tuple(str(name) for name in ctx.settings.lexicons or ()),
                           key_id=key_id, max_spoken=SPOKEN_GROWTH * ctx.settings.limits.max_input_chars)  # as the job reads them
    try:
        with reenroll_advice(REENROLL_HTTP):  # its clients enroll over HTTP or on the page, as the job itself says
            build_jobs(read_rows(request.csv_path), request, {}, say_problems=False)
    except RowProblems as err:
        said = [f"line {', '.join(map(str, lines[:5]))}{'...' if len(lines) > 5 else ''}: {job_store.client_text(message, folder)}"
                for message, lines in err.problems]
        more = f" (and {len(said) - MAX_PROBLEMS_SHOWN} more)" if len(said) > MAX_PROBLEMS_SHOWN else ""
        raise ApiError(400, "; ".join(said[:MAX_PROBLEMS_SHOWN]) + more, code="bad_rows") from None
