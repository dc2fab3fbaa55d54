"""The page's layout and its events: Clone, Speak and Compare here; Voices, Batch and Health in :mod:`.ui_manage`.

Each handler turns the page's values into a call of :mod:`.ui_actions` (or the server's API)
and returns what the page shows; a failure becomes a sentence in the tab's status line.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Optional

from demod_voice.serve.ui.actions import (
    FORMATS,
    KeysRefused,
    UiError,
    Upload,
    authorize,
    call_api,
    check_files,
    choose,
    cloned_value,
    context,
    failed,
    is_cloned,
    picker,
    quiet_refusals,
    remember_clients,
    row_model_names,
    speak,
    summary,
    uploaded,
    voice_options,
)
from demod_voice.serve.ui.convert import convert_tab
from demod_voice.serve.ui.page import EMPTY_PLAYER, FALLBACK, player_html


class Page:
    """The components events read and update, across tabs."""

    def __init__(self, app: Any, config: Any, uploads: Path) -> None:
        self.app = app
        self.config = config
        self.uploads = uploads
        """Gradio's upload folder: the only place a file input may point into."""
        self.key: Any = None
        self.pickers: list = []
        """Every voice dropdown (refreshed when voices change)."""
        self.cloned_only: set[int] = set()
        """Places in :attr:`pickers` of those that offer cloned voices only (Convert's: a conversion needs a profile)."""
        self.default_first: set[int] = set()
        """Places in :attr:`pickers` of those that start on the configured default voice (Speak's: what a request naming
        none speaks), not on a voice by their place."""
        self.cloned_first: set[int] = set()
        """Places in :attr:`pickers` of those that start on a cloned voice where there is one (Voices': a person who
        enrolled a voice comes there to play, download, rename or delete it; a Piper voice can only be played)."""
        self.voice_table: Any = None
        self.piper_picker: Any = None
        self.batch_starts: dict = {}
        """Batch jobs started from this page lately: what was started -> (when, the start's task) (:func:`.manage._begin`)."""
        self.later: list = []
        """Events wired once every tab exists (they update components of other tabs)."""
        self.blocks: Any = None
        """The page's ``gr.Blocks`` (for its ``load`` event), set as soon as it is opened."""

    def refresh_outputs(self) -> list:
        """What :func:`refreshed` returns values for, in its order."""
        return [*self.pickers, self.voice_table, self.piper_picker]

    def refreshed(self, key: str, selected: str = "", current: Sequence[Any] = ()) -> list:
        """:func:`refreshed` for this page (what the other tabs' modules call: they never import this one)."""
        return refreshed(self, key, selected, current)


def build_page(app: Any, config: Any, keyed: bool, uploads: Path) -> Any:
    """The whole page as a ``gr.Blocks``; ``uploads`` is Gradio's upload folder."""
    import gradio as gr

    from demod_voice.serve.ui import manage as ui_manage

    page = Page(app, config, uploads)
    # Uploads and handed-out files leave Gradio's cache after an hour (checked every 10 minutes).
    with gr.Blocks(title="demod-voice", analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        page.blocks = blocks
        with gr.Row():
            # a width of its own (a Markdown's min_width is not drawn): on a phone the key's box took the row, and the title
            # was squeezed to a letter or three a line
            with gr.Column(min_width=240):
                gr.Markdown("# demod-voice\nClone a voice, speak with it, compare voices, run batches.")
            page.key = gr.Textbox(label="API key", type="password", visible=keyed, elem_id="dv-key", scale=0, min_width=260,
                                  placeholder="the key your administrator gave you")
        tabs = []
        with gr.Tabs():
            for name, build in (("Clone", clone_tab), ("Speak", speak_tab), ("Compare", compare_tab), ("Convert", convert_tab),
                                ("Voices", ui_manage.voices_tab), ("Batch", ui_manage.batch_tab), ("Health", ui_manage.health_tab)):
                with gr.Tab(name, id=name.lower()) as tab:
                    build(page)
                tabs.append(tab)
        for wire in page.later:
            wire()
        outputs = page.refresh_outputs()
        seen = gr.State("")
        """What the pickers were last given (:func:`digest`): a tab's select refreshes them only when it changed."""

        def refresh(key: str, known: str, *chosen: Any) -> list:
            # a voice enrolled, renamed or deleted elsewhere (another tab, another person, the API) was offered only
            # after a reload; an unchanged list is left alone, so that a picker opened at once stays open. A new key
            # keeps each picker's voice where that key may use it too (a person who typed their key after choosing a
            # voice keeps the choice; the refresh may also come in after they chose again)
            listing = listed(page, key)
            if digest(listing) == known:
                return [gr.skip()] * (len(outputs) + 1)
            return [*refreshed(page, key, current=chosen, listing=listing), digest(listing)]

        # One event for the page's load, a new key and each tab's select, run one at a time with the latest inputs
        # after the pending one ("always_last"): as separate events, the load's listing for no key (or a tab's, selected
        # before the key was typed) could come in after the key's and empty every picker until a reload
        # (tests/e2e/test_ui_convert.py waited 120 s for a voice in CI)
        gr.on([blocks.load, page.key.change, *[tab.select for tab in tabs]], refresh, inputs=[page.key, seen, *page.pickers],
              outputs=[*outputs, seen], trigger_mode="always_last", show_progress="hidden")
    # Gradio runs one call of each event at a time unless told otherwise: two people pressing Speak would
    # wait for each other. Its queue (calls waiting for one of its 40 running places) holds as many as the engine's
    # (engine.max_queued): unbounded, a flood of calls was held in memory, each with its inputs, and every person's
    # click waited behind all of it. Past it a call is refused at once (503; the page says the server is busy).
    blocks.queue(default_concurrency_limit=None, max_size=config.engine.max_queued)
    quiet_refusals(blocks)
    remember_clients(blocks)
    return blocks


def listed(page: Page, key: str) -> tuple[list, list]:
    """The voices ``key`` is offered (``(label, value)`` pairs) and the voice table's rows; none for a key that may not
    speak."""
    from demod_voice.serve.ui.actions import voice_rows

    try:
        ctx = context(page.app)
        authorize(ctx, key, "speak")
        return voice_options(ctx), voice_rows(ctx)
    except KeysRefused as err:  # an empty list without a word left the person guessing what was wrong with their key
        import gradio as gr

        gr.Warning(str(err))
        return [], []
    except UiError:
        return [], []


def digest(listing: tuple[list, list]) -> str:
    """A digest of what :func:`listed` gave, to tell whether it changed."""
    return hashlib.sha256(repr(listing).encode()).hexdigest()


def refreshed(page: Page, key: str, selected: str = "", current: Sequence[Any] = (),
              listing: Optional[tuple[list, list]] = None) -> list:
    """New choices for every voice picker and the voice table (after enrolling, renaming, deleting, importing), from
    ``listing`` (:func:`listed`, made now when not given). A picker shows ``selected`` if that is among them, else its
    ``current`` voice (in :attr:`Page.pickers`' order) if that is, else the default voice (:attr:`Page.default_first`)
    or the first cloned voice (:attr:`Page.cloned_first`), else a voice by its place."""
    import gradio as gr

    options, rows = listing or listed(page, key)
    every = [value for _, value in options]
    cloned = [(label, value) for label, value in options if is_cloned(value.partition("|")[0])]
    default = _default_value(page, every)
    pickers = []
    for index, _ in enumerate(page.pickers):
        offered = cloned if index in page.cloned_only else options
        values = [value for _, value in offered]
        kept = current[index] if index < len(current) else None
        first = default if index in page.default_first and default in values else (values[min(index, len(values) - 1)] if values else None)
        if index in page.cloned_first and cloned:
            first = cloned[0][1]
        chosen = selected if selected in values else kept if kept in values else first
        pickers.append(gr.update(choices=offered, value=chosen))
    models = row_model_names(every)
    return [*pickers, gr.update(value=rows), gr.update(choices=[("(the default voice)", "")] + [(n, n) for n in models])]


def _default_value(page: Page, values: list[str]) -> Optional[str]:
    """The pickers' value of ``piper.default_voice`` (its first speaker's, for a voice of several), as a request naming
    no voice resolves it (a voice that is a model of its own before another so named); ``None`` where it is not offered."""
    from demod_voice.serve.voices import default_name

    if page.config is None:
        return None
    name = default_name(page.config)
    named = [value for value in values if value.split("|")[1:2] == [name]]
    return next((value for value in named if value.count("|") == 2), named[0] if named else None)


# --- Clone -------------------------------------------------------------------------------------


def clone_tab(page: Page) -> None:
    import gradio as gr

    from demod_voice.config import XTTS_LANGUAGES

    gr.Markdown("Record yourself or upload recordings: 6-30 s of one person speaking clearly, no music, not clipped. "
                "The checks below say what is wrong with a recording before anything is enrolled.")
    with gr.Row():
        recording = gr.Audio(sources=["microphone"], type="filepath", label="Record in the browser", elem_id="dv-record")
        files = gr.File(file_count="multiple", label="Or upload recordings (wav, flac, ogg, mp3)", elem_id="dv-ref-files")
    checks = gr.Markdown("Record or upload a reference to see its checks.", elem_id="dv-ref-checks")
    with gr.Row():
        name = gr.Textbox(label="Name of the new voice", placeholder="letters, digits, _ . -", elem_id="dv-clone-name")
        language = picker(list(XTTS_LANGUAGES), value=page.config.xtts.language, label="Language it speaks", elem_id="dv-clone-lang")
        enroll_button = gr.Button("Enroll the voice", variant="primary", elem_id="dv-enroll")
    status = gr.Markdown("", elem_id="dv-clone-status")

    async def check(key: str, recorded: Any, sent: Any) -> str:
        try:
            ctx = context(page.app)
            authorize(ctx, key, "enroll")
            files = references(page, recorded, sent)
            text, _ = await asyncio.to_thread(check_files, files, ctx.settings.limits.max_reference_seconds)
        except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
            return failed(err)
        return text

    # one listener for both inputs, as the Batch tab's (manage.batch_tab): an older check never answers last
    gr.on([recording.change, files.change], check, [page.key, recording, files], [checks], trigger_mode="always_last")

    page.later.append(lambda: enroll_button.click(partial(enroll, page), [page.key, name, language, recording, files],
                                                  [status, *page.refresh_outputs()]))


async def enroll(page: Page, key: str, voice: str, lang: str, recorded: Any, sent: Any) -> list:
    """The Enroll button: check the references, enroll them as ``voice`` and pick the new voice in every list."""
    import gradio as gr

    voice = (voice or "").strip()  # "carl " was enrolled as "carl", but shown as "**carl **" and picked nowhere
    try:
        ctx = context(page.app)
        authorize(ctx, key, "enroll")
        files = references(page, recorded, sent)
        text, usable = await asyncio.to_thread(check_files, files, ctx.settings.limits.max_reference_seconds)
        if not usable:
            raise UiError("Not enrolled: " + text.splitlines()[-1])
        await enroll_files(page.app, key, voice, lang, files)
    except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
        return [failed(err), *[gr.skip()] * (len(page.pickers) + 2)]
    return [f"**Done.** Enrolled **{voice}**: it is in every voice list now.", *refreshed(page, key, cloned_value(voice))]


def references(page: Page, recorded: Any, sent: Any) -> list[Upload]:
    """The recording and the uploaded files, each checked to be an upload (never a path the client named)."""
    items = ([recorded] if recorded else []) + list(sent or [])
    return [uploaded(item, page.uploads) for item in items]


async def enroll_files(app: Any, key: str, name: str, language: str, files: list[Upload]) -> dict:
    """``POST /v1/voices``: the server decodes, checks and conditions; the profile is stored once."""
    if not (name or "").strip():
        raise UiError("Give the voice a name first.")
    parts = [("files", (f.name, f.path.read_bytes(), "application/octet-stream")) for f in files]
    response = await call_api(app, "POST", "/v1/voices", key, data={"name": name.strip(), "language": language}, files=parts)
    return response.json()


# --- Speak -------------------------------------------------------------------------------------


def settings_row(page: Page, suffix: str, side: str = "") -> list:
    """Speed and the backends' main settings; ``side`` ("A", "B") is said in their labels (the Compare tab's two sides had
    the same ones: a screen reader heard "Speed" twice, and not which voice it set)."""
    import gradio as gr

    of = f" of voice {side}" if side else ""
    speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label=f"Speed{of}", elem_id=f"dv-speed{suffix}")
    variation = gr.Slider(0.0, 1.0, value=0.667, step=0.01, label=f"Variation{of} (Piper voices: noise scale)", elem_id=f"dv-variation{suffix}")
    temperature = gr.Slider(0.05, 1.5, value=page.config.xtts.temperature, step=0.05, label=f"Temperature{of} (cloned voices)",
                            elem_id=f"dv-temperature{suffix}")
    return [speed, variation, temperature]


def speak_tab(page: Page) -> None:
    import gradio as gr

    from demod_voice.config import XTTS_LANGUAGES

    text = gr.Textbox(label="Text", lines=4, value="Hello! This is demod-voice speaking.", elem_id="dv-text")
    with gr.Row():
        voice = picker([], label="Voice", elem_id="dv-voice", scale=3)
        page.default_first.add(len(page.pickers))
        language = picker(list(XTTS_LANGUAGES), value=page.config.xtts.language, label="Language (cloned voices)",
                               elem_id="dv-language")
        fmt = picker(FORMATS, value="wav", label="Download format", elem_id="dv-format")
    page.pickers.append(voice)
    with gr.Accordion("Speed and settings", open=False):
        settings = settings_row(page, "")
    button = gr.Button("Speak", variant="primary", elem_id="dv-speak")
    player = gr.HTML(EMPTY_PLAYER, elem_id="dv-player", js_on_load=None)
    status = gr.Markdown("", elem_id="dv-speak-status")
    gr.HTML(FALLBACK, js_on_load=None)

    async def run(key: str, words: str, picked: str, lang: str, form: str, speed: float, variation: float, temperature: float) -> Any:
        try:
            ctx = context(page.app)
            authorize(ctx, key, "speak")
            choice = choose(ctx, picked, lang, variation, temperature)
            stream = await speak(ctx, choice, words, form, speed, choice.voice_id.replace(":", "-"))
        except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
            yield EMPTY_PLAYER, failed(err)
            return
        yield player_html(stream.token, stream.filename, form, stream.player.encoder.media_type), "Speaking…"
        await stream.finished()
        # a failed result has nothing to download: its link led to an error answer the browser dropped without a word
        yield (EMPTY_PLAYER if stream.error else gr.skip()), ("**Error:** " if stream.error else "") + summary(stream)

    button.click(run, [page.key, text, voice, language, fmt, *settings], [player, status])


# --- Compare ------------------------------------------------------------------------------------


def compare_tab(page: Page) -> None:
    import gradio as gr

    gr.Markdown("The same text with two voices, or one voice with two settings, side by side.")
    text = gr.Textbox(label="Text", lines=3, value="The same words, said two ways.", elem_id="dv-compare-text")
    sides = []
    with gr.Row():
        for side in ("a", "b"):
            with gr.Column():
                voice = picker([], label=f"Voice {side.upper()}", elem_id=f"dv-compare-voice-{side}")
                page.pickers.append(voice)
                settings = settings_row(page, f"-{side}", side.upper())
                player = gr.HTML(EMPTY_PLAYER, elem_id=f"dv-compare-player-{side}", js_on_load=None)
                sides.append((voice, settings, player))
    button = gr.Button("Compare", variant="primary", elem_id="dv-compare")
    status = gr.Markdown("", elem_id="dv-compare-status")

    async def run(key: str, words: str, *values: Any) -> Any:
        try:
            ctx = context(page.app)
            authorize(ctx, key, "speak")
            streams = []
            for index, side in enumerate(("A", "B")):
                picked, speed, variation, temperature = values[index * 4: index * 4 + 4]
                choice = choose(ctx, picked, None, variation, temperature)
                streams.append(await speak(ctx, choice, words, "wav", speed, f"compare-{side}-{choice.voice_id.replace(':', '-')}"))
        except Exception as err:  # noqa: BLE001 - every failure becomes words on the page
            yield EMPTY_PLAYER, EMPTY_PLAYER, failed(err)
            return
        players = [player_html(s.token, s.filename, "wav", s.player.encoder.media_type) for s in streams]
        yield players[0], players[1], "Speaking…"
        for stream in streams:
            await stream.finished()
        said = " · ".join(f"{side}: {summary(s)}" for side, s in zip("AB", streams, strict=True))
        yield *(EMPTY_PLAYER if s.error else gr.skip() for s in streams), said

    inputs = [page.key, text]
    for voice, settings, _ in sides:
        inputs += [voice, *settings]
    button.click(run, inputs, [sides[0][2], sides[1][2], status])
