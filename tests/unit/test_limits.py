"""Request limits alone: each refusal has its status and a message that says what to do."""

from __future__ import annotations

import asyncio

import pytest

from demod_voice.config import ServeLimits
from demod_voice.errors import QueueFull
from demod_voice.serve.errors import from_engine
from demod_voice.serve.limits import ApiError, check_content_length, check_input, check_voice_id, queue_full, save_upload
from demod_voice.serve.voices import UnknownVoice

LIMITS = ServeLimits(max_input_chars=20, max_upload_mb=0.001)


def status(call, *args):
    with pytest.raises(ApiError) as err:
        call(*args)
    return err.value.status, str(err.value)


def test_input_characters():
    assert check_input("x" * 20, LIMITS) == "x" * 20
    code, message = status(check_input, "x" * 21, LIMITS)
    assert code == 413 and "max_input_chars" in message
    assert status(check_input, "   ", LIMITS)[0] == 400


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "/abs", ".hidden", "", "x" * 65, "a b", "a\x00b", "..", "naïve"])
def test_voice_ids_never_form_paths(name):
    assert status(check_voice_id, name)[0] == 400


def test_good_voice_ids():
    for name in ("alice", "Bob-2", "v1.0_x"):
        assert check_voice_id(name) == name


@pytest.mark.parametrize("name, like", [("Zoë", "Zoe"), ("my voice", "my-voice"), ("José María", "Jose-Maria")])
def test_a_name_refused_as_a_voice_id_is_shown_one_that_would_do(name, like):
    """'Zoë' was told "use letters, digits, ..." though it holds only letters; "my voice" got no example either."""
    from demod_voice.errors import InputError
    from demod_voice.voices.profiles import check_name

    message = status(check_voice_id, name)[1]
    assert "ASCII letters" in message and message.endswith(f"e.g. '{like}'"), message
    assert check_voice_id(like) == like
    with pytest.raises(InputError, match=f"cannot name a voice: use ASCII letters.*e.g. '{like}'$"):
        check_name(name)


def test_declared_body_size():
    check_content_length({"content-length": "100"}, LIMITS)
    assert status(check_content_length, {"content-length": str(10**9)}, LIMITS)[0] == 413


class FakeUpload:
    def __init__(self, data: bytes, filename: str = "../../x.wav") -> None:
        self.data, self.filename = data, filename

    async def read(self, size: int) -> bytes:
        block, self.data = self.data[:size], self.data[size:]
        return block


def test_uploads_are_saved_under_our_name_and_bounded(tmp_path):
    saved = asyncio.run(save_upload(FakeUpload(b"abc"), tmp_path / "in", LIMITS))
    assert saved.parent == tmp_path / "in" and saved.read_bytes() == b"abc" and "x.wav" not in saved.name
    with pytest.raises(ApiError) as err:
        asyncio.run(save_upload(FakeUpload(b"a" * 5000), tmp_path / "in", LIMITS))
    assert err.value.status == 413 and "x.wav" in str(err.value) and ".." not in str(err.value)
    with pytest.raises(ApiError) as err:
        asyncio.run(save_upload(FakeUpload(b""), tmp_path / "in", LIMITS))
    assert err.value.status == 400
    assert [p.name for p in (tmp_path / "in").iterdir()] == [saved.name]  # refused uploads leave nothing


def test_queue_full_is_429_with_retry_after():
    err = queue_full(QueueFull("64 waiting", retry_after=2.6))
    assert err.status == 429 and err.headers == {"Retry-After": "3"}
    assert from_engine(QueueFull("full")).status == 429
    assert from_engine(UnknownVoice("no such voice")).status == 404


def test_a_missing_model_is_the_servers_503_in_the_administrators_words(tmp_path):
    """The CLI's words name the folder and the flags to pass; a server's client gets neither (docs/security.md)."""
    from demod_voice.errors import InputError, ModelMissing
    from demod_voice.models.registry import resolve_xtts
    from demod_voice.serve.errors import client_text, from_engine

    for model_dir in (None, str(tmp_path / "no-such-folder")):
        with pytest.raises(ModelMissing) as caught:
            resolve_xtts(model_dir, tmp_path / "cache", False, env={})
        assert isinstance(caught.value, InputError) and ("--model-dir" in str(caught.value) or "no-such-folder" in str(caught.value))
        problem = from_engine(caught.value)
        assert problem.status == 503 and problem.code == "model_missing"
        assert str(tmp_path) not in str(problem) and "--model-dir" not in str(problem) and "administrator" in str(problem)
        assert client_text(caught.value) == str(problem)
