"""``serve`` as an app's back end sees it: a voice enrolled once from a phone's recording, then spoken with on every
button press, renamed, replaced; and the mistakes app developers make, each answered with a JSON error of the right
4xx, one line saying what to do, no server path, nothing half-stored. One live server on 127.0.0.1, tiny models."""

from __future__ import annotations

import io
import signal
import threading
import time

import httpx
import pytest
from live_server import start_server

SPEAK, ENROLL, OTHER = "speak-key-0101", "enroll-key-0102", "enroll-key-0103"


@pytest.fixture(scope="module")
def server(tmp_path_factory, piper_voice, xtts_model):
    folder = tmp_path_factory.mktemp("app-serve")
    config = {
        "piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
        "xtts": {"model_dir": str(xtts_model), "max_new_tokens": 24, "sentence_silence": 0.0},
        "serve": {"keys": {SPEAK: "speak", ENROLL: "speak,enroll", OTHER: "speak,enroll"},
                  "piper_voices": [str(piper_voice)], "voices": {"nova": {"profile": "aliased"}, "echo": "aliased"},
                  "limits": {"max_upload_mb": 2.0, "max_reference_seconds": 30.0}},
    }
    live = start_server(folder, config)
    yield live
    live.stop(signal.SIGKILL)


def auth(key: str = ENROLL) -> dict:
    return {"Authorization": f"Bearer {key}"}


def recording(seconds: float = 8.0, level: float = 0.3) -> bytes:
    import soundfile
    from conftest import voiced_signal

    out = io.BytesIO()
    soundfile.write(out, voiced_signal(seconds, 22050, level=level), 22050, format="WAV")
    return out.getvalue()


def enroll(server, name, data: bytes, key: str = ENROLL, **fields) -> httpx.Response:
    return httpx.post(server.url + "/v1/voices", data={"name": name, **fields}, files=[("files", ("take.wav", data, "audio/wav"))],
                      headers=auth(key), timeout=120)


def refused(server, response: httpx.Response, status: int, code: str) -> str:
    """The refusal's message, after checking what every refusal must be."""
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == code, error
    message = error["message"]
    assert message and "\n" not in message and str(server.folder) not in message and "/tmp/" not in message, message
    return message


def profiles(server) -> list[str]:
    return sorted(p.name for p in server.folder.rglob("profiles/*.npz"))


def test_one_name_enrolled_twice_at_once(server):
    """Three enrollments of one name at once were each answered 201 with its own digest, and only the last written was
    kept: two apps were told their voice was stored while another's was. Now one is enrolled and the others are told
    that the name is busy."""
    takes = [recording(8.0 + i, level=0.2 + 0.1 * i) for i in range(3)]
    start = threading.Barrier(3)
    answers: list[httpx.Response] = [None] * 3  # type: ignore[list-item]

    def run(i: int) -> None:
        start.wait()
        answers[i] = enroll(server, "race", takes[i], key=(ENROLL, OTHER, ENROLL)[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    made = [a for a in answers if a.status_code == 201]
    assert len(made) == 1, [(a.status_code, a.text[:200]) for a in answers]
    for answer in answers:
        if answer is not made[0]:
            assert "wait" in refused(server, answer, 409, "voice_busy")
    stored = httpx.get(server.url + "/v1/voices/race", headers=auth(SPEAK)).json()
    assert stored["digest"] == made[0].json()["digest"]
    assert profiles(server).count("race.npz") == 1
    # once it is stored, the name is free to be replaced as before
    assert enroll(server, "race", takes[0], force="true").status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"model": "tts-1", "voice_id": "tiny-single", "input": "Hello."}, "voice"),
    ({"model": "tts-1", "voice": "tiny-single", "text": "Hello."}, "input"),
    ({"model": "tts-1", "voice": "tiny-single", "input": "Hello.", "format": "wav"}, "response_format"),
    ({"model_id": "tiny-single", "input": "Hello."}, "model"),
])
def test_fields_named_as_other_speech_apis_name_them(server, body, field):
    """``voice_id`` spoke with the default voice and ``format: wav`` answered mp3, both 200: the app played the wrong
    voice or could not play the answer, and nothing said why."""
    response = httpx.post(server.url + "/v1/audio/speech", json=body, headers=auth(SPEAK), timeout=60)
    assert f"send it as '{field}'" in refused(server, response, 400, "invalid_request")


def test_a_field_sent_with_its_own_name_too_is_still_ignored(server):
    body = {"model": "tts-1", "voice": "tiny-single", "speaker": 3, "input": "Hello.", "response_format": "wav"}
    response = httpx.post(server.url + "/v1/audio/speech", json=body, headers=auth(SPEAK), timeout=60)
    assert response.status_code == 200 and response.content[:4] == b"RIFF", response.text[:200]


@pytest.mark.parametrize("seconds", [1.0, 8.0])
def test_a_recording_posted_as_the_raw_body(server, seconds):
    """A phone app uploading the file as the body (not a form): 415 saying to send a form, whatever its size. A body
    larger than a JSON request may be was answered 413 "JSON bodies with up to 4096 characters of text"."""
    before = profiles(server)
    response = httpx.post(server.url + "/v1/voices?name=raw", content=recording(seconds),
                          headers={**auth(), "Content-Type": "audio/wav"}, timeout=60)
    assert "multipart/form-data" in refused(server, response, 415, "not_a_form")
    assert profiles(server) == before


def test_an_enrollment_without_a_name(server):
    """Said "'' is not a valid voice id" to a client that had sent no name at all."""
    response = httpx.post(server.url + "/v1/voices", data={"voice_name": "mine"}, files=[("files", ("take.wav", recording()))],
                          headers=auth(), timeout=60)
    assert "'name'" in refused(server, response, 400, "missing_name")


def test_routes_and_methods_that_do_not_exist_say_what_to_do(server):
    """Were "Not Found" and "Method Not Allowed"."""
    missing = httpx.post(server.url + "/v1/voices/someone/rename", json={"name": "x"}, headers=auth())
    assert "/docs" in refused(server, missing, 404, "not_found")
    wrong = httpx.put(server.url + "/v1/voices/someone", json={"name": "x"}, headers=auth())
    message = refused(server, wrong, 405, "method_not_allowed")
    assert "PUT /v1/voices/someone" in message and "GET" in message and "DELETE" in message


def test_rename_an_enrolled_voice(server):
    """The page could rename a voice; an app could not (no route: its users' voices kept their first names)."""
    assert enroll(server, "first-name", recording()).status_code == 201
    assert enroll(server, "taken", recording(level=0.25)).status_code == 201
    shown = httpx.get(server.url + "/v1/voices/first-name", headers=auth(SPEAK)).json()
    digest = shown["digest"]

    rename = lambda old, new, key=ENROLL: httpx.patch(f"{server.url}/v1/voices/{old}", json={"name": new}, headers=auth(key))  # noqa: E731
    assert "PATCH" in httpx.put(server.url + "/v1/voices/first-name", headers=auth()).json()["error"]["message"]
    refused(server, rename("first-name", "new-name", SPEAK), 403, "missing_scope")
    refused(server, rename("first-name", "taken"), 409, "voice_exists")
    refused(server, rename("first-name", "tts-1"), 409, "name_taken")
    refused(server, rename("first-name", "../x"), 400, "bad_voice_id")
    refused(server, rename("nobody", "new-name"), 404, "unknown_voice")
    refused(server, rename("tiny-single", "new-name"), 409, "not_enrolled")
    time.sleep(1.1)  # a rename in a later second than the enrollment: it kept the rename's time as the voice's date
    response = rename("first-name", "new-name")
    assert response.status_code == 200 and response.json()["id"] == "new-name", response.text
    assert response.json()["created"] == shown["created"]
    assert response.json()["digest"] != digest  # the name is part of the digest
    refused(server, httpx.get(server.url + "/v1/voices/first-name", headers=auth(SPEAK)), 404, "unknown_voice")
    assert "first-name.npz" not in profiles(server) and "new-name.npz" in profiles(server)
    spoken = httpx.post(server.url + "/v1/audio/speech", json={"voice": "new-name", "input": "Hi.", "response_format": "wav"},
                        headers=auth(SPEAK), timeout=120)
    assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF", spoken.text[:200]


def test_a_downloaded_voice_imported_again_keeps_its_language(server):
    """The language lived only in the server's side-car: a French voice downloaded, deleted and imported (or imported on
    another server) came back as English, and spoke French text with English rules."""
    assert enroll(server, "marie", recording(level=0.35), language="fr").status_code == 201
    saved = httpx.get(server.url + "/v1/voices/marie/download", headers=auth(), timeout=60).content
    assert httpx.delete(server.url + "/v1/voices/marie", headers=auth()).status_code == 200
    imported = lambda **fields: httpx.post(server.url + "/v1/voices/import", data=fields,  # noqa: E731
                                           files={"file": ("marie.npz", saved)}, headers=auth(), timeout=60)
    response = imported()
    assert response.status_code == 201 and response.json()["language"] == "fr", response.text
    response = imported(name="marie-2")
    assert response.status_code == 201 and response.json()["language"] == "fr", response.text
    response = imported(name="marie-3", language="de")  # the field still says otherwise when given
    assert response.status_code == 201 and response.json()["language"] == "de", response.text
    renamed = httpx.patch(server.url + "/v1/voices/marie-2", json={"name": "marie-4"}, headers=auth())
    assert renamed.json()["language"] == "fr", renamed.text
    assert httpx.delete(server.url + "/v1/voices/marie-4", headers=auth()).status_code == 200
    saved = httpx.get(server.url + "/v1/voices/marie-3/download", headers=auth(), timeout=60).content
    assert httpx.delete(server.url + "/v1/voices/marie-3", headers=auth()).status_code == 200
    assert imported(name="marie-3").json()["language"] == "de"


def test_a_voice_downloaded_from_a_server_with_another_model_is_made_again_on_import(server, tmp_path):
    """Downloaded from a server with another XTTS model, a voice was refused at import (400 ``other_model``, "enroll the
    voice again here from its recordings"), which an app that enrolled it once no longer has. The download holds the
    recordings' first seconds: it is made again from them for this server's model, speaking its language."""
    from demod_voice.voices.profiles import read_profile, write_profile

    made = enroll(server, "mover", recording(level=0.35), language="fr")
    assert made.status_code == 201, made.text
    here = made.json()["model"]
    downloaded = tmp_path / "mover.npz"
    downloaded.write_bytes(httpx.get(server.url + "/v1/voices/mover/download", headers=auth(), timeout=60).content)
    assert httpx.delete(server.url + "/v1/voices/mover", headers=auth()).status_code == 200
    sent = read_profile(downloaded)
    elsewhere = tmp_path / "elsewhere.npz"  # as another server's model would have made it
    write_profile(elsewhere, "mover", "0123456789abcdef0123456789abcdef", list(sent.references), sent.gpt_cond_latent,
                  sent.speaker_embedding, sent.reference_audio, sent.reference_lengths, sent.reference_rate, language="fr")
    response = httpx.post(server.url + "/v1/voices/import", files={"file": ("mover.npz", elsewhere.read_bytes())},
                          headers=auth(), timeout=120)
    assert response.status_code == 201, response.text
    assert response.json()["model"] == here and response.json()["language"] == "fr", response.text
    assert httpx.delete(server.url + "/v1/voices/mover", headers=auth()).status_code == 200


def test_a_recording_sent_twice_is_enrolled_once_and_said(server):
    """An app that sent the same take twice (a retry appended to the form) had it weigh double in the voice, without a
    word: it is used once, and the warnings say so."""
    take = recording(level=0.3)
    files = [("files", ("take.wav", take, "audio/wav")), ("files", ("take-again.wav", take, "audio/wav")),
             ("files", ("other.wav", recording(level=0.2), "audio/wav"))]
    response = httpx.post(server.url + "/v1/voices", data={"name": "twice"}, files=files, headers=auth(), timeout=120)
    assert response.status_code == 201, response.text
    assert response.json()["references"] == 2, response.text
    assert "reference take-again.wav is the same recording as take.wav: it is used once" in response.json()["warnings"]
    assert httpx.delete(server.url + "/v1/voices/twice", headers=auth()).status_code == 200


def test_a_downloaded_voice_sent_as_a_recording_is_told_to_go_to_import(server):
    """A voice's download sent to POST /v1/voices as its recording was 'not a format FFmpeg recognises; use wav, ...'."""
    assert enroll(server, "to-send", recording(level=0.4)).status_code == 201
    saved = httpx.get(server.url + "/v1/voices/to-send/download", headers=auth(), timeout=60).content
    response = httpx.post(server.url + "/v1/voices", data={"name": "sent-back"}, files=[("files", ("to-send.npz", saved))],
                          headers=auth(), timeout=60)
    message = refused(server, response, 400, "bad_audio")
    assert "'to-send.npz' is a saved voice" in message and "POST /v1/voices/import" in message, message
    assert "sent-back.npz" not in profiles(server)


def test_a_recording_sent_to_import_is_told_to_enroll_it(server):
    """A recording sent to /v1/voices/import was "not a demod-voice profile (not a zip archive); export one with 'voices
    export'": the command line's words, to an app that had meant to enroll."""
    response = httpx.post(server.url + "/v1/voices/import", data={"name": "from-a-take"}, files={"file": ("Mémo 1.m4a", m4a(8.0))},
                          headers=auth(), timeout=60)
    message = refused(server, response, 400, "bad_profile")
    assert message.startswith("'Mémo 1.m4a' is a recording, not a voice profile: enroll it with POST /v1/voices"), message
    assert "from-a-take.npz" not in profiles(server)


def test_a_deleted_voice_leaves_no_conditioning_behind(server):
    """DELETE removed the profile and its side-car, but the voice cache kept the latents made from its recordings."""
    latents = lambda: sorted(p.name for p in server.folder.rglob("latents/*.npz"))  # noqa: E731
    before = latents()
    assert enroll(server, "short-lived", recording(7.0, level=0.45)).status_code == 201
    assert len(latents()) == len(before) + 1
    assert httpx.delete(server.url + "/v1/voices/short-lived", headers=auth(OTHER)).json()["deleted"] is True
    assert latents() == before and "short-lived.npz" not in profiles(server)
    assert not list(server.folder.rglob("voices/short-lived.json"))


def m4a(seconds: float, level: float = 0.3, inverted: bool = False) -> bytes:
    """AAC in an MP4 container as a phone records it (the index, the moov box, written when the recording stops);
    ``inverted``: in stereo, the second channel the first with its polarity inverted."""
    import av
    import numpy as np
    from conftest import voiced_signal

    out = io.BytesIO()
    layout = "stereo" if inverted else "mono"
    with av.open(out, "w", format="ipod") as box:
        stream = box.add_stream("aac", rate=44100, layout=layout)
        samples = (voiced_signal(seconds, 44100, level=level) * 32767).astype(np.int16)[None, :]
        if inverted:
            samples = np.stack([samples[0], -samples[0]], axis=1).reshape(1, -1)  # packed: L R L R ...
        step = 2048 if inverted else 1024  # 1024 frames a piece
        for start in range(0, samples.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + step]), format="s16", layout=layout)
            frame.sample_rate = 44100
            box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    return out.getvalue()


def test_an_m4a_sent_before_the_recording_was_finished(server):
    """An .m4a without its index (uploaded before the recorder stopped, or cut short) was "not a format FFmpeg
    recognises": app developers went looking for a codec problem."""
    whole = m4a(8.0)
    assert enroll(server, "phone", whole, force="true").status_code == 201  # the whole file is fine
    response = httpx.post(server.url + "/v1/voices", data={"name": "unfinished"}, headers=auth(), timeout=60,
                          files=[("files", ("take.m4a", whole[: len(whole) // 2], "audio/mp4"))])
    assert "recording was not finished" in refused(server, response, 400, "bad_audio")
    assert "unfinished.npz" not in profiles(server)


def test_a_phone_recording_is_named_as_it_was_sent(server):
    """A silent ``take.m4a`` was refused as "reference take.wav is silent", and a short one warned about as "take.wav":
    a file the app never sent (the name of the server's decoded copy)."""
    response = httpx.post(server.url + "/v1/voices", data={"name": "hushed"}, headers=auth(), timeout=60,
                          files=[("files", ("take.m4a", m4a(8.0, level=0.0), "audio/mp4"))])
    message = refused(server, response, 400, "bad_input")
    assert "take.m4a is silent" in message and "take.wav" not in message, message
    short = httpx.post(server.url + "/v1/voices", data={"name": "brief", "force": "true"}, headers=auth(), timeout=120,
                       files=[("files", ("Mémo 2.m4a", m4a(3.0), "audio/mp4"))])
    assert short.status_code == 201, short.text
    assert any("Mémo 2.m4a is only 3.0 s" in warning for warning in short.json()["warnings"]), short.json()


def test_a_video_with_no_sound_says_so(server, tmp_path):
    """A video without its sound was "not audio that can be read (no audio stream in it); use wav, flac, mp3, ogg, m4a..."."""
    from conftest import video_without_sound

    video = video_without_sound(tmp_path / "screen.mp4").read_bytes()
    response = httpx.post(server.url + "/v1/voices", data={"name": "muted"}, headers=auth(), timeout=60,
                          files=[("files", ("screen.mp4", video, "video/mp4"))])
    message = refused(server, response, 400, "bad_audio")
    assert message == "'screen.mp4' has no sound track (a video saved or exported without its sound): export it again with its sound"


def test_a_phone_recording_whose_channels_cancel_out_is_enrolled_from_its_voice(server, tmp_path):
    """A stereo recording with one channel inverted plays clearly, but the mix of its channels is silence: a wav was
    refused as silent, and an m4a was enrolled from what AAC's rounding left of the mix (-60 dB: the clone of a hiss),
    without a word. The loudest channel is enrolled instead."""
    import numpy as np

    from demod_voice.voices.profiles import read_profile

    response = httpx.post(server.url + "/v1/voices", data={"name": "inverted", "force": "true"}, headers=auth(), timeout=120,
                          files=[("files", ("stereo.m4a", m4a(8.0, inverted=True), "audio/mp4"))])
    assert response.status_code == 201, response.text
    assert response.json()["warnings"] == [], response.json()
    saved = tmp_path / "inverted.npz"
    saved.write_bytes(httpx.get(server.url + "/v1/voices/inverted/download", headers=auth(), timeout=60).content)
    heard = read_profile(saved).reference_audio / 32768.0  # the recording's first seconds, as the voice was made from them
    assert np.sqrt(np.mean(np.square(heard))) > 0.03, "enrolled from the silent mix, not from the voice"


@pytest.mark.parametrize("text", ["...", "-", "\u200b", "!?"])
def test_text_with_nothing_to_say_is_refused_for_a_cloned_voice_as_for_a_piper_voice(server, text):
    """A Piper voice answered "..." with 400 (its phonemizer found nothing in it); a cloned voice answered 200 with a
    second of sounds made from nothing, which an app played as its user's voice babbling."""
    if "dots.npz" not in profiles(server):
        assert enroll(server, "dots", recording(level=0.35), force="true").status_code == 201
    response = httpx.post(server.url + "/v1/audio/speech", json={"voice": "dots", "input": text, "response_format": "wav"},
                          headers=auth(SPEAK), timeout=120)
    assert "give some words" in refused(server, response, 400, "bad_input")
    words = httpx.post(server.url + "/v1/audio/speech", json={"voice": "dots", "input": "Hi.", "response_format": "wav"},
                       headers=auth(SPEAK), timeout=120)
    assert words.status_code == 200 and words.content[:4] == b"RIFF", words.text[:200]


def test_showing_an_installed_voice_says_it_is_not_an_enrolled_one(server):
    """``GET /v1/voices/tiny-single`` said "there is no voice 'tiny-single'" of a voice GET /v1/audio/voices lists."""
    response = httpx.get(server.url + "/v1/voices/tiny-single", headers=auth(SPEAK))
    assert "installed" in refused(server, response, 404, "not_enrolled")
    refused(server, httpx.get(server.url + "/v1/voices/nobody", headers=auth(SPEAK)), 404, "unknown_voice")


def test_a_voice_an_alias_speaks_with_is_not_renamed_or_deleted_from_under_it(server):
    """Any enroll key could rename or delete the voice that ``serve.voices`` maps ``nova`` to: every app speaking with
    ``nova`` then got 404 "there is no voice profile 'aliased' (GET /v1/voices lists them)", a name it never sent."""
    assert enroll(server, "aliased", recording(level=0.35)).status_code == 201
    speak = lambda voice: httpx.post(server.url + "/v1/audio/speech", json={"voice": voice, "input": "Hi.", "response_format": "wav"},  # noqa: E731
                                     headers=auth(SPEAK), timeout=120)
    assert speak("nova").status_code == 200
    renamed = httpx.patch(server.url + "/v1/voices/aliased", json={"name": "moved"}, headers=auth(OTHER))
    assert "alias 'nova'" in refused(server, renamed, 409, "voice_in_use") or "alias 'echo'" in renamed.json()["error"]["message"]
    assert "serve.voices" in refused(server, httpx.delete(server.url + "/v1/voices/aliased", headers=auth(OTHER)), 409, "voice_in_use")
    assert "aliased.npz" in profiles(server) and "moved.npz" not in profiles(server)
    for voice in ("nova", "echo"):
        spoken = speak(voice)
        assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF", spoken.text[:200]
    assert enroll(server, "aliased", recording(level=0.3), key=OTHER, force="true").status_code == 201  # replaced, not removed


def test_an_enrolled_voice_an_alias_hides_is_not_listed_as_speakable(server):
    """A voice enrolled as ``nova`` before ``serve.voices`` gave that name to an alias was listed twice by
    GET /v1/audio/voices, though ``voice: nova`` speaks with the alias: an app picking the clone got the alias."""
    import shutil

    assert enroll(server, "shadowed", recording(level=0.3)).status_code == 201
    stored = next(server.folder.rglob("profiles/shadowed.npz"))
    shutil.copy(stored, stored.with_name("nova.npz"))
    ids = [voice["id"] for voice in httpx.get(server.url + "/v1/audio/voices", headers=auth(SPEAK)).json()["voices"]]
    assert ids.count("nova") == 1 and "shadowed" in ids, ids


def test_an_alias_to_a_voice_not_enrolled_names_the_alias_and_what_to_do(tmp_path):
    """``serve.voices: {shimmer: {profile: ghost}}`` with no voice 'ghost' answered "there is no voice profile 'ghost'
    (GET /v1/voices lists them)" to an app that sent 'shimmer', a name it never sent and a list that could not help."""
    from demod_voice.config import load_config
    from demod_voice.engine.service import EngineService
    from demod_voice.serve.core import build_context
    from demod_voice.serve.voices import UnknownVoice, resolve_voice

    path = tmp_path / "config.yaml"
    path.write_text("serve:\n  voices:\n    shimmer: {profile: ghost}\n")
    config, _ = load_config(str(path), env={"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    engine = EngineService(config.engine, workers=1)
    try:
        with pytest.raises(UnknownVoice) as refused:
            resolve_voice(build_context(config, engine), "tts-1", "shimmer")
    finally:
        engine.shutdown()
    said = str(refused.value)
    assert "alias 'shimmer'" in said and "'ghost'" in said and "serve.voices" in said and str(tmp_path) not in said, said
