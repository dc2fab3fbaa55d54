"""What the web page's buttons do, without Gradio: keys, voices, reference checks, calls to the server's API.

The page is a client of the server it is mounted on. Whatever the API already does (enroll,
import, delete and download voices; batch jobs) is done by calling the API's own routes in
process (an ASGI call carrying the key typed on the page), so the page gets the same checks,
limits, scopes and error words as any other client. Speech for the page's player goes through
the same voice resolution and engine as ``/v1/audio/speech`` (see :mod:`.ui_stream`).
Every failure reaches the page as a :class:`UiError` holding one sentence.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import html
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.errors import DemodVoiceError
from demod_voice.serve import auth, clients
from demod_voice.serve.errors import client_text, file_name_shown, log_for_server, redact
from demod_voice.serve.throttle import TooManyFailedKeys, check_key

log = logging.getLogger(__name__)



class UiError(Exception):
    """A failure to show on the page, in words."""


class KeysRefused(UiError):
    """The client's keys are refused for now (too many wrong ones from its address): said even where the page would
    otherwise show a failure as an empty list (:func:`demod_voice.serve.ui.tabs.listed`)."""


FORMATS = ["mp3", "wav", "flac", "opus", "aac"]
"""Formats the page offers for download."""
SAMPLE_TEXT = "Hello! This is how I sound. The quick brown fox jumps over the lazy dog."
"""What a voice's sample says."""


def context(app: Any) -> Any:
    """The server's context; the page can be drawn before the engine has started."""
    ctx = getattr(app.state, "ctx", None)
    if ctx is None:
        raise UiError("The server is still starting; try again in a moment.")
    return ctx


def failed(err: BaseException) -> str:
    """What the page shows for a failure: the sentence (without server paths), never a traceback."""
    if isinstance(err, (UiError, DemodVoiceError)):
        log_for_server(err)
        return f"**Error:** {as_text(redact(page_words(client_text(err))))}"
    log.exception("web page action failed", exc_info=err)
    return f"**Error:** something went wrong on the server ({type(err).__name__}); its log has the details."



def picker(*args: Any, **kwargs: Any) -> Any:
    """A ``gr.Dropdown`` whose refusal of a value it does not offer is said in the page's words and stays out of the
    log: Gradio's own ("Value: x is not in the list of choices: [...]") reached a scripted caller as it was, and printed a
    traceback for each call, keyless."""
    import gradio as gr
    from gradio.exceptions import Error

    dropdown = gr.Dropdown(*args, **kwargs)
    checked = dropdown.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return checked(payload)
        except Error:
            raise Error("That choice is not offered here (any more): reload the page and pick again.",
                        print_exception=False) from None

    dropdown.preprocess = preprocess
    return dropdown


def quiet_refusals(blocks: Any) -> None:
    """Make an event whose inputs Gradio cannot take (a slider sent ``null``, a number sent as text, a file input that is
    no file) fail in the page's words, with one line in the log (the traceback at ``-vv``): Gradio printed its 40-line
    traceback for each such call, keyless, so anyone who could connect could fill the log. The page's own event
    functions answer every failure in words themselves (:func:`failed`); what reaches this is Gradio's reading of the
    inputs, or a fault of the page's that a user should not see either."""
    from gradio.exceptions import Error

    process = blocks.process_api

    async def process_api(*args: Any, **kwargs: Any) -> Any:
        try:
            return await process(*args, **kwargs)
        except Error:
            raise
        except Exception as err:  # noqa: BLE001 - any input a script makes up; said in one line
            log.info("web page: refused an event's inputs (%s)", type(err).__name__)
            log.debug("the event's error:", exc_info=True)
            raise Error("This call's inputs are not what the page sends: reload the page and try again.",
                        print_exception=False) from None

    blocks.process_api = process_api


# --- keys --------------------------------------------------------------------------------------


CLIENT: contextvars.ContextVar[Optional[clients.Client]] = contextvars.ContextVar("page_client", default=None)
"""The client whose event runs (:func:`remember_clients`, as the request guard found it: :mod:`demod_voice.serve.clients`):
its wrong keys are counted against it."""


def remember_clients(blocks: Any) -> None:
    """Let the page's key checks know whose event they check (:data:`CLIENT`, from the request Gradio hands its
    ``process_api``): the key field is checked in the events, and a script could try keys there as fast as it liked."""
    process = blocks.process_api

    async def process_api(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request")
        request = None if isinstance(request, list) else request
        scope = getattr(getattr(request, "request", None), "scope", None)  # gr.Request around Starlette's
        CLIENT.set(clients.of(scope) if isinstance(scope, dict) else None)
        return await process(*args, **kwargs)

    blocks.process_api = process_api


def authorize(ctx: Any, key: Optional[str], scope: str) -> None:
    """Check the page's key field with the check every front door uses (:func:`demod_voice.serve.auth.authorize`;
    no keys configured: open, loopback only), through the server's count of wrong keys by address; its refusal in the
    page's words."""
    authorization = auth.bearer(key)
    try:
        check_key(getattr(ctx, "failed_keys", None), CLIENT.get() or clients.Client(""), authorization,
                  lambda: auth.authorize(ctx.keys, authorization, scope))
    except auth.AuthFailed as err:
        if isinstance(err, TooManyFailedKeys):
            source = "through the proxy in front of this server" if err.shared else "from your address"
            raise KeysRefused(f"Too many wrong API keys came {source}: wait {err.wait} s, then "
                          "check the 'API key' field at the top of the page.") from None
        if err.status == 403:
            raise UiError(f"This API key may not do this: it needs the '{scope}' scope.") from None
        if key and key.strip():
            raise UiError("The API key is not valid: check the 'API key' field at the top of the page.") from None
        raise UiError("This server needs an API key: enter it in the 'API key' field at the top of the page.") from None


# --- files from the page -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Upload:
    """A file the browser sent through Gradio's upload route."""

    path: Path
    """Where Gradio keeps it (never shown to anyone)."""
    name: str
    """The name to show: the client's file name, its last part, printable and short."""


def uploaded(item: Any, folder: Path) -> Upload:
    """The file behind a page input, only when it lies inside Gradio's upload folder ``folder``.

    Gradio hands an event whatever path the client names in a ``FileData``; a file that Gradio's
    upload route did not put there (a server file named by a script, a link out of the folder)
    is refused, and the answer names neither path."""
    raw = item if isinstance(item, (str, Path)) else getattr(item, "path", None) or getattr(item, "name", None)
    shown = file_name_shown(getattr(item, "orig_name", None) or raw)
    if not raw:
        raise UiError(f"'{shown}' was not uploaded: upload the file again.")
    try:
        real = Path(os.path.realpath(str(raw)))
        inside = real.is_relative_to(Path(os.path.realpath(str(folder)))) and real.is_file()
    except (OSError, ValueError):
        inside = False
    if not inside:
        log.warning("web page: refused a file input outside the upload folder")
        raise UiError(f"'{shown}' was not uploaded through this page: upload the file again.")
    return Upload(real, shown)


_MARKDOWN = re.compile(r"([\\`*_\[\]#|~])")


def as_text(text: str) -> str:
    """``text`` shown as it is written in the page's Markdown: a message quoting SSML (``<prosody rate="x"> ...``) was
    taken for an HTML tag and dropped with all that followed it (the page showed a bare "Error:"), and a file name's
    brackets made a link."""
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def may(ctx: Any, key: Optional[str], scope: str) -> bool:
    """Whether the page's key field holds a key with ``scope`` (see :func:`authorize`)."""
    try:
        authorize(ctx, key, scope)
    except UiError:
        return False
    return True


def headers(key: Optional[str]) -> dict:
    return {"Authorization": f"Bearer {key.strip()}"} if key and key.strip() else {}


def as_client(app: Any, client: Optional[clients.Client]) -> Any:
    """``app`` with each request in it made as ``client``'s (the page's event's): the page's calls to its own API came
    from 127.0.0.1, so ten wrong keys from a program on this machine (or through a proxy that names no client) made every
    page user's Import, Delete, Convert and batch answer "too many wrong API keys" for a minute."""
    if client is None:
        return app

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        scope[clients.CLIENT] = client
        await app(scope, receive, send)

    return asgi


async def call_api(app: Any, method: str, path: str, key: Optional[str], **kwargs: Any) -> Any:
    """One request to the server's own API, in process; an error answer becomes a :class:`UiError` with its message."""
    import httpx

    transport = httpx.ASGITransport(app=as_client(app, CLIENT.get()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.request(method, path, headers=headers(key), timeout=None, **kwargs)
    if response.status_code >= 400:
        raise UiError(api_message(response))
    return response


def api_message(response: Any) -> str:
    """The sentence of an API error answer (OpenAI's ``{"error": {"message"}}`` or FastAPI's ``{"detail"}``)."""
    try:
        body = response.json()
    except ValueError:
        return f"the server answered {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or response.status_code)
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return f"the server answered {response.status_code}"


# --- voices ------------------------------------------------------------------------------------


def voice_options(ctx: Any) -> list[tuple[str, str]]:
    """(label, value) for the voice pickers: each voice (each speaker of a multi-speaker one), then aliases.
    A value is ``KIND|ID`` (``KIND|ID|SPEAKER`` for a voice that is a model of its own), or ``alias|NAME``."""
    from demod_voice.serve.voices import list_voices

    options = []
    for voice in list_voices(ctx):
        if voice.kind == "alias":
            options.append((voice.name, f"alias|{voice.id}"))
        elif voice.by_model and voice.speakers:
            options.extend((f"{voice.id} — {speaker} ({voice.kind_label})", f"{voice.kind}|{voice.id}|{speaker}") for speaker in voice.speakers)
        elif voice.by_model:
            options.append((f"{voice.id} {voice.describe}", f"{voice.kind}|{voice.id}|"))
        else:
            options.append((f"{voice.id} {voice.describe}", f"{voice.kind}|{voice.id}"))
    return options


KEEP_DOWNLOADS = 3600.0
"""Seconds a file handed to the browser is kept (Gradio serves its own copy)."""


def download_dir() -> Path:
    """A new folder for a file the page hands to the browser (a profile, a zip, a converted recording), in the
    page's own folder (:mod:`.scratch`, which Gradio serves from); folders older than :data:`KEEP_DOWNLOADS` are removed on the way."""
    import shutil
    import time

    from demod_voice.serve.ui import scratch

    root = scratch.folder() / "downloads"
    root.mkdir(mode=0o700, exist_ok=True)
    for old in root.iterdir():
        try:
            if time.time() - old.stat().st_mtime > KEEP_DOWNLOADS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    return Path(tempfile.mkdtemp(dir=root))


def cloned_value(name: str) -> str:
    """The pickers' value of the cloned voice ``name`` (one just enrolled, renamed or imported)."""
    return f"{registry.cloner().name}|{name}"


def is_cloned(kind: str) -> bool:
    """Whether a picker value's ``KIND`` is a backend whose voices are cloned (profiles: rename, delete, convert into)."""
    side = registry.load().sides.get(kind)
    return side is not None and side.clones


def row_model_names(values: list[str]) -> list[str]:
    """Voices among the pickers' ``values`` that a batch row's ``model`` may name (the batch tab's default voice)."""
    names = set()
    for value in values:
        kind, _, rest = value.partition("|")
        side = registry.load().sides.get(kind)
        if side is not None and side.row_models:
            names.add(rest.partition("|")[0])
    return sorted(names)


def voice_rows(ctx: Any) -> list[list[str]]:
    """The Voices tab's table: id, kind, language, speakers."""
    from demod_voice.serve.voices import list_voices

    return [[v.id, v.kind_label or v.kind, v.language, ", ".join(v.speakers)] for v in list_voices(ctx)]


def choose(ctx: Any, value: Optional[str], language: Optional[str] = None, variation: Optional[float] = None,
           temperature: Optional[float] = None) -> Any:
    """A picker's value (and the page's main settings) -> a resolved :class:`~demod_voice.serve.voices.VoiceChoice`."""
    from demod_voice.errors import DemodVoiceError
    from demod_voice.serve.voices import resolve_offered, resolve_voice

    if not value:
        raise UiError("Pick a voice first.")
    kind, _, rest = value.partition("|")
    name, _, speaker = rest.partition("|")
    try:
        if kind == "alias":
            choice = resolve_voice(ctx, "", rest, language or None)
        else:
            choice = resolve_offered(ctx, kind, name, speaker or None, language or None)
    except DemodVoiceError as err:
        raise UiError(str(err)) from None
    return choice.adjusted(variation, temperature)


async def speak(ctx: Any, choice: Any, text: str, fmt: str, speed: float, label: str) -> Any:
    """Start the page's speech; the API's refusals (empty or long text, full queue) as words."""
    from demod_voice.errors import DemodVoiceError
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.ui.stream import start_speech

    if ctx.draining.is_set():
        raise UiError("The server is shutting down; try again when it is back.")
    try:
        return await start_speech(ctx, choice, text or "", fmt, float(speed), label)
    except (ApiError, DemodVoiceError) as err:
        raise UiError(str(err).replace("'input'", "the text")) from None


def summary(stream: Any) -> str:
    """One line about a finished result."""
    if stream.error:
        return f"Could not speak: {redact(page_words(stream.error))}"
    first = f"; first audio after {stream.first_audio:.2f} s" if stream.first_audio is not None else ""
    return f"Made {stream.seconds:.1f} s of audio{first}."


# --- references ------------------------------------------------------------------------------


def check_files(uploads: list[Upload], max_seconds: float) -> tuple[str, bool]:
    """The reference checks (too short, silent, clipped, unreadable; and noisy) as Markdown, and whether all can be used.

    Each file is decoded first in the API's memory- and time-limited child process
    (:func:`demod_voice.serve.uploads.decode_reference`, at most ``max_seconds``), into mono 16-bit
    audio of at most 48 kHz: the server itself never parses a browser's bytes, and what it then
    reads is small whatever the upload's channels, rate or header claim."""
    if not uploads:
        return "Record or upload a reference: 6-30 s of one person speaking clearly.", False
    lines, usable = [], True
    for upload in uploads:
        try:
            with tempfile.TemporaryDirectory(prefix="demod-voice-check-") as folder:
                lines.extend(_check_one(upload, Path(folder) / "decoded.wav", max_seconds))
        except UiError as err:
            lines.append(f"- **Cannot use {upload.name}**: {redact(str(err))}")
            usable = False
    verdict = "These references can be enrolled." if usable else "Fix or remove the references that cannot be used before enrolling."
    return "\n".join([*lines, "", verdict]), usable


def _check_one(upload: Upload, decoded: Path, max_seconds: float) -> list[str]:
    """One reference's lines; :class:`UiError` when it cannot be used."""
    from demod_voice.errors import InputError
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.uploads import decode_reference
    from demod_voice.voices.references import check_reference

    try:
        decode_reference(upload.path, decoded, max_seconds, upload.name)
        reference, warnings = check_reference(str(decoded))
    except (ApiError, InputError) as err:
        raise UiError(str(err).replace(decoded.name, upload.name)) from None
    warnings = [w.replace(decoded.name, upload.name) for w in warnings]  # the noise check among them
    # the speech it is learnt from (what "6-30 s" asks for): a memo's silence before and after it was counted in
    speech = f"{reference.speech:.1f} s of speech" + (f" in {reference.seconds:.1f} s" if reference.seconds - reference.speech >= 0.05 else "")
    if warnings:
        return [f"- **Warning, {upload.name}** ({speech}): {redact(warning)}" for warning in warnings]
    return [f"- **OK, {upload.name}**: {speech}, clear"]


# --- batch -------------------------------------------------------------------------------------


PAGE_WORDS = {
    "(send the recording as a 'sources' file and give its file name in the source column)":
        "(upload it under 'Source recordings the CSV names', and give its file name in the source column)",
    "(send it as a 'references' file)": "(upload it under 'Reference recordings the CSV names')",
    "delete it first, or send force=true": "delete it first (Voices tab), or choose another name",
    "delete it first, import it under another name (the field 'name'), or send force=true":
        "delete it first, or type another name in 'Import as'",
    " (then send force=true to replace it)": "",  # a second enrollment of one name at once: the page cannot replace a voice
    " (DELETE /v1/voices/ID), replace one with force=true,": " (Voices tab)",  # a key with as many voices as it may keep
    "delete those whose results it has downloaded": "wait, or ask the server's administrator",  # as many jobs as it may keep
    "' here (GET /v1/audio/voices)": "' here (any more: it was deleted or renamed): pick another voice",
    "' (GET /v1/voices lists them)": "' here (any more: it was deleted or renamed): pick another voice",
}
"""The row policy's advice to API clients, in the words of the page's own inputs."""


def batch_rows(ctx: Any, sheet: Optional[Upload], references: list[Upload], model: Optional[str],
               sources: tuple[Upload, ...] = (), may_enroll: bool = True) -> tuple[list[list[str]], str, bool]:
    """Each row of an uploaded batch file with the server's own check of it (the policy ``POST /v1/batch`` applies, with
    the references and source recordings uploaded beside it, and the key's scope: ``may_enroll``): (table, summary, all
    rows ok). Rows the job would refuse are marked here (two rows writing one output, a clone with a speak key: "All
    rows can be made", then Start refused)."""
    from demod_voice.batch import read_rows
    from demod_voice.batch.rows import clones, remote_verdicts
    from demod_voice.errors import InputError
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.http.batch import _piper_path, default_piper, remote_rules

    if sheet is None:
        return [], ("Upload a batch file (CSV with the columns text, output and reference, voice or model; or source and "
                    "reference or voice to convert recordings)."), False
    try:
        rows = read_rows(sheet.path)
        limit = ctx.settings.limits.max_batch_rows  # past it, "All 12,000 rows can be made", then Start's 413
        if len(rows) > limit:
            raise UiError(f"The batch file has {len(rows):,} rows; this server takes at most {limit:,} per job "
                          "(serve.limits.max_batch_rows): split it into several files.")
        piper = _piper_path(ctx, model) if model else default_piper(ctx)
    except (InputError, ApiError) as err:
        raise UiError(redact(str(err).replace(str(sheet.path), sheet.name))) from None
    rules = remote_rules(ctx, {r.name: r.name for r in references}, piper, {s.name: s.name for s in sources})
    table, bad = [], 0
    for row, checked, problem in remote_verdicts(rows, rules):
        if checked is not None and clones(row.values) and not may_enroll:
            problem = "cloning from a reference or converting a recording needs a key with the 'enroll' scope"
        verdict = "ok" if not problem else page_words(redact(problem))
        bad += bool(problem)
        voice = row.values.get("voice") or row.values.get("reference") or row.values.get("model") or model or ""
        source = row.values.get("source", "")
        text = f"(converts {source[:50]})" if source else row.values.get("text", "")[:60]
        table.append([str(row.line), text, voice, row.values.get("output", ""), verdict])
    if not rows:
        return table, "The batch file has a header but no rows.", False
    if bad:
        return table, f"{bad} of {len(rows)} rows cannot be made as they are: see the last column.", False
    return table, f"All {len(rows)} rows can be made.", True


_API_HINT = re.compile(r"\s*\((?:``)?(?:GET|DELETE) /v1/[^)]*\)|: GET /v1/[\w/]+(?=\))")
"""An API client's hint in a message ("(GET /v1/audio/voices)", "(one this key may read: GET /v1/lexicons)"): the page
shows its lists itself."""


_SETTING_HINT = re.compile(r"\s*\(serve\.[\w.]+\)")
"""The server setting behind a limit ("(serve.limits.max_input_chars)"): its administrator's to change, words the page's
user cannot act on."""


def page_words(text: str) -> str:
    """A message with its advice to API clients put in the page's terms (:data:`PAGE_WORDS`), its API hints and setting
    names left out."""
    for api, page in PAGE_WORDS.items():
        text = text.replace(api, page)
    return _SETTING_HINT.sub("", _API_HINT.sub("", text))


async def batch_start(app: Any, key: Optional[str], sheet: Upload, references: list[Upload], model: Optional[str],
                      sources: tuple[Upload, ...] = ()) -> dict:
    """``POST /v1/batch`` with the uploaded files (under the names the browser gave them): the CSV, its references and
    its source recordings (conversion rows); the API applies its upload limits, decoding and scopes to each."""
    files = [("csv", (sheet.name, sheet.path.read_bytes(), "text/csv"))]
    files += [("references", (r.name, r.path.read_bytes(), "application/octet-stream")) for r in references]
    files += [("sources", (s.name, s.path.read_bytes(), "application/octet-stream")) for s in sources]
    data = {"model": model} if model else {}
    try:
        return (await call_api(app, "POST", "/v1/batch", key, files=files, data=data)).json()
    except UiError as err:
        raise UiError(page_words(str(err))) from None


def progress_text(state: dict) -> str:
    """A batch job's progress in words."""
    total, done = state.get("total") or 0, state.get("done") or 0
    line = f"Batch {state.get('id', '')[:8]}: {state.get('state')}, {done} of {total} rows made"
    if state.get("failed"):
        line += f", {state['failed']} failed"
    if state.get("error"):
        line += f". {redact(state['error'])}"
    return line + "."


async def health_text(ctx: Any) -> str:
    """What ``demod-voice health`` says, as a Markdown table with the fixes."""
    from demod_voice.health import run_checks
    from demod_voice.serve.status import SERVER_CHECKS

    report = await asyncio.to_thread(run_checks, None, ctx.config, None, SERVER_CHECKS)
    for index, check in enumerate(report.checks):
        if check.name == "config" and check.status == "ok":  # it read the default file; the server has its own
            report.checks[index] = dataclasses.replace(check, detail="the server's configuration, read when it started")
    marks = {"ok": "ok", "warn": "**warn**", "fail": "**FAIL**"}
    lines = ["| status | check | what was found | how to fix it |", "| --- | --- | --- | --- |"]
    for check in report.checks:
        fix = check.fix if check.status != "ok" else ""
        lines.append(f"| {marks.get(check.status, check.status)} | {check.name} | {_cell(check.detail)} | {_cell(fix)} |")
    usable = ", ".join(report.usable) or "none"
    return f"**{marks.get(report.status, report.status)}**: usable backends: {usable} (checked in {report.seconds:.1f} s)\n\n" + "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
