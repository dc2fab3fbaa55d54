"""Jobs handed to a worker together may come back interleaved (engine/protocol.py): each chunk is
tagged with its job, so every job streams from its first chunk while they share the worker.
Orchestration only, with a fake backend in real worker processes (fakes.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from demod_voice.config import EngineSettings
from demod_voice.engine import protocol
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.service import EngineService
from demod_voice.engine.worker import answer
from demod_voice.errors import Cancelled, RuntimeFailure

SPEC = LoadSpec("fakes:InterleavingFakeBackend", "/models/fake")


def job(text: str) -> SynthesisJob:
    return SynthesisJob(SPEC, text, "-", together="same", together_limit=4)


@pytest.fixture
def service():
    svc = EngineService(EngineSettings(together_wait_ms=200.0), workers=1)
    yield svc
    svc.shutdown()


def test_messages_carry_their_job_and_old_ones_mean_the_current_job():
    assert protocol.tagged(("chunk", "s", 8000), 2) == ("chunk", "s", 8000, 2)
    assert protocol.job_index(("chunk", "s", 8000, 2)) == 2 and protocol.job_index(("chunk", "s", 8000)) is None
    assert protocol.job_index(protocol.done(1)) == 1 and protocol.job_index(("done",)) is None
    assert protocol.job_index(protocol.error("InputError", "bad", 0)) == 0
    assert protocol.tagged(("ready", "info"), 3) == ("ready", "info")


def test_the_worker_sends_interleaved_chunks_tagged_and_ends_each_job_once():
    from fakes import InterleavingFakeBackend

    sent = []
    answer(sent.append, InterleavingFakeBackend(), [job("a b c"), job("d")])
    kinds = [(m[0], protocol.job_index(m)) for m in sent]
    assert kinds == [("chunk", 0), ("chunk", 1), ("chunk", 0), ("done", 1), ("chunk", 0), ("done", 0)]


def test_jobs_handed_over_together_stream_interleaved_and_each_gets_its_own_audio(service):
    ended: dict[str, float] = {}
    handles = service.submit_many([(job("slow " * 6), None), (job("slow " * 2), None)])
    for name, handle in zip("ab", handles, strict=True):
        handle.add_done_callback(lambda result, name=name: ended.setdefault(name, time.perf_counter()))
    long, short = ([c.samples for c in h.chunks(timeout=30)] for h in handles)
    assert len(long) == 6 and len(short) == 2
    assert all(np.all(c == np.float32(0.1)) for c in long) and all(np.all(c == np.float32(0.2)) for c in short)
    assert handles[0].result().ok and handles[1].result().ok
    assert ended["b"] < ended["a"]  # the short job ended while the long one, handed over first, still went on


def test_cancelling_one_of_jobs_made_together_leaves_the_others_whole(service):
    handles = service.submit_many([(job("slow " * 10), None), (job("slow " * 4), None)])
    next(iter(handles[0].chunks(timeout=30)))
    handles[0].cancel()
    assert isinstance(handles[0].result(timeout=30).error, Cancelled)
    assert len(list(handles[1].chunks(timeout=30))) == 4 and handles[1].result().ok


def test_a_failure_while_made_together_fails_each_unfinished_job_once(service):
    handles = service.submit_many([(job("slow slow fail"), None), (job("slow"), None)])
    results = [h.result(timeout=30) for h in handles]
    assert results[1].ok  # it was complete before the failure
    assert isinstance(results[0].error, RuntimeFailure) and "engine exploded" in str(results[0].error)


def test_a_hand_over_cancelled_whole_stops_its_shared_run_at_once():
    """Ctrl-C (or a DELETE of the batch job) cancels every job of a hand-over: each job's turn made the rest of the one
    before it off the shared run, so the worker made the whole hand-over before answering, past the engine's
    cancel_kill_after (a warning and a killed worker on every Ctrl-C of a batch)."""
    from demod_voice.audio.chunks import AudioChunk
    from demod_voice.backends.base import in_turn

    class SharedRun:
        made = 0

        def synthesize_together(self, jobs):
            counts = [len(j.text.split()) for j in jobs]

            def run():
                for _ in range(sum(counts)):
                    SharedRun.made += 1
                    yield AudioChunk(np.zeros(8, np.float32), 8000)

            yield from in_turn(run(), counts)

    sent: list = []
    answer(sent.append, SharedRun(), [job("a b c d e"), job("f g h i j"), job("k l m n o")], cancelled=lambda index: bool(sent))
    assert [(m[0], protocol.job_index(m)) for m in sent] == [("chunk", 0), ("error", 0), ("error", 1), ("error", 2)]
    assert SharedRun.made <= 2, SharedRun.made  # the first chunk (and no more than one ahead), not all fifteen


def joinable(text: str) -> SynthesisJob:
    return SynthesisJob(SPEC, text, "-", together="same", together_limit=4, joins=True)


def test_jobs_that_join_a_running_hand_over_are_made_from_its_next_round_with_their_own_places():
    from fakes import InterleavingFakeBackend

    sent: list = []
    arrivals = [[], [(1, [joinable("x y")])], [], [(2, [joinable("z")])]]
    answer(sent.append, InterleavingFakeBackend(), [joinable("a b c d")],
           joined=lambda: arrivals.pop(0) if arrivals else [])
    kinds = [(m[0], protocol.job_index(m)) for m in sent]
    assert kinds == [("chunk", 0), ("chunk", 0), ("chunk", 1), ("chunk", 0), ("chunk", 1),
                     ("chunk", 0), ("done", 1), ("chunk", 2), ("done", 0), ("done", 2)]
    assert {float(m[1][0]) for m in sent if m[0] == "chunk" and m[3] == 2} == {np.float32(0.3)}  # the joined job's own audio


def test_jobs_that_joined_after_the_last_round_are_answered_with_their_places_and_the_next_hand_over_after():
    """The join came as the hand-over's last message went out: the worker's loop answers it at its place, and a hand-over
    sent right behind it is answered next (one the worker read while looking for joins was lost: the engine hung)."""
    import threading
    from multiprocessing import Pipe

    from demod_voice.engine.worker import serve

    ours, theirs = Pipe()
    worker = threading.Thread(target=serve, args=(theirs, SPEC), daemon=True)
    worker.start()
    assert ours.recv()[0] == "ready"
    ours.send([joinable("a")])
    said = [ours.recv(), ours.recv()]
    ours.send(protocol.join(1, [joinable("b c")]))  # the parent had not yet read the first job's end
    said += [ours.recv() for _ in range(3)]
    ours.send([job("d")])  # the next hand-over, right behind
    said += [ours.recv() for _ in range(2)]
    ours.send(None)
    worker.join(timeout=30)
    assert [(m[0], protocol.job_index(m)) for m in said] == [
        ("chunk", 0), ("done", 0), ("chunk", 1), ("chunk", 1), ("done", 1), ("chunk", 0), ("done", 0)]
    assert not worker.is_alive()


def test_a_request_that_comes_while_a_long_one_streams_joins_it_and_ends_first(service):
    """A request that came while a long one streamed on the model's one worker waited for all of it (a 40-word XTTS
    answer held every other request of the server); now it joins the running batch at its next round."""
    started = []
    service.on_worker_start = started.append
    ended: dict[str, float] = {}
    long = service.submit(joinable("slow " * 30))
    long.add_done_callback(lambda result: ended.setdefault("long", time.perf_counter()))
    next(iter(long.chunks(timeout=30)))  # it streams
    short = service.submit(joinable("slow slow"))
    short.add_done_callback(lambda result: ended.setdefault("short", time.perf_counter()))
    chunks = [c.samples for c in short.chunks(timeout=30)]
    assert short.result(timeout=30).ok and len(chunks) == 2
    assert all(np.all(c == np.float32(0.2)) for c in chunks)  # made as the hand-over's second job, its own audio
    assert long.result(timeout=30).ok and len(list(long.chunks(timeout=30))) == 29  # (its first was read above)
    assert ended["short"] < ended["long"] and len(started) == 1


def test_a_joined_job_cancelled_leaves_the_running_one_whole(service):
    long = service.submit(joinable("slow " * 12))
    next(iter(long.chunks(timeout=30)))
    late = service.submit(joinable("slow " * 12))
    next(iter(late.chunks(timeout=30)))  # it has joined
    late.cancel()
    assert isinstance(late.result(timeout=30).error, Cancelled)
    assert long.result(timeout=30).ok and len(list(long.chunks(timeout=30))) == 11  # (its first was read above)
    assert service.submit(joinable("slow")).result(timeout=30).ok  # the worker goes on
