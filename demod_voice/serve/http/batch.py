"""Batch as a job API: ``POST /v1/batch`` (a CSV and its reference recordings) -> a job id;
``GET /v1/batch/{id}`` progress, ``/events`` the same as a server-sent event stream,
``/result`` a zip of the outputs and the report.

The CSV is the ``batch`` command's format. Nothing in it may reach outside the job: a
``reference`` names a file uploaded with it (by its base name), ``voice`` an enrolled profile,
``model`` a Piper voice the server offers; outputs are relative paths inside the job folder.
The server rewrites the checked CSV into the job folder and runs ``batch`` on it in a thread,
as a client of the server's engine (batch priority: speech requests go first). A job keeps
its state in ``job.json``; one unfinished when the server stopped is resumed at start from
``batch``'s manifest (finished rows are not made again).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from demod_voice.errors import DemodVoiceError, InputError
from demod_voice.serve.errors import ApiError
from demod_voice.serve.http.deps import Context, require

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require("speak"))])

JOB_ID = re.compile(r"[0-9a-f]{24}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""Ids and names are checked with ``fullmatch`` (``match`` with ``$`` would take a trailing newline)."""
ACTIVE = ("queued", "running", "interrupted")
_THREADS: dict[str, threading.Thread] = {}


def jobs_dir(ctx: Any) -> Path:
    """Where batch jobs live."""
    return ctx.data_dir / "batch"


def _job_dir(ctx: Any, job_id: str) -> Path:
    if not JOB_ID.fullmatch(job_id):
        raise ApiError(400, f"'{job_id[:40]}' is not a batch job id", code="bad_job_id")
    folder = jobs_dir(ctx) / job_id
    if not (folder / "job.json").is_file():
        raise ApiError(404, f"there is no batch job '{job_id}'", code="unknown_job")
    return folder


def _read_state(folder: Path) -> dict:
    return json.loads((folder / "job.json").read_text(encoding="utf-8"))


def _write_state(folder: Path, **changes: Any) -> dict:
    from demod_voice.paths import write_text_atomic

    path = folder / "job.json"
    state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    state.update(changes)
    write_text_atomic(path, json.dumps(state, indent=1))
    return state


def progress(ctx: Any, job_id: str) -> dict:
    """The job's state, with rows finished so far (from the manifest while it runs)."""
    folder = _job_dir(ctx, job_id)
    state = _read_state(folder)
    if state.get("state") in ACTIVE:
        manifest = folder / "out" / ".demod-voice-manifest.jsonl"
        try:
            state["done"] = sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())
        except OSError:
            state["done"] = 0
    return {k: state.get(k) for k in ("id", "state", "total", "done", "failed", "skipped", "error", "created", "finished")}


# --- routes -------------------------------------------------------------------------------------


@router.post("/v1/batch", status_code=202)
async def create(request: Request, ctx: Context) -> dict:
    """Multipart: ``csv`` (the batch file), ``references`` (files the CSV names), optional ``model`` (default Piper voice)."""
    from demod_voice.serve.http.voices import _form

    if ctx.draining.is_set():
        raise ApiError(503, "the server is shutting down", "server_error", "shutting_down")
    form = await _form(request, max_files=64)
    sheet = form.get("csv") or form.get("file")
    if not hasattr(sheet, "read"):
        raise ApiError(400, "send the batch file as the multipart field 'csv'", code="missing_file")
    job_id = secrets.token_hex(12)
    folder = jobs_dir(ctx) / job_id
    (folder / "refs").mkdir(parents=True)
    (folder / "out").mkdir()
    try:
        refs = await _save_references(ctx, form, folder)
        text = await _read_csv(ctx, sheet, folder)
        model = _piper_path(ctx, str(form.get("model") or "")) if form.get("model") else None
        total = await asyncio.to_thread(_check_and_write, ctx, text, refs, folder, model)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    _write_state(folder, id=job_id, state="queued", total=total, done=0, failed=0, skipped=0, error=None,
                 created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), finished=None, model=model)
    start_job(ctx, job_id)
    return {"id": job_id, "state": "queued", "total": total}


@router.get("/v1/batch/{job_id}")
async def status(job_id: str, ctx: Context) -> dict:
    """Progress of a batch job."""
    return progress(ctx, job_id)


@router.get("/v1/batch/{job_id}/events")
async def events(job_id: str, ctx: Context) -> StreamingResponse:
    """Progress as server-sent events (``batch.progress``), ending with the final state."""
    first = progress(ctx, job_id)

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
            current = progress(ctx, job_id)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/v1/batch/{job_id}/result")
async def result(job_id: str, ctx: Context) -> FileResponse:
    """A zip of the outputs and ``report.jsonl`` (409 while the job runs)."""
    folder = _job_dir(ctx, job_id)
    state = _read_state(folder)
    if state.get("state") in ACTIVE:
        raise ApiError(409, f"batch job {job_id} is {state['state']}; fetch the result when it is done", code="not_finished")
    archive = await asyncio.to_thread(_zip, folder)
    return FileResponse(archive, media_type="application/zip", filename=f"batch-{job_id}.zip")


def _zip(folder: Path) -> Path:
    import zipfile

    from demod_voice.paths import atomic_path

    target = folder / "result.zip"
    if target.is_file():
        return target
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted((folder / "out").rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                archive.write(path, str(path.relative_to(folder / "out")))
        if (folder / "report.jsonl").is_file():
            archive.write(folder / "report.jsonl", "report.jsonl")
    return target


# --- checking the upload --------------------------------------------------------------------------


async def _save_references(ctx: Any, form: Any, folder: Path) -> dict[str, str]:
    """Uploaded references, decoded to WAV under our own names; base name as the CSV gives it -> path relative to the CSV."""
    from demod_voice.serve.limits import _shown, save_upload
    from demod_voice.serve.uploads import decode_reference

    refs: dict[str, str] = {}
    uploads = [item for field in ("references", "reference", "files") for item in form.getlist(field) if hasattr(item, "read")]
    for index, upload in enumerate(uploads):
        name = str(upload.filename or "")
        if not FILE_NAME.fullmatch(name):
            raise ApiError(400, f"reference file name '{_shown(name)}' is not a plain file name (letters, digits, '_', '.', '-'; "
                                "no folders)", code="bad_file_name")
        saved = await save_upload(upload, folder / "refs", ctx.settings.limits)
        wav = folder / "refs" / f"{index}.wav"
        await asyncio.to_thread(decode_reference, saved, wav, ctx.settings.limits.max_reference_seconds, name)
        saved.unlink()
        refs[name] = f"refs/{index}.wav"
    return refs


async def _read_csv(ctx: Any, sheet: Any, folder: Path) -> str:
    from demod_voice.serve.limits import save_upload

    saved = await save_upload(sheet, folder, ctx.settings.limits, ".csv")
    try:
        return saved.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"the batch file is not UTF-8 (byte {err.start}); save it as UTF-8", code="bad_csv") from None
    finally:
        saved.unlink()


def _piper_path(ctx: Any, name: str) -> str:
    from demod_voice.serve.voices import piper_voices

    voices = piper_voices(ctx)
    if name not in voices:
        raise ApiError(400, f"there is no Piper voice '{name}' on this server (GET /v1/models)", code="unknown_voice")
    return str(voices[name])


def _check_and_write(ctx: Any, text: str, refs: dict[str, str], folder: Path, model: Optional[str]) -> int:
    """Every row checked against what this job may use; the rewritten CSV saved as ``input.csv``; rows counted."""
    from demod_voice.batch import COLUMNS, read_rows

    raw = folder / "upload.csv"
    raw.write_text(text, encoding="utf-8")
    try:
        rows = read_rows(raw)
    except InputError as err:
        raise ApiError(400, str(err).replace(str(raw), "the batch file"), code="bad_csv") from None
    finally:
        raw.unlink()
    if not rows:
        raise ApiError(400, "the batch file has a header but no rows", code="bad_csv")
    if len(rows) > ctx.settings.limits.max_batch_rows:
        raise ApiError(413, f"the batch has {len(rows)} rows; at most {ctx.settings.limits.max_batch_rows} per job "
                            "(serve.limits.max_batch_rows)", code="too_many_rows")
    problems = []
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    for row in rows:
        try:
            writer.writerow(_checked_row(ctx, row.values, refs, model))
        except (ApiError, InputError) as err:
            problems.append(f"line {row.line}: {err}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ApiError(400, "; ".join(problems[:5]) + more, code="bad_rows")
    (folder / "input.csv").write_text(out.getvalue(), encoding="utf-8")
    return len(rows)


def _checked_row(ctx: Any, values: dict[str, str], refs: dict[str, str], model: Optional[str]) -> dict[str, str]:
    from demod_voice.serve.voices import load_profile

    row = dict(values)
    output = PurePosixPath(row.get("output", "").replace("\\", "/"))
    if not str(output) or output.is_absolute() or ".." in output.parts or str(output).startswith("~"):
        raise ApiError(400, f"output '{row.get('output', '')}' must be a relative path inside the job (no '..', not absolute)")
    if row.get("reference"):
        names = [n.strip() for n in row["reference"].split("|") if n.strip()]
        missing = [n for n in names if n not in refs]
        if missing:
            raise ApiError(400, f"reference '{missing[0]}' was not uploaded with the batch (send it as a 'references' file)")
        row["reference"] = "|".join(refs[n] for n in names)
    if row.get("voice") and (not FILE_NAME.fullmatch(row["voice"]) or load_profile(ctx, row["voice"]) is None):
        raise ApiError(400, f"there is no enrolled voice '{row['voice']}'")
    if row.get("model"):
        if row.get("reference") or row.get("voice") or row.get("backend", "").lower() == "xtts":
            raise ApiError(400, "the model column is for Piper voices here; XTTS rows use the server's XTTS model")
        row["model"] = _piper_path(ctx, row["model"])
    elif not (row.get("reference") or row.get("voice")) and model is None:
        raise ApiError(400, "a Piper row needs a voice: fill the 'model' column or send the form field 'model'")
    return row


# --- running --------------------------------------------------------------------------------------


def start_job(ctx: Any, job_id: str) -> None:
    """Run (or resume) a job in its own thread."""
    thread = threading.Thread(target=_run, args=(ctx, job_id), name=f"batch-{job_id[:8]}", daemon=True)
    _THREADS[job_id] = thread
    thread.start()


def _run(ctx: Any, job_id: str) -> None:
    from demod_voice.batch import BatchRequest, run_batch

    folder = jobs_dir(ctx) / job_id
    state = _write_state(folder, state="running")
    request = BatchRequest(csv_path=folder / "input.csv", output_dir=folder / "out", config=ctx.config,
                           workers=ctx.settings.workers, model=state.get("model"), report=folder / "report.jsonl",
                           progress=False, log_level=ctx.log_level, quiet=True, engine=ctx.engine)
    try:
        outcome = run_batch(request)
    except DemodVoiceError as err:
        final = "interrupted" if ctx.draining.is_set() else "failed"
        _write_state(folder, state=final, error=str(err), finished=_now())
        return
    except Exception as err:  # noqa: BLE001 - a job thread must leave a state behind, whatever happened
        log.exception("batch job %s failed", job_id)
        _write_state(folder, state="failed", error=f"{type(err).__name__}: {err}", finished=_now())
        return
    # Rows cancelled by a shutdown count as failed: the job is taken up again at the next start.
    final = "interrupted" if ctx.draining.is_set() and (outcome.not_run or outcome.failed) else "done"
    _write_state(folder, state=final, done=outcome.done + outcome.skipped, failed=outcome.failed, skipped=outcome.skipped,
                 error="; ".join(outcome.errors[:3]) or None, finished=_now())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def resume_jobs(ctx: Any) -> list[str]:
    """Start again every job left queued, running or interrupted by the last run of the server."""
    resumed = []
    folder = jobs_dir(ctx)
    if not folder.is_dir():
        return resumed
    for state_file in sorted(folder.glob("*/job.json")):
        job_id = state_file.parent.name
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if JOB_ID.fullmatch(job_id) and state.get("state") in ACTIVE:
            log.info("resuming batch job %s", job_id)
            start_job(ctx, job_id)
            resumed.append(job_id)
    return resumed


def stop_jobs(ctx: Any, timeout: float = 5.0) -> None:
    """At shutdown: job threads end when the engine cancels their rows; their state says 'interrupted'."""
    for thread in list(_THREADS.values()):
        thread.join(timeout=0 if not thread.is_alive() else timeout / max(1, len(_THREADS)))
