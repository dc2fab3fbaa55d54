"""The page's Voices, Batch and Health tabs (layout and events; see :mod:`.ui_tabs` for the others)."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any, Optional

from demod_voice.serve.ui.actions import (
    SAMPLE_TEXT,
    UiError,
    Upload,
    authorize,
    batch_rows,
    batch_start,
    call_api,
    choose,
    cloned_value,
    context,
    download_dir,
    failed,
    health_text,
    is_cloned,
    may,
    picker,
    progress_text,
    speak,
    summary,
    uploaded,
)
from demod_voice.serve.ui.page import EMPTY_PLAYER, player_html

# --- Voices ------------------------------------------------------------------------------------


def voices_tab(page: Any) -> None:
    import gradio as gr

    page.voice_table = gr.Dataframe(headers=["voice", "kind", "language", "speakers"], interactive=False, elem_id="dv-voice-table",
                                    label="Voices on this server")
    with gr.Row():
        voice = picker([], label="Voice", elem_id="dv-voices-pick", scale=3)
        sample = gr.Button("Play a sample", elem_id="dv-sample")
        download = gr.Button("Download the profile", elem_id="dv-profile-download")
        delete = gr.Button("Delete", variant="stop", elem_id="dv-delete")
    page.cloned_first.add(len(page.pickers))
    page.pickers.append(voice)
    player = gr.HTML(EMPTY_PLAYER, elem_id="dv-sample-player", js_on_load=None)
    profile_file = gr.File(label="Profile file", visible=False, elem_id="dv-profile-file")
    with gr.Row():
        new_name = gr.Textbox(label="New name", elem_id="dv-new-name")
        rename = gr.Button("Rename", elem_id="dv-rename")
    with gr.Row():
        imported = gr.File(label="Import a profile (.npz downloaded from a demod-voice server)", file_types=[".npz"], elem_id="dv-import-file")
        import_name = gr.Textbox(label="Import as (optional)", placeholder="the name it was exported with", elem_id="dv-import-name")
        import_button = gr.Button("Import", elem_id="dv-import")
    status = gr.Markdown("", elem_id="dv-voices-status")

    sample.click(partial(_play, page), [page.key, voice], [player, status])
    # a profile downloaded for one voice stayed on show beside the next voice picked ("carl.npz" under tiny-single); only
    # the person's own pick hides it: a refresh after a delete keeps the copy they were told to save first
    voice.input(_hidden, None, [profile_file], show_progress="hidden")
    download.click(partial(_fetch_profile, page), [page.key, voice], [profile_file, status])
    # each picker's voice goes with them: a refresh by place put another voice in the Speak and Compare tabs' pickers
    sure = gr.Checkbox(False, visible=False)
    """Whether the person said yes to deleting (set by :data:`CONFIRM_DELETE` in the browser)."""
    page.later.append(lambda: delete.click(partial(_remove, page), [page.key, voice, sure, *page.pickers],
                                           [status, *page.refresh_outputs()], js=confirm_delete()))
    page.later.append(lambda: rename.click(partial(_rename, page), [page.key, voice, new_name, *page.pickers],
                                           [status, *page.refresh_outputs()]))
    page.later.append(lambda: import_button.click(partial(_import, page), [page.key, imported, import_name], [status, *page.refresh_outputs()]))


CONFIRM_DELETE = """(key, picked, confirmed, ...rest) => {
  const [kind, name] = (picked || '').split('|');
  const sure = !name || !CLONED.includes(kind)
    || window.confirm(`Delete the voice ${name} for good? Download its profile first to keep a copy.`);
  return [key, picked, sure, ...rest];
}"""
"""Delete asks first (one tap deleted a voice for good): the browser's answer goes with the event. ``CLONED`` (the kinds
whose voices are profiles, :func:`confirm_delete`): a Piper voice is refused by the server, with no question first."""


def confirm_delete() -> str:
    """:data:`CONFIRM_DELETE` with the kinds of voices that are profiles."""
    import json

    from demod_voice.backends import registry

    kinds = sorted(name for name, side in registry.load().sides.items() if side.clones)
    return CONFIRM_DELETE.replace("CLONED", json.dumps(kinds))


async def _play(page: Any, key: str, picked: str) -> Any:
    import gradio as gr

    try:
        ctx = context(page.app)
        authorize(ctx, key, "speak")
        choice = choose(ctx, picked)
        stream = await speak(ctx, choice, SAMPLE_TEXT, "wav", 1.0, f"sample-{choice.voice_id.replace(':', '-')}")
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        yield EMPTY_PLAYER, failed(err)
        return
    yield player_html(stream.token, stream.filename, "wav", stream.player.encoder.media_type), "Playing a sample…"
    await stream.finished()
    yield (EMPTY_PLAYER if stream.error else gr.skip()), summary(stream)  # nothing to download from a failed one


def _hidden() -> Any:
    """An update that hides a component and empties it."""
    import gradio as gr

    return gr.update(value=None, visible=False)


async def _fetch_profile(page: Any, key: str, picked: str) -> list:
    import gradio as gr

    try:
        name = _profile_name(picked, "downloaded")
        response = await call_api(page.app, "GET", f"/v1/voices/{name}/download", key)
        target = download_dir() / f"{name}.npz"
        target.write_bytes(response.content)
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [gr.update(visible=False), failed(err)]
    return [gr.update(value=str(target), visible=True), f"**Done.** The profile of **{name}** is ready to save (it imports on any "
                                                        "demod-voice server)."]


def _changed(page: Any, key: str, message: str, selected: str = "", current: tuple = ()) -> list:
    """``message`` and every picker refreshed: ``selected`` shown in all if given, else each keeps its ``current`` voice
    (in the order of the page's pickers) where it still exists."""
    return [message, *page.refreshed(key, selected, current)]


def _unchanged(page: Any, err: BaseException) -> list:
    import gradio as gr

    return [failed(err), *[gr.skip()] * len(page.refresh_outputs())]


async def _remove(page: Any, key: str, picked: str, sure: bool, *current: Any) -> list:
    import gradio as gr

    if picked and not sure:
        return ["Not deleted.", *[gr.skip()] * len(page.refresh_outputs())]
    try:
        name = _profile_name(picked, "deleted")
        await call_api(page.app, "DELETE", f"/v1/voices/{name}", key)
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return _unchanged(page, err)
    return _changed(page, key, f"**Done.** Deleted **{name}**.", current=current)


async def _rename(page: Any, key: str, picked: str, new: str, *current: Any) -> list:
    new = (new or "").strip()
    try:
        old = _profile_name(picked, "renamed")
        if not new:  # the API's answer was "'' is not a valid voice id"
            raise UiError(f"Type the new name of {old} in 'New name' first.")
        await call_api(page.app, "PATCH", f"/v1/voices/{old}", key, json={"name": new})
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return _unchanged(page, err)
    current = tuple(cloned_value(new) if value == picked else value for value in current)  # where it was picked
    return _changed(page, key, f"**Done.** **{old}** is now called **{new}**.", current=current)


async def _import(page: Any, key: str, upload: Any, name: str = "") -> list:
    """Import a downloaded profile, under the name typed in 'Import as' if any (two people's exports both called 'me':
    the page said "import it under another name (the field 'name')" and had no such field)."""
    name = (name or "").strip()
    try:
        if not upload:
            raise UiError("Choose a profile file (.npz) to import first.")
        profile = uploaded(upload, page.uploads)
        response = await call_api(page.app, "POST", "/v1/voices/import", key, data={"name": name} if name else {},
                                  files=[("file", (profile.name, profile.path.read_bytes(), "application/octet-stream"))])
        name = response.json()["id"]
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return _unchanged(page, err)
    return _changed(page, key, f"**Done.** Imported **{name}**.", cloned_value(name))


def _profile_name(picked: str, done: str) -> str:
    """The cloned voice's name in a picker's value; a voice of another kind is refused in words that say why (the page
    named a terminal command, 'demod-voice models remove NAME', that its users do not have)."""
    kind, _, rest = (picked or "").partition("|")
    if not picked:
        raise UiError("Pick a voice first.")
    if not is_cloned(kind):
        raise UiError(f"Only cloned voices can be {done} here: {rest.partition('|')[0]} came with this server "
                      "(its administrator installs and removes such voices).")
    return rest


# --- Batch -------------------------------------------------------------------------------------


SHEET_TYPES = [".csv", ".tsv", ".txt", ".xlsx", ".xls", ".ods"]
"""What the batch file picker takes: what ``batch`` reads, and the workbooks its check tells to save as CSV UTF-8."""


def batch_tab(page: Any) -> None:
    import gradio as gr

    gr.Markdown("A CSV with the columns `text`, `output` (or an `id`: the row's file is then `ID.wav`; the extension picks "
                "wav, flac, ogg, mp3 or opus) and one of `reference` (a file uploaded here), `voice` (a cloned voice) "
                "or `model` (a Piper voice); optional `language`, `speaker`. A row with a `source` (a recording uploaded here) and no "
                "`text` converts that recording into the voice of its `reference` or `voice`. Each row is checked before anything runs.")
    with gr.Row():
        # what batch reads (tab-separated .tsv, Excel's "Unicode Text" .txt) and a workbook, which the row check tells to
        # save as CSV UTF-8: a .txt or .xlsx was "Invalid file type. Please upload a file that is one of these formats: ['.csv']"
        sheet = gr.File(label="Batch file (CSV, or tab-separated .tsv / .txt)", file_types=SHEET_TYPES, elem_id="dv-batch-csv")
        references = gr.File(file_count="multiple", label="Reference recordings the CSV names", elem_id="dv-batch-refs")
        sources = gr.File(file_count="multiple", label="Source recordings the CSV names (to convert)", elem_id="dv-batch-sources")
        page.piper_picker = picker([("(the default voice)", "")], value="", label="Piper voice for rows without one",
                                        elem_id="dv-batch-model")
    rows = gr.Dataframe(headers=["line", "text", "voice", "output", "check"], interactive=False, elem_id="dv-batch-rows",
                        label="Row checks")
    check_status = gr.Markdown("", elem_id="dv-batch-checks")
    start = gr.Button("Start the batch", variant="primary", elem_id="dv-batch-start")
    progress = gr.Markdown("", elem_id="dv-batch-progress")
    result = gr.DownloadButton("Download the results (zip)", visible=False, elem_id="dv-batch-download")
    mine = picker([], label="This key's batch jobs (pick one to follow it or download its results)", elem_id="dv-batch-jobs")
    job = gr.State("")
    saved = gr.BrowserState("", storage_key="demod-voice-batch-job", render=False)
    """The last job started in this browser: a reload (or a second tab) shows it again instead of losing it. Drawn
    outside the tabs (page.later): in a tab it is read from the browser only once that tab is opened, after the load."""
    page.later.append(saved.render)
    timer = gr.Timer(1.0, active=False)

    # One listener for every input: a check still running when another upload lands is followed by one more check of
    # what the page then holds ("always_last"), so an older check never answers last (four listeners ran at once and
    # could: two files uploaded in quick succession left the first upload's verdict on the page).
    gr.on([sheet.change, references.change, sources.change, page.piper_picker.change], partial(_check_batch, page),
          [page.key, sheet, references, page.piper_picker, sources], [rows, check_status], trigger_mode="always_last")
    start.click(partial(_begin, page), [page.key, sheet, references, page.piper_picker, sources],
                [job, progress, timer, result, saved]).then(partial(_jobs, page), [page.key, job], [mine], show_progress="hidden")
    timer.tick(partial(_tick, page), [page.key, job], [progress, timer, result])
    mine.input(partial(_follow, page), [page.key, mine], [job, progress, timer, result, saved])
    gr.on([page.blocks.load, page.key.change, progress.change], partial(_jobs, page), [page.key, job], [mine],
          show_progress="hidden", trigger_mode="always_last")
    # a key typed after the reload may be the one the job belongs to; typed while the load's look-up (keyless: refused) was
    # still on its way, it was dropped ("once", gr.on's default for a load) and the job stayed out of sight
    gr.on([page.blocks.load, page.key.change], partial(_resume, page), [page.key, saved, job], [job, progress, timer, result],
          show_progress="hidden", trigger_mode="always_last")


async def _check_batch(page: Any, key: str, csv_file: Any, refs: Any, model: str, srcs: Any = None) -> list:
    import gradio as gr

    try:
        ctx = context(page.app)
        authorize(ctx, key, "speak")
        sheet, references = _batch_files(page, csv_file, refs)
        sources = _uploads(page, srcs)
        table, text, _ = await asyncio.to_thread(batch_rows, ctx, sheet, references, model or None, sources, may(ctx, key, "enroll"))
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [gr.update(value=[]), failed(err)]
    return [gr.update(value=table), text]


SAME_START_SECONDS = 3.0
"""A second Start of the same batch file, with the same files and key, this soon after the first is the first (a double
click started two jobs: the page showed one, the other ran out of sight and counted against the key's jobs)."""


async def _begin(page: Any, key: str, csv_file: Any, refs: Any, model: str, srcs: Any = None) -> list:
    import gradio as gr

    try:
        ctx = context(page.app)
        authorize(ctx, key, "speak")
        sheet, references = _batch_files(page, csv_file, refs)
        sources = _uploads(page, srcs)
        if sheet is None:
            raise UiError("Upload a batch file first.")
        same = (key, model, str(sheet.path), *(str(r.path) for r in references), *(str(s.path) for s in sources))
        started = page.batch_starts.get(same)
        if started is None or time.monotonic() - started[0] > SAME_START_SECONDS:
            started = (time.monotonic(), asyncio.ensure_future(batch_start(page.app, key, sheet, references, model or None, sources)))
            page.batch_starts = {k: v for k, v in page.batch_starts.items() if time.monotonic() - v[0] <= SAME_START_SECONDS}
            page.batch_starts[same] = started
        state = await asyncio.shield(started[1])
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return ["", failed(err), gr.Timer(active=False), gr.update(visible=False), gr.skip()]
    return [state["id"], progress_text(state), gr.Timer(active=True), gr.update(visible=False), state["id"]]


async def _resume(page: Any, key: str, saved: str, shown: str) -> list:
    """The batch job this browser started last, shown again after a reload (its progress, then its download): the page
    forgot it, and the job ran on out of sight with no way to get its results. Silent when there is none, or when it is
    not this key's or no longer kept (the watch :func:`_tick` then takes over)."""
    import gradio as gr

    if not isinstance(saved, str) or not saved.isalnum() or shown:  # a job id is hex (job_store); anything else is not one
        return [gr.skip()] * 4
    try:
        state = (await call_api(page.app, "GET", f"/v1/batch/{saved}", key)).json()
    except UiError:
        return [gr.skip()] * 4
    return [saved, progress_text(state), gr.Timer(active=True), gr.update(visible=False)]


async def _jobs(page: Any, key: str, shown: str) -> Any:
    """The key's batch jobs (``GET /v1/batch``), newest first, the one on show picked: a job started in another browser,
    or before the last one this browser started, could not be found again on the page, nor its results downloaded."""
    import gradio as gr

    try:
        jobs = (await call_api(page.app, "GET", "/v1/batch", key)).json()["data"]
    except UiError:
        return gr.update(choices=[], value=None)
    choices = [(f"{job['id'][:8]}: {job['state']}, {job.get('done') or 0} of {job.get('total') or 0} rows, "
                f"{str(job.get('created') or '').replace('T', ' ').rstrip('Z')} UTC", job["id"]) for job in jobs]
    return gr.update(choices=choices, value=shown if shown in {value for _, value in choices} else None)


async def _follow(page: Any, key: str, picked: str) -> list:
    """A job picked from the key's list: its progress, then its download, as for a job started here."""
    import gradio as gr

    if not isinstance(picked, str) or not picked.isalnum():
        return [gr.skip()] * 5
    try:
        state = (await call_api(page.app, "GET", f"/v1/batch/{picked}", key)).json()
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [gr.skip(), failed(err), gr.Timer(active=False), gr.update(visible=False), gr.skip()]
    return [picked, progress_text(state), gr.Timer(active=True), gr.update(visible=False), picked]


async def _tick(page: Any, key: str, job_id: str) -> list:
    import gradio as gr

    if not job_id:
        return [gr.skip(), gr.Timer(active=False), gr.skip()]
    try:
        state = (await call_api(page.app, "GET", f"/v1/batch/{job_id}", key)).json()
        if state["state"] in ("queued", "running"):
            return [progress_text(state), gr.skip(), gr.skip()]
        archive = await call_api(page.app, "GET", f"/v1/batch/{job_id}/result", key)
        target = download_dir() / f"batch-{job_id[:8]}.zip"
        target.write_bytes(archive.content)
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [failed(err), gr.Timer(active=False), gr.skip()]
    return ["**Done.** " + progress_text(state), gr.Timer(active=False), gr.update(value=str(target), visible=True)]


def _batch_files(page: Any, csv_file: Any, refs: Any) -> tuple[Optional[Upload], list[Upload]]:
    """The batch file and the references, each checked to be an upload."""
    sheet = uploaded(csv_file, page.uploads) if csv_file else None
    return sheet, list(_uploads(page, refs))


def _uploads(page: Any, items: Any) -> tuple[Upload, ...]:
    """Files of a multiple-file input, each checked to be an upload (never a server path a script names)."""
    return tuple(uploaded(item, page.uploads) for item in items or [])


# --- Health ------------------------------------------------------------------------------------


def health_tab(page: Any) -> None:
    import gradio as gr

    gr.Markdown("What `demod-voice health` says about this server: what works, what does not, and how to fix it.")
    button = gr.Button("Run the checks", elem_id="dv-health-run")
    report = gr.Markdown("", elem_id="dv-health")

    one_at_a_time = asyncio.Lock()  # the checks start child interpreters: one run at a time

    async def run(key: str) -> str:
        try:
            ctx = context(page.app)
            authorize(ctx, key, "admin")  # what the server runs and where: for its administrator
            async with one_at_a_time:
                return await health_text(ctx)
        except Exception as err:  # noqa: BLE001
            return failed(err)

    # Not Gradio's concurrency_limit=1: that ran the key check one call at a time too, so calls without a key queued
    # behind each other in Gradio's queue, each holding its inputs (1,500 keyless calls held 1.1 GB); they are
    # refused at once now, and only an admin's runs wait for each other.
    button.click(run, [page.key], [report], api_name="health")
