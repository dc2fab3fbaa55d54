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
