"""The surfaces added beside issue 26's (conversions, lexicons, books, SSML, Wyoming text) as an attacker would try
them: one live server with keys and Wyoming on 127.0.0.1, every wait bounded. Tests named ``test_fix_*`` failed
before their fix (docs/security.md, /work/notes/A3-security-review.md); the rest hold what already held.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from live_server import free_port, start_server

pytest.importorskip("fastapi")

SPEAK, SPEAK2, ENROLL, ADMIN = "speak-key-0001", "speak-key-0002", "enroll-key-0003", "admin-key-0004"
TSV = {"Content-Type": "text/tab-separated-values"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice):
    folder = tmp_path_factory.mktemp("new-surfaces")
    wyoming_port = free_port()
    config = {
        "piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
        "serve": {
            "keys": {SPEAK: "speak", SPEAK2: "speak", ENROLL: "speak,enroll", ADMIN: "admin"},
            "piper_voices": [str(piper_voice)],
            "grace_seconds": 2.0,
            "limits": {"max_input_chars": 2000, "max_upload_mb": 2.0, "deadline_seconds": 60.0},
        },
    }
    live = start_server(folder, config, "-v", "--wyoming", f"tcp://127.0.0.1:{wyoming_port}", timeout=120)
    live.wyoming_port = wyoming_port
    live.voice = piper_voice.stem
    yield live
    live.stop(signal.SIGKILL)


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def own_lexicon(server, key: str) -> str:
    return httpx.get(server.url + "/v1/lexicons", headers=auth(key), timeout=10).json()["own"]


def refusal(answer: httpx.Response, status_code: int) -> dict:
    assert answer.status_code == status_code, answer.text
    error = answer.json()["error"]
    assert "/tmp" not in error["message"] and "Traceback" not in error["message"], error
    return error


# --- books: an upload is parsed in a limited child, never in the server ------------------------------

OPF = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata '
       'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title></metadata><manifest>{items}</manifest>'
       '<spine>{refs}</spine></package>')
CONTAINER = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
             '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')


def epub(chapters: list[str]) -> bytes:
    """An EPUB of ``chapters`` (XHTML bodies), deflated."""
    items = "".join(f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(len(chapters)))
    refs = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER)
        archive.writestr("OEBPS/content.opf", OPF.format(items=items, refs=refs))
        for i, body in enumerate(chapters):
            archive.writestr(f"OEBPS/c{i}.xhtml", f'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>')
    return out.getvalue()


def test_fix_a_book_upload_is_read_in_a_limited_child_not_in_the_server(server):
    """A 40 KB EPUB of one-letter paragraphs unpacks to 15 MB (within book.max_member_mb) and two million elements:
    read in the server, lxml's tree grew it by hundreds of MB per request; read in the child, the server stays put."""
    bomb = epub(["<p>a</p>" * (15 << 17)])
    assert len(bomb) < 100_000
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM from now
    before = status(server.pid, "VmRSS")
    answer = httpx.post(server.url + "/v1/books", headers=auth(SPEAK), files={"book": ("bomb.epub", bomb)},
                        data={"voice": server.voice}, timeout=180)
    grown = status(server.pid, "VmHWM") - before
    assert answer.status_code in (400, 413), answer.text
    refusal(answer, answer.status_code)
    assert grown < 150 * 2**20, f"the server grew by {grown / 2**20:.0f} MB reading a book upload"
    assert not [p for p in (server.folder / "cache" / "demod-voice" / "serve" / "books").glob("*/job.json")]


def test_fix_a_books_job_reads_what_the_child_read(server):
    """The job takes the book as the child read it (``read.json``), not by parsing the upload again in the server."""
    answer = httpx.post(server.url + "/v1/books", headers=auth(SPEAK2), data={"voice": server.voice},
                        files={"book": ("tale.epub", epub(["<h1>One</h1><p>A short tale.</p>"]))}, timeout=60)
    assert answer.status_code == 202, answer.text
    folder = server.folder / "cache" / "demod-voice" / "serve" / "books" / answer.json()["id"]
    read = json.loads((folder / "read.json").read_text(encoding="utf-8"))
    assert read["title"] == "T" and read["chapters"][0]["paragraphs"] == ["A short tale."]
    assert httpx.delete(server.url + f"/v1/books/{answer.json()['id']}", headers=auth(SPEAK2), timeout=60).status_code == 200


@pytest.mark.parametrize("name, data", [
    ("laughs.epub", epub(['<!DOCTYPE html [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><p>&b;</p>'])),
    ("xxe.epub", epub(['<!DOCTYPE html [<!ENTITY x SYSTEM "file:///etc/passwd">]><p>&x;</p>'])),
    ("latin1.txt", b"Caf\xe9.\n"),
    ("deep.md", b">" * 20000 + b" x\n"),
    ("notzip.epub", b"PK\x03\x04garbage"),
])
def test_hostile_books_get_a_clean_answer(server, name, data):
    answer = httpx.post(server.url + "/v1/books", headers=auth(ENROLL), files={"book": (name, data)}, data={"voice": server.voice},
                        timeout=60)
    assert answer.status_code in (202, 400), answer.text
    if answer.status_code == 202:
        job = answer.json()["id"]
        assert "root:" not in answer.text and "aaaaaaaaaaaaaaaaaaaa" not in answer.text
        assert httpx.delete(server.url + f"/v1/books/{job}", headers=auth(ENROLL), timeout=60).status_code == 200
    else:
        refusal(answer, 400)


def test_fix_a_book_with_a_nul_is_refused_at_upload(server):
    """Accepted before, its takes then failed one by one once the book ran."""
    answer = httpx.post(server.url + "/v1/books", headers=auth(ENROLL), files={"book": ("nul.txt", b"Hello\x00there.\n")},
                        data={"voice": server.voice}, timeout=60)
    if answer.status_code == 202:
        httpx.delete(server.url + f"/v1/books/{answer.json()['id']}", headers=auth(ENROLL), timeout=60)
    assert "NUL" in refusal(answer, 400)["message"]

def test_a_book_belongs_to_its_key(server):
    answer = httpx.post(server.url + "/v1/books", headers=auth(ADMIN), files={"book": ("a.txt", b"Hello there.\n")},
                        data={"voice": server.voice}, timeout=60)
    assert answer.status_code == 202, answer.text
    job = answer.json()["id"]
    for method in ("GET", "DELETE"):
        refusal(httpx.request(method, server.url + f"/v1/books/{job}", headers=auth(SPEAK), timeout=10), 404)
    assert httpx.delete(server.url + f"/v1/books/{job}", headers=auth(ADMIN), timeout=60).status_code == 200


def test_fix_the_per_key_cap_on_books_holds_for_requests_sent_at_once(server):
    """The cap (book.serve_max_jobs_per_key, 1) was checked before the upload was read and the book written after it
    was read: six books posted at once by one key were all accepted."""
    import concurrent.futures

    def post(_):
        return httpx.post(server.url + "/v1/books", headers=auth(SPEAK), files={"book": ("a.txt", b"Hello there.\n" * 200)},
                          data={"voice": server.voice}, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    try:
        assert all(a.status_code in (202, 429) for a in answers), [a.text for a in answers]
        assert len(accepted) <= 1, f"{len(accepted)} books accepted at once from one key (book.serve_max_jobs_per_key: 1)"
    finally:
        for job in accepted:
            httpx.delete(server.url + f"/v1/books/{job}", headers=auth(SPEAK), timeout=60)

# --- lexicons -------------------------------------------------------------------------------------------


def test_lexicon_scopes_and_ownership(server):
    """Server lexicons: admin. A key's own: enroll. Another key's: 404 to read, 403 to write."""
    mine, theirs = own_lexicon(server, ENROLL), own_lexicon(server, SPEAK)
    entry = b"foo\tf u\n"
    put = lambda name, key: httpx.put(server.url + f"/v1/lexicons/{name}", headers={**auth(key), **TSV}, content=entry, timeout=10)  # noqa: E731
    refusal(put("shared", ENROLL), 403)
    refusal(put(theirs, SPEAK), 403)  # its own, without enroll
    refusal(put(theirs, ENROLL), 403)
    assert put(mine, ENROLL).status_code == 200
    assert put("shared", ADMIN).status_code == 200
    refusal(httpx.get(server.url + f"/v1/lexicons/{mine}", headers=auth(SPEAK), timeout=10), 404)
    assert mine not in httpx.get(server.url + "/v1/lexicons", headers=auth(SPEAK), timeout=10).json()["data"]


def test_fix_lexicon_names_are_matched_whole(server):
    """``abc\\n`` passed the name check (``$`` matches before a final newline) and made a file with a newline in its name."""
    answer = httpx.put(server.url + "/v1/lexicons/abc%0A", headers={**auth(ADMIN), **TSV}, content=b"foo\tf u\n", timeout=10)
    assert refusal(answer, 400)["code"] == "invalid_name"
    assert not [p for p in (server.folder / "cache" / "demod-voice" / "lexicons").glob("abc*")]


def test_fix_a_lone_surrogate_quoted_in_a_refusal_is_still_json(server):
    """A refusal that quotes the client's word with a lone surrogate in it was a 500 (JSON could not encode it)."""
    answer = httpx.put(server.url + "/v1/lexicons/words", headers={**auth(ADMIN), "Content-Type": "application/json"},
                       content=b'{"fo\\udcffo": "f u"}', timeout=10)
    assert refusal(answer, 400)["code"] == "invalid_lexicon"


@pytest.mark.parametrize("content_type, body", [("application/yaml", b"[" * 5000 + b"]" * 5000),
                                                ("application/json", b"[" * 20000 + b"]" * 20000)], ids=["yaml", "json"])
def test_fix_a_deeply_nested_lexicon_is_400(server, content_type, body):
    answer = httpx.put(server.url + "/v1/lexicons/deep", headers={**auth(ADMIN), "Content-Type": content_type}, content=body, timeout=30)
    assert refusal(answer, 400)["code"] == "invalid_lexicon"


# --- the new routes meet the request guard and their scopes -------------------------------------------------

ROUTES = [("POST", "/v1/audio/conversions"), ("PUT", "/v1/lexicons/x"), ("POST", "/v1/books"), ("DELETE", "/v1/books/" + "0" * 24)]


@pytest.mark.parametrize("method, path", ROUTES)
def test_new_routes_are_guarded(server, method, path):
    url = server.url + path
    assert httpx.request(method, url, headers={**auth(ADMIN), "Host": "evil.example"}, timeout=10).status_code == 400
    assert httpx.request(method, url, headers={**auth(ADMIN), "Origin": "https://evil.example"}, timeout=10).status_code == 403
    assert httpx.request(method, url, timeout=10).status_code == 401
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN}\r\n"
                     "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 200000000\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 413"), "a 200 MB body announced was not refused on its headers"


def test_a_conversion_needs_enroll(server):
    answer = httpx.post(server.url + "/v1/audio/conversions", headers=auth(SPEAK), files={"file": ("a.wav", b"RIFF")},
                        data={"voice": "x"}, timeout=10)
    assert refusal(answer, 403)["type"] == "permission_error"


# --- text no engine can take, at every front door ------------------------------------------------------


def wyoming(server, text: str) -> list[dict]:
    body = json.dumps({"text": text}).encode()
    events = []
    with socket.create_connection(("127.0.0.1", server.wyoming_port), timeout=30) as sock:
        sock.sendall(json.dumps({"type": "synthesize", "data_length": len(body)}).encode() + b"\n" + body)
        reader = sock.makefile("rb")
        while line := reader.readline():
            header = json.loads(line)
            data = json.loads(reader.read(header["data_length"])) if header.get("data_length") else {}
            reader.read(header.get("payload_length") or 0)
            events.append({"type": header["type"], "data": {**header.get("data", {}), **data}})
            if header["type"] in ("error", "audio-stop"):
                break
    return events


@pytest.mark.parametrize("text, says", [("Hello \x00 there.", "NUL"), ("Hello \udcff there.", "surrogate"),
                                        ("<speak>Hello \udcff</speak>", "surrogate")], ids=["nul", "surrogate", "ssml-surrogate"])
def test_fix_wyoming_text_no_engine_can_take_is_refused_in_one_line(server, text, says):
    """Such text reached a worker ("synthesis failed: ValueError: embedded null character"), and in SSML the
    handler's "internal error" with a traceback in the log."""
    logged = len(server.log_text())
    events = wyoming(server, text)
    assert [e["type"] for e in events] == ["error"], events
    assert says in events[0]["data"]["text"] and "synthesis failed" not in events[0]["data"]["text"], events
    assert "Traceback" not in server.log_text()[logged:]


@pytest.mark.parametrize("text", ["<speak>\udcff</speak>", "a\x00b"])
def test_fix_text_no_engine_can_take_is_an_input_error_for_every_caller(text):
    """The CLI and the book's takes go through the same preparation: a one-line InputError, never UnicodeEncodeError."""
    from demod_voice.errors import InputError
    from demod_voice.speech_text.prepare import TextOptions, for_job

    with pytest.raises(InputError, match="NUL|surrogate"):
        for_job(text, "en", TextOptions(), reads_phonemes=True)


@pytest.mark.parametrize("text", ["1" * 100_000, "10^1000000 and 1e999999", "$" + "9" * 50_000 + ".99", "9" * 50_000 + "th"])
def test_huge_numbers_are_read_quickly(text):
    """num2words is never asked for a 100,000-digit number: long runs are read digit by digit, in bounded time."""
    from demod_voice.speech_text.prepare import TextOptions, prepare

    started = time.monotonic()
    prepare(text, "en", TextOptions())
    assert time.monotonic() - started < 20


# --- a conversion's answer to a client that does not read ------------------------------------------------


class EndlessConversion:
    """A job's handle whose audio never ends (a long conversion): as fast as the answer takes it, until cancelled."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def done(self) -> bool:
        return self.cancelled

    async def stream(self):
        import asyncio

        import numpy as np

        from demod_voice.audio.chunks import AudioChunk

        while not self.cancelled:
            yield AudioChunk(np.full(22050, 0.1, dtype=np.float32), 22050)
            await asyncio.sleep(0)


async def answer_a_client_that_never_reads(route, ctx, files: list, timeout: float) -> bool:
    """Call ``route(request, ctx)`` with a multipart body of ``files``, then send its answer to a client that reads
    nothing (the first body message blocks for good); whether the answer ended within ``timeout`` seconds."""
    import asyncio

    from starlette.requests import Request

    built = httpx.Request("POST", "http://x/", files=files)
    body, messages = built.read(), [{"type": "http.request", "body": built.read(), "more_body": False}]
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", built.headers["content-type"].encode()), (b"content-length", str(len(body)).encode())]}

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()

    async def never_drains(message):
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()

    response = await route(Request(scope, receive), ctx)
    from demod_voice.serve.http.streaming import StreamBroken

    try:
        await asyncio.wait_for(response(scope, receive, never_drains), timeout=timeout)
    except asyncio.TimeoutError:
        return False
    except StreamBroken:  # ended, broken: its connection is closed without the last chunk
        return True
    return True


def test_fix_a_conversion_answer_is_cut_at_its_deadline_while_its_client_does_not_read(tmp_path, monkeypatch):
    """Speech answers were cut at their deadline while blocked on a client that does not read; a conversion's answer
    was a plain stream: it, its job, its decoded uploads and the connection were held for as long as the client kept
    the socket open. Driven in-process (the converter and the engine stood in for: this is about the answer)."""
    import asyncio
    import threading
    from types import SimpleNamespace

    import numpy as np
    import soundfile

    from demod_voice.serve.http import conversions

    handle = EndlessConversion()
    monkeypatch.setattr(conversions.registry, "converter", lambda: SimpleNamespace(conversion_jobs=lambda *a: [object()]))
    monkeypatch.setattr(conversions, "scope", lambda ctx: None)
    limits = SimpleNamespace(max_upload_mb=2.0, max_reference_seconds=20.0, deadline_seconds=1.0)
    ctx = SimpleNamespace(draining=threading.Event(), data_dir=tmp_path, settings=SimpleNamespace(limits=limits),
                          engine=SimpleNamespace(submit=lambda job, priority, bounded: handle))
    wav = io.BytesIO()
    soundfile.write(wav, np.full(16000, 0.1, dtype=np.float32), 16000, format="WAV")
    files = [("file", ("a.wav", wav.getvalue())), ("references", ("r.wav", wav.getvalue()))]
    ended = asyncio.run(answer_a_client_that_never_reads(conversions.convert, ctx, files, limits.deadline_seconds + 15))
    assert ended, "the conversion's answer was not cut at its deadline: its client held it"
    assert handle.cancelled
    assert not list(tmp_path.glob("convert-*")), "the decoded uploads were left behind"
