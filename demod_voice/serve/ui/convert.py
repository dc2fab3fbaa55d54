"""The page's Convert tab: record or upload a recording, pick a cloned voice, listen to the
recording re-spoken in it beside the original. The page is a client of ``POST /v1/audio/conversions``
(same decoding, limits and scope as the API); files come from Gradio's upload folder only."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from demod_voice.serve.ui.actions import (
    UiError,
    Upload,
    authorize,
    call_api,
    context,
    download_dir,
    failed,
    is_cloned,
    picker,
    uploaded,
    voice_options,
)


def convert_tab(page: Any) -> None:
    import gradio as gr

    gr.Markdown("Re-speak a recording in a cloned voice: its words, timing and intonation stay, the voice changes.")
    with gr.Row():
        recording = gr.Audio(sources=["microphone"], type="filepath", label="Record in the browser", elem_id="dv-convert-record")
        upload = gr.File(label="Or upload a recording (wav, flac, ogg, mp3)", elem_id="dv-convert-file")
    voice = picker([], label="Voice to convert into (cloned voices)", elem_id="dv-convert-voice")
    page.cloned_only.add(len(page.pickers))
    page.pickers.append(voice)
    button = gr.Button("Convert", variant="primary", elem_id="dv-convert")
    with gr.Row():
        original = gr.Audio(type="filepath", label="Original", interactive=False, elem_id="dv-convert-original")
        converted = gr.Audio(type="filepath", label="Converted", interactive=False, elem_id="dv-convert-result")
    status = gr.Markdown("", elem_id="dv-convert-status")

    button.click(partial(convert, page), [page.key, recording, upload, voice], [original, converted, status])


async def convert(page: Any, key: str, recorded: Any, sent: Any, picked: str) -> list:
    """The Convert button: the recording (or upload) re-spoken in the picked cloned voice, beside the original."""
    try:
        ctx = context(page.app)
        authorize(ctx, key, "enroll")
        source = _source(page, recorded, sent)
        name = _cloned(ctx, picked)
        started = time.perf_counter()
        target = await convert_file(page.app, key, source, name)
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [None, None, failed(err)]
    return [str(source.path), str(target), f"**Done.** {source.name} in the voice of **{name}** "
                                           f"({time.perf_counter() - started:.1f} s)."]


def _source(page: Any, recorded: Any, sent: Any) -> Upload:
    item = recorded or sent
    if not item:
        raise UiError("Record or upload the recording to convert first.")
    return uploaded(item, page.uploads)


def _cloned(ctx: Any, picked: str) -> str:
    """The voice pickers' values are ``backend|id``; a conversion needs a cloned voice (one with a profile). One that is gone
    since it was picked is the API's to say (it was called a Piper voice here, "not made from recordings")."""
    kind, _, name = (picked or "").partition("|")
    if not name and not any(is_cloned(value.partition("|")[0]) for _, value in voice_options(ctx)):
        # "Pick the voice to convert into" beside an empty list: there was nothing to pick
        raise UiError("There is no cloned voice here yet: enroll one in the Clone tab first, then pick it here.")
    if not name:
        raise UiError("Pick the voice to convert into.")
    if not is_cloned(kind):  # a Piper voice's id is 'name|speaker'
        raise UiError("Conversion needs a cloned voice (enroll one in the Clone tab); Piper voices are not made from recordings.")
    return name


async def convert_file(app: Any, key: str, source: Upload, voice: str) -> Path:
    """``POST /v1/audio/conversions`` with the upload and the voice; the WAV answer saved where Gradio may serve it."""
    parts = [("file", (source.name, source.path.read_bytes(), "application/octet-stream"))]
    response = await call_api(app, "POST", "/v1/audio/conversions", key, data={"voice": voice, "response_format": "wav"}, files=parts)
    target = download_dir() / f"{Path(source.name).stem or 'recording'}-as-{voice}.wav"
    target.write_bytes(response.content)
    return target
