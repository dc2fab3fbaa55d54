"""``/v1/books`` on one live server with keys (127.0.0.1): a Markdown book in, its .m4b out (chapters read back
with ffprobe), books owned by their key, a delete that stops a running book and removes its files, the per-key cap,
and hostile EPUBs refused before anything runs, with no server path in the answer."""

from __future__ import annotations

import json
import signal
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
from live_server import start_server, wait_until

pytest.importorskip("fastapi")
pytestmark = pytest.mark.skipif(not Path("/usr/bin/ffprobe").exists(), reason="ffprobe (FFmpeg) reads the result back")

OWNER, OTHER, BUSY = "books-key-0001", "books-key-0002", "books-key-0003"
VOICE = "tiny-single"
BOOK_MD = """# The First Part

The sun was warm and the children played in the park. It cost $3.50 to get in.

# The Second Part

We walked home slowly after a long day at work.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice):
    folder = tmp_path_factory.mktemp("books-api")
    config = {
        "piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
        "book": {"max_epub_members": 12, "serve_max_jobs_per_key": 1},
        "serve": {"keys": {OWNER: "speak", OTHER: "speak", BUSY: "speak"}, "piper_voices": [str(piper_voice)], "grace_seconds": 2.0},
    }
    live = start_server(folder, config)
    yield live
    live.stop(signal.SIGKILL)


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def books_dir(server) -> Path:
    return server.folder / "cache" / "demod-voice" / "serve" / "books"


def post_book(server, name: str, data: bytes, key: str = OWNER, **fields: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/books", headers=auth(key), data={"voice": VOICE, **fields}, files=[("book", (name, data))],
                      timeout=60)


def wait_book(server, job_id: str, key: str = OWNER, timeout: float = 300) -> dict:
    state: dict = {}

    def finished() -> bool:
        state.update(httpx.get(f"{server.url}/v1/books/{job_id}", headers=auth(key), timeout=10).json())
        return state.get("state") not in ("queued", "running")

    assert wait_until(finished, timeout, step=0.5), state
    return state


def test_a_markdown_book_becomes_an_m4b_with_its_chapters_and_only_its_key_sees_it(server, tmp_path):
    created = post_book(server, "Walks.md", BOOK_MD.encode(), captions="srt")
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.json()["chapters"] == 2 and created.json()["title"] == "Walks"
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        answer = httpx.request(method, f"{server.url}/v1/books/{job_id}{path}", headers=auth(OTHER), timeout=10)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_job", (method, path, answer.text)
    state = wait_book(server, job_id)
    assert state["state"] == "done", state["error"]
    assert state["chapters"] == 2 and state["audio_seconds"] > 0, state
    assert state["done"] == state["total"] > 0, state  # a done book said "done 0" of 67
    assert sorted(state["outputs"]) == ["book.m4b", "book.srt"]

    answer = httpx.get(f"{server.url}/v1/books/{job_id}/result", headers=auth(OWNER), timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip", answer.text[:200]
    (tmp_path / "result.zip").write_bytes(answer.content)
    with zipfile.ZipFile(tmp_path / "result.zip") as archive:
        assert sorted(archive.namelist()) == ["book.m4b", "book.srt", "report.json"]
        archive.extractall(tmp_path)
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", "-show_format",
                                       str(tmp_path / "book.m4b")], capture_output=True, text=True, check=True, timeout=60).stdout)
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["The First Part", "The Second Part"]
    assert probe["format"]["tags"]["title"] == "Walks"
    captions = (tmp_path / "book.srt").read_text()
    assert "It cost $3.50 to get in." in captions  # captions show the book's words; the voice was given them spelled out
    report = (tmp_path / "report.json").read_text()
    assert str(server.folder) not in report and json.loads(report)["outputs"] == ["book.m4b", "book.srt"]

    folder = books_dir(server) / job_id
    assert folder.is_dir()
    gone = httpx.delete(f"{server.url}/v1/books/{job_id}", headers=auth(OWNER), timeout=60)
    assert gone.status_code == 200 and gone.json() == {"id": job_id, "deleted": True}
    assert not folder.exists()
    assert httpx.get(f"{server.url}/v1/books/{job_id}", headers=auth(OWNER), timeout=10).status_code == 404


def test_one_book_at_a_time_per_key_and_a_delete_stops_a_running_book(server, tmp_path):
    long = "\n\n".join(f"# Part {n}\n\n" + " ".join(f"Sentence {w} of part {n} is read here." for w in range(40)) for n in range(4))
    first = post_book(server, "long.md", long.encode(), key=BUSY)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    second = post_book(server, "short.md", BOOK_MD.encode(), key=BUSY)
    assert second.status_code == 429 and "book.serve_max_jobs_per_key" in second.json()["error"]["message"], second.text
    assert wait_until(lambda: list((books_dir(server) / job_id / "takes" / "takes").glob("*.flac")), 120, step=0.2)
    early = httpx.get(f"{server.url}/v1/books/{job_id}/result", headers=auth(BUSY), timeout=10)
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_finished", early.text
    gone = httpx.delete(f"{server.url}/v1/books/{job_id}", headers=auth(BUSY), timeout=60)
    assert gone.status_code == 200, gone.text
    assert not (books_dir(server) / job_id).exists()
    again = post_book(server, "short.md", BOOK_MD.encode(), key=BUSY)
    assert again.status_code == 202, again.text
    final = wait_book(server, again.json()["id"], key=BUSY)
    assert final["state"] == "done", final["error"]
    m4b = httpx.get(f"{server.url}/v1/books/{again.json()['id']}/result", headers=auth(BUSY), timeout=60)
    assert m4b.status_code == 200 and m4b.headers["content-type"] == "audio/mp4", m4b.text[:200]
    (tmp_path / "short.m4b").write_bytes(m4b.content)
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(tmp_path / "short.m4b")],
                                      capture_output=True, text=True, check=True, timeout=60).stdout)
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["The First Part", "The Second Part"]


def test_a_speaker_the_voice_does_not_have_is_refused_before_the_book_is_queued(server):
    """``speaker=7`` with a single-speaker voice was accepted and the book read by the one speaker there is (``book -s 7``
    and ``piper-infer -s 7`` refuse it)."""
    before = set(books_dir(server).iterdir()) if books_dir(server).is_dir() else set()
    answer = post_book(server, "b.md", BOOK_MD.encode(), speaker="7")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_option", answer.text
    assert answer.json()["error"]["message"] == f"the voice '{VOICE}' has a single speaker: leave the speaker out (it was '7')"
    assert (set(books_dir(server).iterdir()) if books_dir(server).is_dir() else set()) == before, "nothing is left of it"


def _epub(members: dict[str, str]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                         'container" version="1.0"><rootfiles><rootfile full-path="book.opf" media-type="application/oebps-'
                         'package+xml"/></rootfiles></container>')
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


OPF = ('<?xml version="1.0"?>{doctype}<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/'
       'dc/elements/1.1/"><dc:title>{title}</dc:title></metadata><manifest><item id="c" href="c.xhtml" media-type="application/'
       'xhtml+xml"/></manifest><spine><itemref idref="c"/></spine></package>')
CHAPTER = '<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>One</h1><p>The sun was warm and bright today.</p></body></html>'


@pytest.mark.parametrize("case", ["xxe", "too-many-members", "not-a-zip"])
def test_hostile_epubs_are_refused_before_anything_runs_with_no_server_path(server, tmp_path, case):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    if case == "xxe":
        doctype = f'<!DOCTYPE package [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        data, words = _epub({"book.opf": OPF.format(doctype=doctype, title="&xxe;"), "c.xhtml": CHAPTER}), "declares XML entities"
    elif case == "too-many-members":
        extra = {f"pad{n}.css": "p {}" for n in range(20)}
        data, words = _epub({"book.opf": OPF.format(doctype="", title="T"), "c.xhtml": CHAPTER, **extra}), "book.max_epub_members"
    else:
        data, words = b"PK\x03\x04 not really a zip", "not a readable EPUB"
    before = set(books_dir(server).iterdir()) if books_dir(server).is_dir() else set()
    answer = post_book(server, "hostile.epub", data)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_book", answer.text
    message = answer.json()["error"]["message"]
    assert words in message and "hostile.epub" in message, message
    assert str(server.folder) not in answer.text and "/serve/" not in answer.text and "TOPSECRET" not in answer.text
    assert (set(books_dir(server).iterdir()) if books_dir(server).is_dir() else set()) == before, "nothing is left of it"


@pytest.fixture
def racing(tmp_path, piper_multi_voice):
    """A server's context (no engine) with one installed multi-speaker voice, ``kitchen``."""
    import shutil

    from demod_voice.config import load_config
    from demod_voice.serve.core import build_context

    model = tmp_path / "cache" / "piper" / "kitchen.onnx"
    model.parent.mkdir(parents=True)
    shutil.copy(piper_multi_voice, model)
    shutil.copy(f"{piper_multi_voice}.json", f"{model}.json")
    config, _ = load_config(None, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")})
    return build_context(config, None), model


def _queued_book(ctx, model):
    """The folder of a one-line book queued by 'owner' for the voice 'kitchen' at ``model``, as ``POST /v1/books`` leaves
    it for its thread (``book_jobs._run``)."""
    from demod_voice.serve.http import book_jobs, job_store

    folder = job_store.reserve(ctx, book_jobs.BOOK, "owner")
    (folder / "out").mkdir()
    (folder / "book.md").write_text("# One\n\nHello there.\n")
    voice = {"kind": "piper", "name": "kitchen", "path": str(model), "speaker": None}
    job_store.write_state(folder, id=folder.name, owner="owner", state="queued", source="book.md", options={"voice": voice})
    return folder


def test_a_voice_damaged_or_deleted_as_its_book_starts_is_said_without_a_server_path(racing, monkeypatch, tmp_path,
                                                                                    piper_multi_voice):
    """A voice listed when ``POST /v1/books`` found it, then damaged before its speaker was checked, answered 400 with
    the voice's .onnx.json path; a voice deleted or damaged between the book's 202 and its start failed the book with the
    path and the command line's advice (``demod-voice models list``) in its ``error``."""
    import shutil

    from demod_voice.errors import InputError
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.http import book_jobs, books, job_store

    ctx, model = racing
    config = model.parent / "kitchen.onnx.json"
    found = books.find_voice

    def damaged_once_found(ctx, name, *args, **kwargs):
        voice = found(ctx, name, *args, **kwargs)
        config.write_text("{broken")  # read again: the cache keeps a voice's config only while its file stays the same
        return voice

    monkeypatch.setattr(books, "find_voice", damaged_once_found)
    with pytest.raises(ApiError) as refused:
        books._voice(ctx, {"voice": "kitchen", "speaker": "1"})
    assert (refused.value.status, refused.value.code) == (503, "damaged_voice") and str(tmp_path) not in str(refused.value)

    def failed_book(change) -> str:
        folder = _queued_book(ctx, model)
        change()
        book_jobs._run(ctx, folder.name, job_store.Budget(10**8, 60, "a", "b", "c", "takes"))
        state = job_store.read_state(folder)
        assert state["state"] == "failed" and str(tmp_path) not in state["error"] and "demod-voice" not in state["error"], state
        return state["error"]

    assert failed_book(lambda: None) == "the voice 'kitchen' is damaged on this server: download it again"  # still broken
    gone = ("the voice 'kitchen' is not on this server any more (deleted or renamed since the book was sent): send the book "
            "again with another voice (GET /v1/audio/voices)")
    assert failed_book(lambda: (model.unlink(), config.unlink())) == gone
    shutil.copy(piper_multi_voice, model)
    shutil.copy(f"{piper_multi_voice}.json", config)

    def deleted_while_read(request, progress):  # as the engine's worker says it for a take after the voice was deleted
        model.unlink()
        raise InputError(f"chapter 1 (One), take 1 ('Hello there.'): voice model {model} not found; check the path, or name an "
                         "installed voice ('demod-voice models list')")

    monkeypatch.setattr(book_jobs, "run_book", deleted_while_read)
    assert failed_book(lambda: None) == gone


def test_a_language_the_cloned_voice_cannot_speak_is_refused_before_the_book_is_queued(tmp_path, xtts_model):
    """``language=xx`` with a cloned voice was accepted (202) and the book failed once it ran ("a cloned voice cannot
    speak 'xx'"), as a missing speaker did before; a language it speaks, in any case, is still taken."""
    import numpy as np

    from demod_voice.config import load_config
    from demod_voice.serve.core import build_context
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.http import books
    from demod_voice.voices.profiles import write_profile

    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"),
           "DEMOD_VOICE_XTTS_MODEL_DIR": str(xtts_model)}
    config, _ = load_config(None, env=env)
    ctx = build_context(config, None)
    ctx.profiles.mkdir(parents=True, exist_ok=True)
    write_profile(ctx.profiles / "alice.npz", "alice", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"),
                  np.zeros((1, 8, 1), "float32"))
    with pytest.raises(ApiError) as refused:
        books._voice(ctx, {"voice": "alice", "language": "xx"})
    assert (refused.value.status, refused.value.code) == (400, "bad_option")
    assert str(refused.value).startswith("a cloned voice cannot speak 'xx': ") and "de" in str(refused.value)
    assert books._voice(ctx, {"voice": "alice", "language": "DE"}) == {"kind": "xtts", "name": "alice", "language": "DE"}


def test_a_book_that_fails_on_a_full_disk_says_so_and_stops_counting_against_its_key(racing, monkeypatch):
    """A take written to a full disk failed the book, but its final state could not be written either, and that was
    dropped as "deleted while it ended": the book stayed "running" (done 0) for as long as the server ran, with nothing in
    the log, and counted against its key's cap (429 for every next book). Its state is kept until it can be written."""
    import errno

    from demod_voice import paths
    from demod_voice.errors import OutputFull
    from demod_voice.serve.http import book_jobs, job_store

    ctx, model = racing
    folder = _queued_book(ctx, model)
    written = paths.write_text_atomic

    def fills_the_disk(request, progress):
        monkeypatch.setattr(paths, "write_text_atomic", full)
        raise OutputFull(f"chapter 1, take 1: cannot write {folder}/takes/a.flac: no space left on its filesystem (0 KiB free); "
                         "free some space and run the same command again")

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(book_jobs, "run_book", fills_the_disk)
    book_jobs._run(ctx, folder.name, job_store.Budget(10**8, 60, "a", "b", "c", "takes"))
    state = job_store.read_state(folder)
    assert state["state"] == "failed" and state["error"] == ("the server ran out of disk space while it read the book: send it "
                                                             "again later (its administrator must free some space)")
    with pytest.raises(OSError):  # a full disk still refuses the next book (507), but not by its key's cap (an ApiError 429)
        job_store.reserve(ctx, book_jobs.BOOK, "owner")
    monkeypatch.setattr(paths, "write_text_atomic", written)  # space again: the state is written at the next read
    assert job_store.read_state(folder)["state"] == "failed"
    assert json.loads((folder / "job.json").read_text())["state"] == "failed"


def test_a_book_whose_voice_cannot_be_looked_at_again_after_it_failed_still_ends_failed(racing, monkeypatch):
    """After a book failed, its voice is looked at again (deleted since? that is the error to give); a look that failed
    itself (the voice's files unreadable) left ``_run`` from inside its error handling: the book stayed "running" for as
    long as the server ran and counted against its key's cap (hreview3)."""
    from demod_voice.errors import InputError
    from demod_voice.serve.http import book_jobs, job_store

    ctx, model = racing
    folder = _queued_book(ctx, model)
    found = book_jobs.find_voice

    def fails(request, progress):
        monkeypatch.setattr(book_jobs, "find_voice", unreadable)
        raise InputError("chapter 1 (One), take 1 ('Hello there.'): the take could not be made")

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(book_jobs, "run_book", fails)
    book_jobs._run(ctx, folder.name, job_store.Budget(10**8, 60, "a", "b", "c", "takes"))
    monkeypatch.setattr(book_jobs, "find_voice", found)
    state = job_store.read_state(folder)
    assert state["state"] == "failed" and "the take could not be made" in state["error"], state


def test_a_voice_alias_reads_a_book_as_it_speaks_a_speech_request(racing):
    """``GET /v1/audio/voices`` lists the aliases of ``serve.voices`` and speech speaks them, but ``POST /v1/books`` with
    one answered 404 "there is no voice 'radio' on this server (GET /v1/audio/voices)", pointing at the list naming it."""
    import dataclasses

    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.http import books

    ctx, model = racing
    aliases = {"radio": {"model": "kitchen", "speaker": "speaker_1"}, "gone": {"model": "nowhere"}}
    ctx.config = dataclasses.replace(ctx.config, serve=dataclasses.replace(ctx.config.serve, voices=aliases))
    assert books._voice(ctx, {"voice": "radio"}) == {"kind": "piper", "name": "kitchen", "path": str(model), "speaker": "speaker_1"}
    for form, status, says in (({"voice": "radio", "speaker": "0"}, 400, "'radio' is a voice alias with its own speaker"),
                               ({"voice": "gone"}, 404, "voice alias 'gone' names the voice 'nowhere', which is not installed")):
        with pytest.raises(ApiError) as refused:
            books._voice(ctx, form)
        assert refused.value.status == status and str(refused.value).startswith(says), str(refused.value)
