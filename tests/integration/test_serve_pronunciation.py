"""Pronunciation through ``serve``: ``/v1/lexicons`` and its scopes, SSML and lexicons in speech requests."""

from __future__ import annotations

import io
import signal

import httpx
import numpy as np
import pytest
import soundfile
from live_server import start_server

SPEAK, ENROLL, ADMIN = "speak-key-0001", "enroll-key-0002", "admin-key-0003"
SHORT = "ab"
LONG = "this is a much longer sentence, with a great many words in it, spoken slowly"


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice):
    folder = tmp_path_factory.mktemp("serve-lexicons")
    (folder / "served.tsv").write_text(f"quuxx\t\t{LONG}\n", encoding="utf-8")  # a serve.lexicons file: only "quuxx"
    config = {"piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
              "serve": {"keys": {SPEAK: "speak", ENROLL: "speak,enroll", ADMIN: "admin"}, "piper_voices": [str(piper_voice)],
                        "lexicons": [str(folder / "served.tsv")]}}
    live = start_server(folder, config)
    yield live
    live.stop(signal.SIGKILL)


def call(server, method, path, key, **kwargs):
    return httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})},
                         timeout=60, **kwargs)


def speak(server, piper_voice, text, key=SPEAK, **extra) -> tuple[np.ndarray, int]:
    body = {"model": piper_voice.name[: -len(".onnx")], "input": text, "response_format": "wav", **extra}
    answer = call(server, "POST", "/v1/audio/speech", key, json=body)
    assert answer.status_code == 200, answer.text
    samples, rate = soundfile.read(io.BytesIO(answer.content), dtype="int16")
    return samples, rate


def own_name(server, key):
    return call(server, "GET", "/v1/lexicons", key).json()["own"]


def test_server_lexicons_need_admin_and_a_keys_own_needs_enroll(server):
    entries = {"entries": [{"word": "tomato", "say": "tomahto"}]}
    assert call(server, "PUT", "/v1/lexicons/names", SPEAK, json=entries).status_code == 403
    assert call(server, "PUT", "/v1/lexicons/names", ENROLL, json=entries).status_code == 403
    assert call(server, "PUT", "/v1/lexicons/names", ADMIN, json=entries).status_code == 200
    assert call(server, "GET", "/v1/lexicons/names", SPEAK).json()["entries"][0]["say"] == "tomahto"
    mine = own_name(server, ENROLL)
    assert mine.startswith("key.") and mine != own_name(server, SPEAK)
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json=entries).status_code == 200
    assert call(server, "PUT", f"/v1/lexicons/{own_name(server, SPEAK)}", SPEAK, json=entries).status_code == 403  # no enroll
    assert call(server, "PUT", f"/v1/lexicons/{mine}", SPEAK, json=entries).status_code == 403  # another key's
    assert call(server, "GET", f"/v1/lexicons/{mine}", SPEAK).status_code == 404
    assert mine not in call(server, "GET", "/v1/lexicons", SPEAK).json()["data"]
    assert call(server, "GET", f"/v1/lexicons/{mine}", ENROLL).status_code == 200


@pytest.mark.parametrize(("body", "kind", "says"), [
    ("word\n", "text/tab-separated-values", "needs phonemes"),
    ("{not json", "application/json", "not valid JSON"),
    ('{"entries": [{"word": "x", "phonemes": "[[x]]"}]}', "application/json", "brackets"),
    ('{"Nguyen": {"say": "new yen"},\n "Nguyen": {"say": "win"}}', "application/json", "lexicon bad, line 2: 'Nguyen' is listed "
     "twice with different pronunciations (also at line 1)"),  # the last one was kept silently
])
def test_a_bad_lexicon_is_a_400_with_one_line(server, body, kind, says):
    answer = call(server, "PUT", "/v1/lexicons/bad", ADMIN, content=body, headers={"Content-Type": kind})
    assert answer.status_code == 400 and says in answer.json()["error"]["message"]
    assert "\n" not in answer.json()["error"]["message"]
    assert call(server, "GET", "/v1/lexicons/bad", ADMIN).status_code == 404


def test_tsv_put_and_delete_by_empty_body(server):
    answer = call(server, "PUT", "/v1/lexicons/tsv", ADMIN, content="Nguyen\tŋwˈiən\tnew yen\n".encode(),
                  headers={"Content-Type": "text/tab-separated-values"})
    assert answer.status_code == 200 and answer.json()["entries"][0]["phonemes"] == "ŋwˈiən"
    assert call(server, "PUT", "/v1/lexicons/tsv", ADMIN, json={"entries": []}).status_code == 200
    assert call(server, "GET", "/v1/lexicons/tsv", ADMIN).status_code == 404


def test_a_lexicon_of_thousands_of_entries_fits_and_one_too_large_is_told_so(server):
    """A 9,000-entry TSV (~180 KB, under the 10,000 entries a lexicon may hold) met the speech text's JSON body limit
    (~113 KB here) and was refused naming serve.limits.max_input_chars."""
    tsv = "".join(f"wordnumber{i}\tw\u025cːd\n" for i in range(9000)).encode()
    assert len(tsv) > 180_000
    answer = call(server, "PUT", "/v1/lexicons/big", ADMIN, content=tsv, headers={"Content-Type": "text/tab-separated-values"})
    assert answer.status_code == 200 and len(answer.json()["entries"]) == 9000, answer.text[:300]
    too_big = call(server, "PUT", "/v1/lexicons/big", ADMIN, content=b"x" * (1 << 20) + b"y",
                   headers={"Content-Type": "text/tab-separated-values"})
    assert too_big.status_code == 413 and "a lexicon may be at most 1024 KiB" in too_big.text, too_big.text
    assert "max_input_chars" not in too_big.text
    assert call(server, "PUT", "/v1/lexicons/big", ADMIN, json={"entries": []}).status_code == 200


def test_narrower_lexicons_win_in_speech(server, piper_voice):
    """Spoken lengths tell which respelling was read (the voice is deterministic: noise off)."""
    short, long = len(speak(server, piper_voice, SHORT)[0]), len(speak(server, piper_voice, LONG)[0])
    assert long > 2 * short
    assert call(server, "PUT", "/v1/lexicons/default", ADMIN, json={"zork": {"say": LONG}}).status_code == 200
    assert len(speak(server, piper_voice, "zork")[0]) == long  # the server's lexicon
    mine = own_name(server, ENROLL)
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json={"zork": {"say": SHORT}}).status_code == 200
    assert len(speak(server, piper_voice, "zork", ENROLL)[0]) == short  # the key's own over the server's
    assert len(speak(server, piper_voice, "zork", SPEAK)[0]) == long  # another key still reads the server's
    assert len(speak(server, piper_voice, "zork", ENROLL, lexicon={"zork": {"say": LONG}})[0]) == long  # the request's own


def test_a_request_may_name_a_stored_lexicon_it_may_read(server, piper_voice):
    """``"lexicon": "names"`` was read as a line of TSV ("'names' needs phonemes"); the CLI's ``--lexicon`` takes a stored
    lexicon's name, and so does a request now, within what its key may read."""
    short, long = len(speak(server, piper_voice, SHORT)[0]), len(speak(server, piper_voice, LONG)[0])
    assert call(server, "PUT", "/v1/lexicons/spoken", ADMIN, json={"quux": {"say": LONG}}).status_code == 200
    assert len(speak(server, piper_voice, "quux", lexicon="spoken")[0]) == long
    mine = own_name(server, ENROLL)
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json={"quux": {"say": SHORT}}).status_code == 200
    assert len(speak(server, piper_voice, "quux", ENROLL, lexicon=mine)[0]) == short
    body = {"model": piper_voice.name[: -len(".onnx")], "input": "quux", "response_format": "wav"}
    for name in (mine, "nosuchlexicon"):  # another key's lexicon reads as one that does not exist
        answer = call(server, "POST", "/v1/audio/speech", SPEAK, json={**body, "lexicon": name})
        error = answer.json()["error"]
        assert answer.status_code == 400 and "GET /v1/lexicons" in error["message"] and "needs phonemes" not in error["message"], error
        assert "quux" not in error["message"] and "tomahto" not in answer.text


def test_ssml_break_is_exact_silence_and_bad_ssml_a_400(server, piper_voice):
    samples, rate = speak(server, piper_voice, '<speak>Hello there.<break time="500ms"/>Good morning.</speak>')
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    runs = [(end - start) / rate for start, end in zip(edges[::2], edges[1::2], strict=True) if end - start > 0.1 * rate]
    assert runs == pytest.approx([0.5], abs=0.02)
    body = {"model": piper_voice.name[: -len(".onnx")], "input": "<speak><shout>x</shout></speak>"}
    answer = call(server, "POST", "/v1/audio/speech", SPEAK, json=body)
    assert answer.status_code == 400 and "unknown SSML tag <shout> at line 1, column 8" in answer.json()["error"]["message"]
    hostile = '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>'
    answer = call(server, "POST", "/v1/audio/speech", SPEAK, json={**body, "input": hostile})
    assert answer.status_code == 400 and "document type declaration" in answer.json()["error"]["message"]


def test_no_normalize_and_instructions(server, piper_voice):
    normal = len(speak(server, piper_voice, "5")[0])
    assert len(speak(server, piper_voice, "five")[0]) == normal
    assert len(speak(server, piper_voice, "Call 555-1234")[0]) != len(speak(server, piper_voice, "Call 555-1234", normalize=False)[0])
    slow = len(speak(server, piper_voice, LONG, instructions="Speak slowly and calmly.")[0])
    assert slow > 1.1 * len(speak(server, piper_voice, LONG)[0])


def test_a_chat_replys_emoji_are_not_spoken_and_emoji_alone_is_a_400(server, piper_voice):
    """A chat app's reply "Sure! 😊 Here you go 🎉" was read "smiling face with smiling eyes ... party popper"."""
    assert np.array_equal(speak(server, piper_voice, "Sure! 😊 Here you go 🎉")[0], speak(server, piper_voice, "Sure! Here you go")[0])
    assert not np.array_equal(*(speak(server, piper_voice, text, normalize=False)[0] for text in ("Hi 😊", "Hi")))  # as sent
    body = {"model": piper_voice.name[: -len(".onnx")], "input": "🎉👍", "response_format": "wav"}
    answer = call(server, "POST", "/v1/audio/speech", SPEAK, json=body)
    assert answer.status_code == 400 and "nothing to speak" in answer.json()["error"]["message"], answer.text


def test_a_missing_server_lexicon_stops_the_start(tmp_path, piper_voice):
    with pytest.raises(RuntimeError) as caught:
        start_server(tmp_path, {"serve": {"lexicons": ["nowhere"], "piper_voices": [str(piper_voice)]}})
    assert "serve.lexicons: there is no lexicon 'nowhere'" in str(caught.value)


def test_instructions_asking_for_pauses_put_silence_between_sentences(server, piper_voice):
    samples, rate = speak(server, piper_voice, "Hello there. Good morning.", instructions="Pause briefly between sentences.")
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    runs = [(end - start) / rate for start, end in zip(edges[::2], edges[1::2], strict=True) if end - start > 0.1 * rate]
    assert runs == pytest.approx([0.25], abs=0.02)


def test_a_lexicon_put_with_a_byte_order_mark_is_read(server):
    """A file saved by Notepad (``curl --data-binary @names.tsv``) starts with a byte order mark: TSV said "a word must
    be 1 to 100 printable characters", JSON "not valid JSON (line 1, column 1)"."""
    tsv = call(server, "PUT", "/v1/lexicons/bom", ADMIN, content="\ufeffNguyen\tŋwˈiən\n".encode(),
               headers={"Content-Type": "text/tab-separated-values"})
    assert tsv.status_code == 200 and tsv.json()["entries"][0]["word"] == "Nguyen", tsv.text
    json_body = call(server, "PUT", "/v1/lexicons/bom", ADMIN, content='\ufeff{"Nguyen": "ŋwˈiən"}'.encode(),
                     headers={"Content-Type": "application/json"})
    assert json_body.status_code == 200 and json_body.json()["entries"][0]["word"] == "Nguyen", json_body.text
    wide = call(server, "PUT", "/v1/lexicons/bom", ADMIN, content="Nguyen\tŋwˈiən\n".encode("utf-16"),
                headers={"Content-Type": "text/tab-separated-values"})
    assert wide.status_code == 400 and wide.json()["error"]["message"] == "the lexicon is not UTF-8 text; send it as UTF-8"
    assert call(server, "PUT", "/v1/lexicons/bom", ADMIN, json={"entries": []}).status_code == 200


def test_a_request_whose_lexicon_multiplies_its_text_is_refused_at_once(server, piper_voice):
    """serve.limits.max_input_chars bounds a request's work, but its own lexicon may respell a one-letter word in 400
    characters: 4,000 characters of "a a a" made some 780,000 to speak, and a worker spoke them for the whole deadline
    (120 s, cut mid-stream). What the text grows to when read is bounded too (plain text with numbers grows up to ~8x)."""
    import time

    body = {"model": piper_voice.name[: -len(".onnx")], "input": "a " * 400, "response_format": "wav",
            "lexicon": {"a": {"say": "a very long respelling of one short word " * 9}}}
    started = time.perf_counter()
    answer = call(server, "POST", "/v1/audio/speech", SPEAK, json=body)
    assert answer.status_code == 400 and time.perf_counter() - started < 30, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("the text grows to ") and "this server speaks at most 49152 per request" in message, message
    assert "\n" not in message


def batch_lengths(server, key, rows: list[str]) -> list[int]:
    """Samples of each row's output of an HTTP batch job (rows of text, spoken by the module's voice)."""
    import csv
    import time
    import zipfile

    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["text", "output"])
    writer.writerows([text, f"{number}.wav"] for number, text in enumerate(rows))
    answer = call(server, "POST", "/v1/batch", key, data={"model": "tiny-single"},
                  files=[("csv", ("rows.csv", table.getvalue().encode()))])
    assert answer.status_code in (200, 201, 202), answer.text
    job = answer.json()["id"]
    for _ in range(240):
        state = call(server, "GET", f"/v1/batch/{job}", key).json()
        if state["state"] not in ("queued", "running"):
            break
        time.sleep(0.25)
    assert state["state"] == "done" and not state["failed"], state
    archive = zipfile.ZipFile(io.BytesIO(call(server, "GET", f"/v1/batch/{job}/result", key).content))
    names = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
    return [len(soundfile.read(io.BytesIO(archive.read(names[f"{number}.wav"])), dtype="int16")[0]) for number in range(len(rows))]


def test_a_batch_job_reads_the_lexicons_a_speech_request_reads(server, piper_voice):
    """An HTTP batch read its rows with the server's lexicons only, and serve.lexicons over the voice's own: a key's own
    lexicon ("every request with that key reads it") was not read, and a voice's entry lost to a serve.lexicons one."""
    short, long = speak(server, piper_voice, SHORT)[0], speak(server, piper_voice, LONG)[0]
    voice = "voice." + piper_voice.name[: -len(".onnx")]
    assert call(server, "PUT", f"/v1/lexicons/{voice}", ADMIN, json={"quuxx": {"say": SHORT}}).status_code == 200
    mine = own_name(server, ENROLL)
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json={"blorp": {"say": LONG}}).status_code == 200
    assert len(speak(server, piper_voice, "quuxx")[0]) == len(short)  # speech: the voice's over serve.lexicons
    assert len(speak(server, piper_voice, "blorp", ENROLL)[0]) == len(long)  # speech: the key's own
    assert batch_lengths(server, ENROLL, ["quuxx", "blorp"]) == [len(short), len(long)]


def test_a_batch_job_is_checked_with_the_keys_own_lexicon_as_it_will_be_run(server, piper_voice):
    """A batch job reads its key's own lexicon when it runs, but its rows were checked without it: a row whose word the
    key respells in phonemes the voice lacks was taken (202), then failed in a job its client could only poll."""
    mine = own_name(server, ENROLL)
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json={"zorbix": {"phonemes": "q§Q"}}).status_code == 200
    spoken = call(server, "POST", "/v1/audio/speech", ENROLL, json={"model": "tts-1", "voice": piper_voice.name[: -len(".onnx")], "input": "zorbix"})
    assert spoken.status_code == 400 and "does not know" in spoken.json()["error"]["message"], spoken.text
    answer = call(server, "POST", "/v1/batch", ENROLL, data={"model": "tiny-single"},
                  files=[("csv", ("rows.csv", b"text,output\nzorbix,a.wav\n"))])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_rows", answer.text
    assert "line 2: " in answer.json()["error"]["message"] and "does not know" in answer.json()["error"]["message"]


def test_a_batch_row_whose_keys_lexicon_multiplies_its_text_is_refused_as_a_request_is(server):
    """A speech request's text may grow to 12 x serve.limits.max_input_chars when read; a batch job reads the key's own
    lexicon too (3622780) but had no such bound: a row of 4,000 characters of "qq qq" was taken (202) and made some
    700,000 characters to speak, a worker's hours."""
    mine = own_name(server, ENROLL)
    long = {"qq": {"say": "a very long respelling of one short word " * 9}}
    assert call(server, "PUT", f"/v1/lexicons/{mine}", ENROLL, json=long).status_code == 200
    rows = "text,output\n" + f"{'qq ' * 1300},a.wav\n"
    answer = call(server, "POST", "/v1/batch", ENROLL, data={"model": "tiny-single"}, files=[("csv", ("rows.csv", rows.encode()))])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_rows", answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("line 2: the text grows to ") and "at most 49152 per request" in message, message
