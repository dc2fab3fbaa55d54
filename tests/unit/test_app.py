"""The app without models: CORS only when configured, probes, draining, keys on every route but the probes."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from demod_voice.config import load_config  # noqa: E402
from demod_voice.serve.auth import KeyRing  # noqa: E402
from demod_voice.serve.http.app import create_app  # noqa: E402

SPEECH = {"model": "tts-1", "voice": "nobody", "input": "Hi."}



def _hours_ago(hours: float) -> str:
    """A job's time stamp ``hours`` before now: a fixed date falls out of the server's keep time (24 h) a day later."""
    import datetime

    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

def app(overrides=None, keys=None) -> TestClient:
    config, _ = load_config(overrides=overrides or {})
    return TestClient(create_app(config, keys=keys), base_url="http://localhost")  # "testserver" is not one of its names


def test_cors_is_off_unless_origins_are_configured():
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST"}
    with app() as client:
        assert "access-control-allow-origin" not in client.options("/v1/audio/speech", headers=preflight).headers
    with app({"serve.cors_origins": ["https://chat.example"]}) as client:
        answer = client.options("/v1/audio/speech", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://chat.example"
        other = client.options("/v1/audio/speech", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_probes_and_draining():
    with app() as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/audio/speech", json=SPEECH).status_code == 404
        client.app.state.ctx.draining.set()
        assert client.get("/readyz").status_code == 503
        refused = client.post("/v1/audio/speech", json=SPEECH)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"


def test_keys_guard_every_route_but_the_probes():
    keys = KeyRing({"speak-key-0001": frozenset({"speak"})})
    with app(keys=keys) as client:
        for method, path in [("get", "/v1/models"), ("get", "/v1/audio/voices"), ("get", "/v1/voices"), ("post", "/v1/voices"),
                             ("post", "/v1/audio/speech"), ("post", "/v1/batch"), ("get", "/v1/batch/" + "0" * 24)]:
            answer = getattr(client, method)(path)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", path
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200
        headers = {"Authorization": "Bearer speak-key-0001"}
        assert client.get("/v1/models", headers=headers).status_code == 200
        assert client.post("/v1/voices/import", headers=headers).status_code == 403


def test_a_preflight_of_the_openai_sdk_from_a_listed_origin_is_allowed():
    """The official OpenAI JavaScript client (``dangerouslyAllowBrowser``) sends its ``X-Stainless-*`` headers on every
    request; the preflight allowed only Authorization and Content-Type, so it failed (400 "Disallowed CORS headers") and
    a browser app using the SDK could not reach the server at all."""
    sent = ("authorization,content-type,x-stainless-lang,x-stainless-package-version,x-stainless-os,x-stainless-arch,"
            "x-stainless-runtime,x-stainless-runtime-version,x-stainless-retry-count,x-stainless-timeout,openai-project")
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": sent}
    with app({"serve.cors_origins": ["https://chat.example"]}) as client:
        answer = client.options("/v1/audio/speech", headers=preflight)
        assert answer.status_code == 200, answer.text
        allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
        assert set(sent.split(",")) <= allowed, allowed
        assert answer.headers["access-control-allow-origin"] == "https://chat.example"
        other = client.options("/v1/audio/speech", headers={**preflight, "Access-Control-Request-Headers": "x-forwarded-for"})
        assert other.status_code == 400  # only the SDKs' own headers, not one a proxy is trusted for


def test_a_listed_origins_page_can_read_the_guards_refusals():
    """A 401 (no key, a wrong or revoked key) and a 413 told by the headers are answered by the guard, before the app,
    and went out without CORS headers: the browser hid them, and the app saw "Failed to fetch" instead of an error
    that says what to do."""
    keys = KeyRing({"speak-key-0001": frozenset({"speak"})})
    page = {"Origin": "https://chat.example"}
    with app({"serve.cors_origins": ["https://chat.example"], "serve.limits.max_input_chars": 10}, keys=keys) as client:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0002"}):
            answer = client.post("/v1/audio/speech", json=SPEECH, headers={**page, **headers})
            assert answer.status_code == 401 and answer.json()["error"]["message"], answer.text
            assert answer.headers.get("access-control-allow-origin") == "https://chat.example", answer.headers
        big = client.post("/v1/audio/speech", content=b"{" + b" " * 100_000 + b"}",
                          headers={**page, "Authorization": "Bearer speak-key-0001", "Content-Type": "application/json"})
        assert big.status_code == 413 and big.headers.get("access-control-allow-origin") == "https://chat.example", big.headers
        elsewhere = client.post("/v1/audio/speech", json=SPEECH, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403 and "access-control-allow-origin" not in elsewhere.headers


@pytest.mark.parametrize("authorization, status, code", [
    (None, 401, "missing_api_key"),
    ("Basic c3BlYWs6a2V5", 401, "invalid_api_key"),
    ("Bearer wrong-key-0002", 401, "invalid_api_key"),
    ("Bearer speak-key-0001", 403, "missing_scope"),
])
def test_a_refused_key_says_which_refusal_in_its_code(authorization, status, code):
    """Every other refusal had a ``code``; these had ``null``, so an app using the OpenAI client (``err.code``) could not
    tell a key to ask its user for again (OpenAI's ``invalid_api_key``) from a scope to ask the administrator for."""
    keys = KeyRing({"speak-key-0001": frozenset({"speak"})})
    headers = {} if authorization is None else {"Authorization": authorization}
    with app(keys=keys) as client:
        for method, path in (("delete", "/v1/voices/someone"), ("put", "/v1/lexicons/server.x")):
            answer = getattr(client, method)(path, headers=headers)
            assert answer.status_code == status, answer.text
            error = answer.json()["error"]
            assert error["code"] == code and error["type"] == ("authentication_error" if status == 401 else "permission_error"), error
            assert ":" in error["message"], error  # says what to do


@pytest.mark.parametrize("method, path", [("post", "/audio/speech"), ("get", "/models"), ("get", "/voices/alice")])
def test_a_client_whose_base_url_lacks_v1_is_told_so(method, path):
    """``OpenAI(base_url="http://127.0.0.1:5002")`` (without ``/v1``) asks for ``/audio/speech``: the answer was "there is
    no POST /audio/speech here: the routes are listed at /docs", which does not say that the whole API is under /v1."""
    with app() as client:
        answer = getattr(client, method)(path)
        error = answer.json()["error"]
        assert answer.status_code == 404 and error["code"] == "not_found", answer.text
        assert f"/v1{path}" in error["message"] and "base_url" in error["message"], error
        elsewhere = client.get("/v2/nothing").json()["error"]["message"]
        assert "/v1/v2" not in elsewhere and "/docs" in elsewhere, elsewhere


@pytest.mark.parametrize("method, path, status", [("post", "/v1/audio/voices", 405), ("delete", "/v1/audio/voices/alice", 404)])
def test_the_openai_clients_voice_routes_point_to_enrollment(method, path, status):
    """``client.audio.voices.create(name=..., audio_sample=...)`` was told "POST /v1/audio/voices is not a method this
    route takes: it takes GET", and ``voices.delete`` "there is no DELETE /v1/audio/voices/alice here"."""
    with app() as client:
        answer = getattr(client, method)(path)
        message = answer.json()["error"]["message"]
        assert answer.status_code == status, answer.text
        assert "POST /v1/voices" in message and "DELETE /v1/voices/ID" in message, message
        assert client.get("/v1/audio/voices").status_code == 200


def test_a_listed_origins_page_may_read_retry_after_and_the_sample_rate():
    """A page reads only the CORS-safelisted response headers unless the server exposes more: a browser app was told
    nothing of a 429's Retry-After (serve.md: "429 with Retry-After"), of X-Sample-Rate, or of a download's file name."""
    with app({"serve.cors_origins": ["https://chat.example"]}) as client:
        answer = client.post("/v1/audio/speech", json=SPEECH, headers={"Origin": "https://chat.example"})
        exposed = {h.strip().lower() for h in answer.headers.get("access-control-expose-headers", "").split(",")}
        assert {"retry-after", "x-sample-rate", "content-disposition"} <= exposed, answer.headers


@pytest.mark.parametrize("body", [b"[object Object]", b"{'input': 'Hi.'}", b'{"input": "Hi.",}'])
def test_a_body_that_is_not_json_says_what_to_send(body):
    """``fetch(url, {body: {...}})`` without ``JSON.stringify`` sends "[object Object]", Python's ``str(dict)`` single quotes:
    each was told "the request body is not valid JSON", which says neither where nor what to send."""
    with app() as client:
        answer = client.post("/v1/audio/speech", content=body, headers={"Content-Type": "application/json"})
        error = answer.json()["error"]
        assert answer.status_code == 400 and error["code"] == "invalid_request", answer.text
        assert "JSON.stringify" in error["message"] and "json.dumps" in error["message"] and "character" in error["message"], error


def test_the_api_page_loads_one_release_of_swagger_ui_checked_by_its_hash():
    """FastAPI's /docs ran ``swagger-ui-dist@5`` from a CDN, whatever 5.x it served, unchecked, as the server's own page
    (same-site: on a server without keys it could clone or delete voices); /redoc the same for ReDoc."""
    import re

    with app() as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "/openapi.json" in page.text
        files = re.findall(r'(?:src|href)="(https://[^"]+)" integrity="(sha384-[A-Za-z0-9+/=]{64})" crossorigin="anonymous"', page.text)
        assert sorted(url.rsplit("/", 1)[1] for url, _ in files) == ["swagger-ui-bundle.js", "swagger-ui.css"], page.text
        assert all(re.search(r"@\d+\.\d+\.\d+/", url) for url, _ in files), files  # one release, not a range
        assert len(re.findall(r"<script[^>]* src=", page.text)) == len(re.findall(r"<link[^>]* href=", page.text)) == 1
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "demod-voice"


def test_readyz_says_when_a_preloaded_voices_workers_keep_dying(monkeypatch):
    """A voice whose workers die soon after loading, again and again, read as 'loading' one moment and 'ready' the next;
    a probe could not tell it from a slow start."""
    from live_server import wait_until

    from demod_voice.engine import pool as engine_pool
    from demod_voice.engine.jobs import LoadSpec

    monkeypatch.setattr(engine_pool, "BACKOFF_FIRST", 5.0, raising=False)
    spec = LoadSpec("fakes:FakeBackend", "/models/dies-after-load")
    with app() as client:
        ctx = client.app.state.ctx
        ctx.preload = (*ctx.preload, "dies-after-load")
        ctx.preload_specs.append(spec)
        ctx.engine.preload(spec)
        assert wait_until(lambda: client.get("/readyz").json()["status"] == "crash_loop", timeout=30), client.get("/readyz").json()
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["crash_loop"] == ["dies-after-load"], ready.json()


def test_readyz_says_when_a_preloaded_voice_is_over_the_memory_cap_once_loaded():
    """engine.worker_memory_cap_mb below what the voice uses loaded: every request for it ended for the cap, and /readyz
    said 'ready' (a load balancer kept sending requests that could only fail; hops3's found-and-left)."""
    from live_server import wait_until

    from demod_voice.engine.jobs import LoadSpec

    spec = LoadSpec("fakes:FakeBackend", "/models/fake")
    with app({"engine.worker_memory_cap_mb": 20}) as client:  # a fake worker, loaded, is well over 20 MB
        ctx = client.app.state.ctx
        ctx.preload = (*ctx.preload, "fake")
        ctx.preload_specs.append(spec)
        ctx.engine.preload(spec)
        assert wait_until(lambda: ctx.engine.is_ready(spec), timeout=30)
        ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "over_memory_cap", "over_memory_cap": ["fake"]}), ready.json()
    with app() as client:  # no cap: ready once loaded
        ctx = client.app.state.ctx
        ctx.preload = (*ctx.preload, "fake")
        ctx.preload_specs.append(spec)
        ctx.engine.preload(spec)
        assert wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30), client.get("/readyz").json()


PROXIED = ({"X-Forwarded-For": "198.51.100.7"}, {"X-Real-IP": "198.51.100.7", "X-Forwarded-Proto": "https"}, {"Via": "1.1 edge"})


def test_a_server_without_keys_refuses_what_came_through_a_reverse_proxy_unless_told(caplog):
    """A server without keys listens on loopback only, so that no other machine can use it; a reverse proxy on the same
    machine let every machine in, without a word (a remote client's request: 200). What carries a proxy's headers now
    gets 403 in words, the probes excepted, unless --insecure-no-auth; a program on this machine is served as before;
    the log says it once."""
    with caplog.at_level(logging.WARNING, logger="demod_voice.serve.http.guard"), app() as client:
        for headers in PROXIED:
            answer = client.get("/v1/models", headers=headers)
            assert answer.status_code == 403, answer.text
            error = answer.json()["error"]
            assert error["code"] == "keys_needed_behind_proxy", error
            assert "serve.keys_file" in error["message"] and "--insecure-no-auth" in error["message"], error
            assert client.get("/healthz", headers=headers).status_code == 200
        assert client.get("/v1/models").status_code == 200
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no API keys" in said[0] and "--insecure-no-auth" in said[0], said
    config, _ = load_config()
    with TestClient(create_app(config, insecure_no_auth=True), base_url="http://localhost") as client:
        assert all(client.get("/v1/models", headers=headers).status_code == 200 for headers in PROXIED)


def test_a_full_data_folder_is_a_507_in_words_and_leaves_no_job_folder(tmp_path, monkeypatch):
    """A full disk under the server's data folder answered ``POST /v1/books`` (and a book's result) with a bare 500
    "Internal Server Error", a traceback in the log per request, and an empty job folder left for each. Another OS error
    is still the internal error it is."""
    import errno

    from demod_voice import paths

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    book = {"files": [("book", ("a.md", b"# One\n\nHello there.\n"))], "data": {"voice": "nobody"}}
    with app({"serve.data_dir": str(tmp_path / "serve")}) as client:
        client.get("/healthz")
        monkeypatch.setattr(paths, "write_text_atomic", full)
        answer = client.post("/v1/books", **book)
        assert (answer.status_code, answer.json()["error"]["code"]) == (507, "disk_full"), answer.text
        assert answer.json()["error"]["message"].startswith("the server has no disk space left for this request; try again later")
        assert not list((tmp_path / "serve" / "books").iterdir()), "no empty job folder is left"

    def denied(path, text):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(paths, "write_text_atomic", denied)
    with TestClient(client.app, base_url="http://localhost", raise_server_exceptions=False) as other:
        assert other.post("/v1/books", **book).status_code == 500  # not called a full disk


@pytest.mark.parametrize("path, field", [("/v1/voices", "files"), ("/v1/voices/import", "file"), ("/v1/audio/conversions", "file"),
                                         ("/v1/batch", "csv")])
@pytest.mark.parametrize("size", [3000, 1_500_000])
def test_a_file_sent_as_a_text_field_is_told_to_be_sent_as_a_file(path, field, size):
    """``curl -F 'files=<take.m4a'`` (``<``, not ``@``) and OkHttp's ``createFormData("files", null, body)`` send the
    recording as a text part, with no file name. The enrollment answered "send one or more reference recordings as the
    multipart field 'files'", the field the app had just sent, and one over 1 MiB "the upload is not a valid
    multipart/form-data body", which it was."""
    with app() as client:
        answer = client.post(path, data={"name": "alice"}, files=[(field, (None, b"\x1aE\xdf\xa3" + b"\x00" * size, "audio/webm"))])
        error = answer.json()["error"]
        assert answer.status_code == 400 and error["code"] == "not_a_file", answer.text
        assert "as text" in error["message"] and "=@" in error["message"], error
        if size < 1_000_000:
            assert f"'{field}'" in error["message"], error


def test_recordings_too_long_together_are_told_so_with_the_limit_for_all_of_them():
    """Two 20 s takes under a 30 s limit were told "'b.wav' is longer than 10 s of audio (serve.limits.max_reference_seconds)":
    what was left of the limit, named as the limit, for a file that is 20 s; the app's user shortened b.wav to 10 s and was
    refused again with the limit that was left then."""
    import io

    import soundfile
    from conftest import voiced_signal

    def take(seconds: float) -> bytes:
        out = io.BytesIO()
        soundfile.write(out, voiced_signal(seconds, 16000), 16000, format="WAV")
        return out.getvalue()

    with app({"serve.limits.max_reference_seconds": 30.0}) as client:
        answer = client.post("/v1/voices", data={"name": "alice"}, files=[("files", ("a.wav", take(20.0), "audio/wav")),
                                                                          ("files", ("b.wav", take(20.0), "audio/wav"))])
        error = answer.json()["error"]
        assert answer.status_code == 413 and error["code"] == "reference_too_long", answer.text
        assert "30 s" in error["message"] and "together" in error["message"] and "10 s" not in error["message"], error
        alone = client.post("/v1/voices", data={"name": "alice"}, files=[("files", ("a.wav", take(31.0), "audio/wav"))])
        assert alone.status_code == 413 and "'a.wav' is longer than 30 s" in alone.json()["error"]["message"], alone.text


def test_a_voice_being_enrolled_is_said_to_be_so_to_an_app_that_looks_for_it():
    """An app whose enrollment timed out checks ``GET /v1/voices/{id}`` before sending it again, as serve.md says: while the
    first enrollment ran it was told "there is no voice 'alice'", took it as failed and sent it again (409 voice_busy), and
    one that spoke with it was told "there is no voice 'alice': use one of ...". Both now say it is under way."""
    with app() as client:
        client.app.state.ctx.enrolling.add("alice")  # as claimed() holds the name while the worker conditions the voice
        for answer in (client.get("/v1/voices/alice"), client.post("/v1/audio/speech", json={**SPEECH, "voice": "alice"})):
            error = answer.json()["error"]
            assert answer.status_code == 404 and error["code"] == "voice_enrolling", answer.text
            assert "being enrolled" in error["message"] and "again in a few seconds" in error["message"], error
            assert answer.headers["retry-after"].isdigit(), answer.headers
        again = client.post("/v1/voices", data={"name": "alice"}, files=[("files", ("take.m4a", b"\0" * 100, "audio/mp4"))])
        assert again.status_code == 409 and again.json()["error"]["code"] == "voice_busy", again.text
        assert again.headers["retry-after"].isdigit(), again.headers  # when to look again, as the 404's
        client.app.state.ctx.enrolling.discard("alice")
        assert client.get("/v1/voices/alice").json()["error"]["code"] == "unknown_voice"


def test_speech_passes_the_language_it_is_asked_for_to_the_voice(monkeypatch):
    """An app that speaks Spanish with a voice enrolled in English sent ``"language": "es"``: it was ignored without a word
    (unknown fields are), and XTTS read the Spanish text as English, a 200. The web page and Wyoming give a cloned voice
    the language to speak; the HTTP API now does too."""
    from demod_voice.backends.plugin import UnknownVoice
    from demod_voice.serve.http import speech

    asked = []

    def resolve(ctx, model, voice, language=None):
        asked.append(language)
        raise UnknownVoice("stop here")

    monkeypatch.setattr(speech, "resolve_voice", resolve)
    with app() as client:
        assert client.post("/v1/audio/speech", json={**SPEECH, "language": "es"}).status_code == 404
        assert client.post("/v1/audio/speech", json=SPEECH).status_code == 404
        bad = client.post("/v1/audio/speech", json={**SPEECH, "language": "x" * 500})
        assert bad.status_code == 400 and "'language'" in bad.json()["error"]["message"], bad.text
    assert asked == ["es", None], asked


def test_speech_reads_a_chat_models_markdown_as_its_words_unless_normalize_is_off(monkeypatch):
    """An app reading a chat model's reply aloud sent "**Done.** See the [forecast](https://example.com/w)." and heard
    "asterisk asterisk done asterisk asterisk ... example dot com"; Wyoming dropped the marks, HTTP did not. SSML and
    ``normalize: false`` are spoken as sent."""
    import dataclasses

    from demod_voice.backends.plugin import UnknownVoice
    from demod_voice.serve.http import speech

    spoken = []

    @dataclasses.dataclass
    class Choice:
        voice_id: str = "v"
        kind: str = "piper"
        reading: object = None

        def job(self, text, speed, label):
            spoken.append(text)
            raise UnknownVoice("stop here")

    monkeypatch.setattr(speech, "resolve_voice", lambda *args: Choice())
    reply = "**Done.** See the [forecast](https://example.com/w)."
    ssml = "<speak>**as sent**</speak>"
    with app() as client:
        for text, normalize in ((reply, True), (reply, False), (ssml, True)):
            assert client.post("/v1/audio/speech", json={**SPEECH, "input": text, "normalize": normalize}).status_code == 404
    assert spoken == ["Done. See the forecast.", reply, ssml], spoken


def test_one_key_cannot_fill_the_disk_with_voices(tmp_path):
    """Any ``enroll`` key could enroll or import voices without end (a profile may be 16 MB), until the server's disk was
    full. A key keeps at most ``serve.limits.max_voices_per_key``: one more is 403 ``too_many_voices`` saying what to do;
    replacing one of its own, or one deleted first, is not one more; another key and an admin key are not held by it."""
    import numpy as np

    from demod_voice.voices.profiles import write_profile

    profile = tmp_path / "me.npz"
    write_profile(profile, "me", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"), np.zeros((1, 8, 1), "float32"))
    keys = KeyRing({"enroll-key-0001": frozenset({"enroll"}), "enroll-key-0002": frozenset({"enroll"}),
                    "admin-key-0003": frozenset({"admin"})})

    def imported(client: TestClient, key: str, name: str, **fields: str):
        return client.post("/v1/voices/import", headers={"Authorization": f"Bearer {key}"}, data={"name": name, **fields},
                           files=[("file", ("me.npz", profile.read_bytes(), "application/octet-stream"))])

    with app({"serve.limits.max_voices_per_key": 2}, keys=keys) as client:
        assert [imported(client, "enroll-key-0001", name).status_code for name in ("a", "b")] == [201, 201]
        refused = imported(client, "enroll-key-0001", "c")
        error = refused.json()["error"]
        assert refused.status_code == 403 and error["code"] == "too_many_voices", refused.text
        assert "keeps 2 voices" in error["message"] and "DELETE /v1/voices/ID" in error["message"], error
        assert client.get("/v1/voices/c", headers={"Authorization": "Bearer enroll-key-0001"}).status_code == 404
        assert imported(client, "enroll-key-0001", "a", force="true").status_code == 201  # its own, replaced
        assert imported(client, "enroll-key-0002", "c").status_code == 201  # another key's own count
        assert imported(client, "admin-key-0003", "d").status_code == 201
        deleted = client.delete("/v1/voices/b", headers={"Authorization": "Bearer enroll-key-0001"})
        assert deleted.status_code == 200, deleted.text
        assert imported(client, "enroll-key-0001", "e").status_code == 201


def test_one_key_cannot_fill_the_disk_with_finished_batch_jobs():
    """Finished batch jobs were bounded only by their keep time (24 h): a key could start one after another, each up to
    max_batch_output_mb, until the server's disk was full. A key keeps at most max_batch_jobs_kept_per_key jobs, finished
    ones included: one more is 403 ``too_many_kept_jobs`` naming its oldest to delete; another key is not held by it."""
    from demod_voice.serve.http import job_store
    from demod_voice.serve.http.batch_jobs import BATCH

    keys = KeyRing({"speak-key-0001": frozenset({"speak"}), "speak-key-0002": frozenset({"speak"})})
    with app({"serve.limits.max_batch_jobs_kept_per_key": 3}, keys=keys) as client:
        ctx = client.app.state.ctx
        owner, _ = ctx.keys.identify("Bearer speak-key-0001")
        made = []
        for hour in (3, 1, 2):
            folder = job_store.reserve(ctx, BATCH, owner)
            job_store.write_state(folder, state="done", finished=_hours_ago(10 - hour))
            made.append(folder.name)
        refused = client.post("/v1/batch", headers={"Authorization": "Bearer speak-key-0001"},
                              files=[("csv", ("rows.csv", b"text,output\nHi.,a.wav\n", "text/csv"))])
        error = refused.json()["error"]
        assert refused.status_code == 403 and error["code"] == "too_many_kept_jobs", refused.text
        assert f"its oldest: {made[1]}, {made[2]}, {made[0]}" in error["message"] and "DELETE /v1/batch/ID" in error["message"], error
        other = client.post("/v1/batch", headers={"Authorization": "Bearer speak-key-0002"},
                            files=[("csv", ("rows.csv", b"text,output\nHi.,a.wav\n", "text/csv"))])
        assert other.status_code != 403, other.text
        assert client.delete(f"/v1/batch/{made[1]}", headers={"Authorization": "Bearer speak-key-0001"}).status_code == 200
        again = client.post("/v1/batch", headers={"Authorization": "Bearer speak-key-0001"},
                            files=[("csv", ("rows.csv", b"text,output\nHi.,a.wav\n", "text/csv"))])
        assert again.status_code != 403, again.text


def test_a_browser_asking_for_the_icon_is_neither_refused_nor_logged(caplog):
    """The browser asks for /favicon.ico on each view of /docs and /ui/; it was a 404, an error in its console and, at
    -v, a line 'refused GET /favicon.ico from ...: 404' in the server's log for every visitor."""
    with caplog.at_level(logging.INFO), app() as client:
        answer = client.get("/favicon.ico")
    assert answer.status_code == 204 and not answer.content, answer
    assert not [r for r in caplog.records if r.name.startswith("demod_voice") and "favicon" in r.getMessage()], caplog.text


@pytest.mark.parametrize("route,kind_name", [("/v1/batch", "BATCH"), ("/v1/books", "BOOK")])
def test_a_key_lists_its_own_jobs_and_never_another_keys(route, kind_name):
    """An app that lost a job's id had no way to find it again (no route listed a key's jobs), and its finished jobs
    counted against its cap until they expired. ``GET /v1/batch`` and ``GET /v1/books`` list the caller's own, newest
    first, as the job's own route shows each; another key's are never listed, nor a request still being checked."""
    from demod_voice.serve.http import batch_jobs, book_jobs, job_store

    kind = {"BATCH": batch_jobs.BATCH, "BOOK": book_jobs.BOOK}[kind_name]
    keys = KeyRing({"speak-key-0001": frozenset({"speak"}), "speak-key-0002": frozenset({"speak"})})
    mine, theirs = {"Authorization": "Bearer speak-key-0001"}, {"Authorization": "Bearer speak-key-0002"}
    with app({"serve.limits.max_batch_jobs_per_key": 5, "book.serve_max_jobs_per_key": 5}, keys=keys) as client:
        ctx = client.app.state.ctx
        assert client.get(route, headers=mine).json() == {"object": "list", "data": []}
        owner, _ = ctx.keys.identify(mine["Authorization"])
        other, _ = ctx.keys.identify(theirs["Authorization"])
        made = []
        for hour, state in ((1, "done"), (3, "running"), (2, "failed")):
            folder = job_store.reserve(ctx, kind, owner)
            job_store.write_state(folder, state=state, created=_hours_ago(10 - hour))
            made.append(folder.name)
        job_store.reserve(ctx, kind, owner)  # still being checked: no job yet
        hidden = job_store.reserve(ctx, kind, other)
        job_store.write_state(hidden, state="done")
        listed = client.get(route, headers=mine)
        assert listed.status_code == 200, listed.text
        jobs = listed.json()["data"]
        assert [(job["id"], job["state"]) for job in jobs] == [(made[1], "running"), (made[2], "failed"), (made[0], "done")]
        assert jobs[0] == client.get(f"{route}/{made[1]}", headers=mine).json()
        assert [job["id"] for job in client.get(route, headers=theirs).json()["data"]] == [hidden.name]
        assert client.get(route).status_code == 401


def test_one_key_cannot_fill_the_disk_with_a_few_large_jobs():
    """The per-key caps counted jobs, not bytes: a key could keep 50 batch jobs of up to 500 MB and 10 books of up to
    4 GB each, far more than a server's disk. Its jobs of every kind take at most ``serve.limits.max_storage_mb_per_key``
    on disk: past it a new batch job or book is 403 ``storage_quota_exceeded`` saying what to do; another key is not held
    by it; deleting a job frees its place."""
    from demod_voice.serve.http import job_store
    from demod_voice.serve.http.batch_jobs import BATCH

    keys = KeyRing({"speak-key-0001": frozenset({"speak"}), "speak-key-0002": frozenset({"speak"})})
    mine, theirs = {"Authorization": "Bearer speak-key-0001"}, {"Authorization": "Bearer speak-key-0002"}
    sheet = [("csv", ("rows.csv", b"text,output\nHi.,a.wav\n", "text/csv"))]
    with app({"serve.limits.max_storage_mb_per_key": 1}, keys=keys) as client:
        ctx = client.app.state.ctx
        owner, _ = ctx.keys.identify(mine["Authorization"])
        big = job_store.reserve(ctx, BATCH, owner)
        job_store.write_state(big, state="done", finished=_hours_ago(9))
        (big / "out").mkdir()
        (big / "out" / "long.wav").write_bytes(b"\0" * 1_100_000)
        for route, files in (("/v1/batch", sheet), ("/v1/books", [("book", ("b.txt", b"Once upon a time.", "text/plain"))])):
            refused = client.post(route, headers=mine, files=files, data={"voice": "nobody"})
            error = refused.json()["error"]
            assert refused.status_code == 403 and error["code"] == "storage_quota_exceeded", refused.text
            assert "serve.limits.max_storage_mb_per_key" in error["message"] and "GET /v1/batch" in error["message"], error
            assert "/" + str(ctx.data_dir).strip("/") not in error["message"]
        other = client.post("/v1/batch", headers=theirs, files=sheet)
        assert other.status_code != 403, other.text
        assert client.delete(f"/v1/batch/{big.name}", headers=mine).status_code == 200
        again = client.post("/v1/batch", headers=mine, files=sheet)
        assert again.status_code != 403, again.text


@pytest.mark.parametrize("kind_name", ["BATCH", "BOOK"])
def test_a_running_job_stops_where_its_keys_disk_space_ends(monkeypatch, tmp_path, kind_name):
    """A job that starts with room left could still write its whole budget (500 MB a batch job, 4 GB a book) past its
    key's disk space. Its budget is cut to what its key's jobs may still take; passing it stops the job with words that
    say what to do."""
    from types import SimpleNamespace

    from demod_voice.config import Config
    from demod_voice.serve.http import batch_jobs, book_jobs, job_store

    kind, start = {"BATCH": (batch_jobs.BATCH, batch_jobs.start_job), "BOOK": (book_jobs.BOOK, book_jobs.start_book)}[kind_name]
    config = Config()
    limits = SimpleNamespace(**{**vars(config.serve.limits), "max_storage_mb_per_key": 2, "max_batch_jobs_per_key": 4})
    ctx = SimpleNamespace(data_dir=tmp_path, config=config, settings=SimpleNamespace(limits=limits))
    earlier = job_store.reserve(ctx, kind, "k1")
    job_store.write_state(earlier, state="done")
    (earlier / "made.wav").write_bytes(b"\0" * 1_500_000)
    folder = job_store.reserve(ctx, kind, "k1")
    job_store.write_state(folder, state="queued")
    started = {}
    monkeypatch.setattr(job_store, "start_thread", lambda job_id, budget, target, name: started.update(budget=budget))
    start(ctx, folder.name)
    budget = started["budget"]
    assert 400_000 < budget.max_bytes < 500_000, budget.max_bytes
    budget.spend(100_000)
    with pytest.raises(job_store.BudgetExceeded, match="max_storage_mb_per_key.*DELETE /v1/batch/ID"):
        budget.spend(200_000)


def test_a_job_stopped_by_a_limit_says_why_in_the_servers_log(monkeypatch, tmp_path, caplog):
    """A batch job stopped at its key's disk space (or its own budget) was logged as "2 done, 0 failed, 28 not run" and
    no more: its administrator could not tell a limit of theirs from a fault. The log says which limit stopped it."""
    import threading
    from types import SimpleNamespace

    import demod_voice.batch
    from demod_voice.config import Config
    from demod_voice.serve.http import batch_jobs, job_store

    config = Config()
    ctx = SimpleNamespace(data_dir=tmp_path, config=config, settings=config.serve, engine=None, draining=threading.Event(),
                          log_level=logging.INFO)
    folder = job_store.reserve(ctx, batch_jobs.BATCH, "k1")
    job_store.write_state(folder, state="queued")
    budget = job_store.Budget(1000, 60).within(10)

    def run_batch(request):
        budget.spend(100)

    monkeypatch.setattr(demod_voice.batch, "run_batch", run_batch)
    with caplog.at_level(logging.INFO, logger="demod_voice"):
        batch_jobs._run(ctx, folder.name, budget)
    assert job_store.read_state(folder)["state"] == "failed"
    said = [r.getMessage() for r in caplog.records if r.name.startswith("demod_voice")]
    assert any(f"batch job {folder.name} stopped: " in line and "max_storage_mb_per_key" in line for line in said), said
