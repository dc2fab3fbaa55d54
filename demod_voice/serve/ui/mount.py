"""``serve --ui``: a web page at ``/ui`` for people who do not live in a terminal (Gradio, analytics off).

The page is one more client of the server it is mounted on: it shares the engine, the voices
and the keys. Tabs: Clone (record or upload references, see their checks, enroll), Speak (the
audio streams into the player as it is made; a download in the chosen format), Compare (two
voices or two settings side by side), Voices (list, sample, rename, delete, download, import),
Batch (row checks, start, progress, the zip: the batch job API underneath), Health.

With API keys configured, the page shows a key field and every action checks the key's
scope as the API would; without keys the server only listens on loopback, like the API.
Errors are shown in words; the page's script says so when the server stops answering and then
offers the browser's own speech synthesis in the Speak tab.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware

from demod_voice.config import cache_root
from demod_voice.serve.core import data_dir_for
from demod_voice.serve.ui.guard import EventCalls, FileInputGuard, KeyGuard, PageHeaders, StreamGuard, UnusedRoutes, UploadSpace

log = logging.getLogger(__name__)

PATH = "/ui"


def mount_ui(app: Any, config: Any, path: str = PATH) -> None:
    """Mount the page on ``app`` (before it starts). Gradio's telemetry and version check are off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from demod_voice.serve.ui import scratch

    # Gradio's upload folder and cache (people's recordings) are the page's own from here on, set before Gradio is
    # imported (some of its modules read the folder then): private, and removed when the server stops.
    scratch.folder()
    _remove_at_shutdown(app, scratch.remove)
    try:
        import gradio as gr
    except ImportError:
        from demod_voice.errors import DependencyError

        raise DependencyError("serve --ui needs Gradio: pip install 'demod-voice[ui]'") from None
    from gradio import utils as gradio_utils

    from demod_voice.serve.ui.page import CSS, head, theme
    from demod_voice.serve.ui.stream import add_routes
    from demod_voice.serve.ui.tabs import build_page

    add_routes(app, lambda: app.state.ctx, path)
    uploads = Path(gradio_utils.get_upload_folder()).resolve()
    # Inside the request guard (its Host, origin and body checks come first), in this order: the page's headers on every
    # answer, the key for uploads (and every other POST but an event call), no route of Gradio's the page never uses, the
    # room uploads may take, and innermost (after the body cap) a call naming a file that was not uploaded never reaches
    # Gradio.
    app.user_middleware.append(Middleware(PageHeaders, prefix=path, settings=config.serve))
    app.user_middleware.append(Middleware(KeyGuard, prefix=f"{path}/gradio_api/"))
    app.user_middleware.append(Middleware(UnusedRoutes, prefix=f"{path}/"))
    app.user_middleware.append(Middleware(UploadSpace, prefix=f"{path}/gradio_api/"))
    app.user_middleware.append(Middleware(StreamGuard, prefix=path))
    app.user_middleware.append(Middleware(FileInputGuard, prefix=f"{path}/gradio_api/", uploads=uploads))
    keyed = bool(config.serve.keys or config.serve.keys_file)
    blocks = build_page(app, config, keyed, uploads)
    # innermost of all: a script's call to an event the page does not have is said in words (Gradio's was a bare 500)
    app.user_middleware.append(Middleware(EventCalls, prefix=f"{path}/gradio_api/", blocks=blocks))
    # No folder of the server's is served or copied (allowed_paths empty; its own folders blocked), and Gradio's errors
    # stay in the log (show_error off): the page's own events answer in words, with no paths.
    gr.mount_gradio_app(app, blocks, path=path, footer_links=[], run_history=False, theme=theme(), css=CSS,
                        head=head(config.serve.limits.max_upload_mb),
                        show_error=False, allowed_paths=[], blocked_paths=blocked_paths(config, uploads),
                        max_file_size=int(config.serve.limits.max_upload_mb * 1_000_000), ssr_mode=False, mcp_server=False, pwa=False)
    # Gradio checks that an event's file inputs were uploaded (lie inside its upload folder) only once an app has
    # "launched"; a mounted app never does, and then any server path a client names is copied into its cache and
    # served. This turns Gradio's own check on; FileInputGuard refuses such a call before it, and every event checks
    # its files again after it (actions.uploaded).
    blocks.has_launched = True


def _remove_at_shutdown(app: Any, remove: Any) -> None:
    """Run ``remove`` when the app's lifespan ends (wrapped before Gradio wraps it: after Gradio's own clean-up)."""
    import contextlib

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        try:
            async with inner(app) as state:
                yield state
        finally:
            remove()

    app.router.lifespan_context = lifespan


def blocked_paths(config: Any, uploads: Path) -> list[str]:
    """The server's own folders and files (cache, data, keys file), except one that holds the upload folder or the
    temporary folder (where the page's downloads are made)."""
    found = [cache_root(config), data_dir_for(config)]
    if config.serve.keys_file:
        found.append(Path(config.serve.keys_file).expanduser())
    paths = [Path(os.path.realpath(p)) for p in found]
    keep = [uploads, Path(tempfile.gettempdir()).resolve()]
    return [str(p) for p in paths if not any(k.is_relative_to(p) for k in keep)]
