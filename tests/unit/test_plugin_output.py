"""What a backend yields is checked in the worker: audio a plugin gets wrong (int16, stereo, no rate, a bare array)
fails its job with one line naming the backend and the contract, instead of reaching an output as noise or failing
in the parent (a 0-d array used to end the engine's thread; a rate of 0 was answered as the client's fault)."""

from __future__ import annotations

import numpy as np
import pytest

from demod_voice.audio.chunks import AudioChunk
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.engine import worker
from demod_voice.engine.jobs import LoadSpec, SynthesisJob

TONE = np.sin(np.linspace(0, 100, 1600)).astype(np.float32) * 0.5


class Yields(Backend):
    """Yields the chunks it was made with, for every job."""

    def __init__(self, *chunks) -> None:
        self.chunks = chunks

    def load(self, spec):
        return LoadInfo(device="cpu", sample_rate=16000)

    def synthesize(self, job):
        yield from self.chunks


class Interleaved(Yields):
    """Makes its jobs together, as XTTS does: ``(index, chunk)`` pieces, ``(index, None)`` at each job's end."""

    def interleaved(self, jobs):
        for index in range(len(jobs)):
            for chunk in self.chunks:
                yield index, chunk
            yield index, None


def _answer(backend: Backend, count: int = 1) -> list[tuple]:
    sent: list[tuple] = []
    jobs = [SynthesisJob(spec=LoadSpec("beep", "/models/beep"), text="Hi.", output="-") for _ in range(count)]
    worker.answer(sent.append, backend, jobs)
    return sent


def _errors(sent: list[tuple]) -> list[str]:
    return [message[2] for message in sent if message[0] == "error"]


@pytest.mark.parametrize(("chunk", "said"), [
    (AudioChunk((TONE * 32767).astype(np.int16), 16000), "yielded int16 samples of shape (1600,)"),
    (AudioChunk(np.stack([TONE, TONE], axis=1), 16000), "yielded float32 samples of shape (1600, 2)"),
    (AudioChunk(np.float32(0.1), 16000), "yielded float32 samples of shape ()"),
    (AudioChunk(["a", "b"], 16000), "yielded <U1 samples"),
    (TONE, "yielded a ndarray"),
    (AudioChunk(np.where(np.arange(1600) == 800, np.nan, TONE).astype(np.float32), 16000), "samples that are not numbers"),
    (AudioChunk(np.where(np.arange(1600) == 800, np.inf, TONE).astype(np.float32), 16000), "samples that are not numbers"),
    (AudioChunk(TONE, 0), "sample rate 0"),
    (AudioChunk(TONE, 16000.0), "sample rate 16000.0"),
])
@pytest.mark.parametrize("backend", [Yields, Interleaved])
def test_audio_off_the_contract_fails_the_job_naming_the_backend(backend, chunk, said):
    sent = _answer(backend(AudioChunk(TONE, 16000), chunk), count=2 if backend is Interleaved else 1)
    errors = _errors(sent)
    assert errors and all(error.startswith("the beep backend ") and said in error for error in errors), sent
    assert all("mono float32 samples in [-1, 1]" in error for error in errors)
    assert all(message[1] is TONE for message in sent if message[0] == "chunk")  # only the good chunk went out


def test_a_rate_that_changes_within_a_job_fails_it():
    errors = _errors(_answer(Yields(AudioChunk(TONE, 16000), AudioChunk(TONE, 24000))))
    assert errors == ["the beep backend changed its sample rate within one job (16000, then 24000); resample to one rate per job"]


def test_audio_on_the_contract_goes_out_as_float32_mono():
    sent = _answer(Yields(AudioChunk(TONE.astype(np.float64), np.int64(16000)), AudioChunk(list(TONE[:10]), 16000)))
    chunks = [message for message in sent if message[0] == "chunk"]
    assert [(c[1].dtype, c[1].shape, type(c[2])) for c in chunks] == [(np.float32, (1600,), int), (np.float32, (10,), int)]
    assert sent[-1][0] == "done"


class Raises(Yields):
    """Fails as a plugin's code does by accident: a plain exception, in load or part way through a job."""

    def load(self, spec):
        raise RuntimeError("model.npz is damaged")

    def synthesize(self, job):
        yield AudioChunk(TONE, 16000)
        raise ValueError("beep exploded")


class InterleavedRaises(Raises):
    def interleaved(self, jobs):
        yield 0, AudioChunk(TONE, 16000)
        raise ValueError("beep exploded")


@pytest.mark.parametrize("backend", [Raises, InterleavedRaises])
def test_a_plugin_exception_names_the_backend(backend):
    assert _errors(_answer(backend(), count=2)) == ["synthesis failed (beep backend): ValueError: beep exploded"] * 2


def test_a_plugin_that_fails_to_load_is_named(monkeypatch):
    from demod_voice.backends import registry

    monkeypatch.setattr(registry, "create_backend", lambda name: Raises())
    loaded, said = worker.load_backend(LoadSpec("beep", "/models/beep"))
    assert loaded is None
    assert said == ("failed", "RuntimeFailure", "could not load /models/beep (beep backend): RuntimeError: model.npz is damaged")


def test_clients_read_a_backend_failure_without_the_server_paths(monkeypatch):
    """A plugin's load error (and the worker's own words) name the model file on the server; HTTP and Wyoming
    clients read its last part only, the server's log keeps the whole line."""
    from demod_voice.backends import registry
    from demod_voice.errors import InputError, RuntimeFailure, from_wire
    from demod_voice.serve.errors import client_text, from_engine

    model = "/srv/voices/cache/beep/a.npz"

    class MissingModel(Yields):
        def load(self, spec):
            open(spec.model, "rb")

    monkeypatch.setattr(registry, "create_backend", lambda name: MissingModel())
    _, (_, kind, message) = worker.load_backend(LoadSpec("beep", model))
    failed = from_wire(kind, message)
    assert isinstance(failed, RuntimeFailure) and model in str(failed)
    for said in (client_text(failed), from_engine(failed).body()["error"]["message"]):
        assert said == "could not load a.npz (beep backend): FileNotFoundError: [Errno 2] No such file or directory: 'a.npz'"
    asked = InputError("no voice called '/x/y/z'")  # the client's own words come back as they were sent
    assert client_text(asked) == from_engine(asked).body()["error"]["message"] == "no voice called '/x/y/z'"


class Exits(Yields):
    """Calls ``sys.exit`` as library code sometimes does: it ended the worker, whose job was retried on a fresh one that
    exited too ("the worker exited with code 1 while synthesising ..."), its words only on the server's stderr."""

    def load(self, spec):
        raise SystemExit("needs a GPU")

    def synthesize(self, job):
        yield AudioChunk(TONE, 16000)
        raise SystemExit("gave up")


def test_a_plugin_calling_sys_exit_fails_its_job_and_the_worker_lives_on(monkeypatch):
    from demod_voice.backends import registry

    assert _errors(_answer(Exits(), count=2)) == ["synthesis failed (beep backend): SystemExit: gave up"] * 2
    monkeypatch.setattr(registry, "create_backend", lambda name: Exits())
    _, said = worker.load_backend(LoadSpec("beep", "/models/beep"))
    assert said == ("failed", "RuntimeFailure", "could not load /models/beep (beep backend): SystemExit: needs a GPU")


@pytest.mark.parametrize("backend", [Yields, Interleaved])
def test_empty_chunks_are_no_audio(backend):
    """A job of zero-length chunks only was "done": batch wrote a 44-byte WAV and HTTP answered 200 with no audio,
    while a job of no chunks is "the text produced no audio". Empty chunks are not sent; the rest is."""
    sent = _answer(backend(AudioChunk(np.zeros(0, dtype=np.float32), 16000), AudioChunk(TONE, 16000)))
    assert [message[0] for message in sent] == ["chunk", "done"] and sent[0][1] is TONE
    assert [message[0] for message in _answer(backend(AudioChunk(np.zeros(0, dtype=np.float32), 16000)))] == ["done"]
