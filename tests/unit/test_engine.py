"""Orchestration of the engine with a fake backend in real worker processes (see fakes.py)."""

from __future__ import annotations

import os
from pathlib import Path

import soundfile

from demod_voice.config import EngineSettings
from demod_voice.engine.handles import Priority
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.engine.service import EngineRun, EngineService

SPEC = LoadSpec("fakes:FakeBackend", "/models/fake")


def jobs(tmp_path: Path, *texts: str, spec: LoadSpec = SPEC) -> list[SynthesisJob]:
    return [SynthesisJob(spec, text, str(tmp_path / f"out{i}.wav")) for i, text in enumerate(texts)]


def test_jobs_share_one_worker_and_outputs_are_complete(tmp_path):
    engine = EngineRun(EngineSettings())
    started = []
    engine.on_worker_start = started.append
    results = engine.run(jobs(tmp_path, "one two", "three", "four five six"))
    assert [r.ok for r in results] == [True, True, True]
    assert len(started) == 1
    assert [soundfile.info(r.job.output).frames for r in results] == [1600, 800, 2400]


def test_worker_killed_mid_job_fails_that_job_only(tmp_path):
    engine = EngineRun(EngineSettings(retries=0))
    started = []
    engine.on_worker_start = started.append
    results = engine.run(jobs(tmp_path, "before", "slow slow crash more", "after"))
    assert [r.ok for r in results] == [True, False, True]
    message = str(results[1].error)
    assert "killed by SIGKILL" in message and "out1.wav" in message
    assert results[1].error.exit_code == 1
    assert len(started) == 2  # replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.wav", "out2.wav"]  # no partial file


def test_worker_death_is_retried_once_on_a_fresh_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CRASH_ONCE", str(tmp_path / "crashed"))
    results = EngineRun(EngineSettings(retries=1)).run(jobs(tmp_path, "slow crash done"))
    assert results[0].ok and results[0].attempts == 2
    assert soundfile.info(results[0].job.output).frames == 3 * 800


def test_engine_error_is_reported_and_worker_kept(tmp_path):
    engine = EngineRun(EngineSettings())
    started = []
    engine.on_worker_start = started.append
    results = engine.run(jobs(tmp_path, "good fail", "fine"))
    assert not results[0].ok and "engine exploded" in str(results[0].error)
    assert results[1].ok
    assert len(started) == 1
    assert not os.path.exists(results[0].job.output)


def test_workers_are_recycled_after_max_jobs(tmp_path):
    engine = EngineRun(EngineSettings(max_jobs_per_worker=2))
    started = []
    engine.on_worker_start = started.append
    results = engine.run(jobs(tmp_path, "a", "b", "c", "d", "e"))
    assert all(r.ok for r in results)
    assert len(started) == 3
    assert len({w.pid for w in started}) == 3


def test_load_failure_fails_every_job_of_that_model_once(tmp_path):
    broken = LoadSpec("fakes:FakeBackend", "/models/broken")
    engine = EngineRun(EngineSettings(retries=3), workers=2)
    started = []
    engine.on_worker_start = started.append
    (tmp_path / "other").mkdir()
    results = engine.run(jobs(tmp_path, "a", "b", "c", spec=broken) + jobs(tmp_path / "other", "d"))
    assert [r.ok for r in results] == [False, False, False, True]
    assert all("cannot load /models/broken" in str(r.error) for r in results[:3])
    assert results[0].error.exit_code == 3


def test_several_workers_share_the_jobs(tmp_path):
    engine = EngineRun(EngineSettings(), workers=2)
    started = []
    engine.on_worker_start = started.append
    results = engine.run(jobs(tmp_path, *(["slow word"] * 6)))
    assert all(r.ok for r in results)
    assert len(started) == 2


def test_several_workers_split_the_cores_between_them(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="demod_voice.engine")
    EngineRun(EngineSettings(), workers=2, log_level=logging.INFO).run(jobs(tmp_path, "a", "b", "c", "d"))
    share = max(1, (os.cpu_count() or 1) // 2)
    assert sum(f"threads={share}" in r.getMessage() for r in caplog.records) == 2
    caplog.clear()
    EngineRun(EngineSettings(), workers=1, log_level=logging.INFO).run(jobs(tmp_path, "e"))
    assert any("threads=0" in r.getMessage() for r in caplog.records)  # one worker: the engine's own default


def together(tmp_path: Path, *texts: str, key: str = "voice", limit: int = 2) -> list[SynthesisJob]:
    return [SynthesisJob(SPEC, text, str(tmp_path / f"out{i}.wav"), together=key, together_limit=limit)
            for i, text in enumerate(texts)]


def test_jobs_with_one_together_key_are_handed_over_at_once(tmp_path, monkeypatch):
    handed = tmp_path / "handed.txt"
    monkeypatch.setenv("FAKE_HANDED", str(handed))
    mixed = together(tmp_path, "a", "b", "c", "d", "e") + [SynthesisJob(SPEC, "lone", str(tmp_path / "lone.wav"))]
    mixed.insert(2, SynthesisJob(SPEC, "x y", str(tmp_path / "other.wav"), together="other", together_limit=2))
    results = EngineRun(EngineSettings()).run(mixed)
    assert all(r.ok for r in results) and [r.job.text for r in results] == [j.text for j in mixed]
    assert handed.read_text().splitlines() == ["a|b", "x y", "c|d", "e", "lone"]
    assert soundfile.info(str(tmp_path / "other.wav")).frames == 1600 and soundfile.info(str(tmp_path / "out4.wav")).frames == 800


def handed_sizes(handed: Path) -> list[int]:
    return [len(line.split("|")) for line in handed.read_text().splitlines()]


def test_batch_work_on_several_workers_is_handed_over_in_shrinking_shares(tmp_path, monkeypatch):
    handed = tmp_path / "handed.txt"
    monkeypatch.setenv("FAKE_HANDED", str(handed))
    engine = EngineRun(EngineSettings(), workers=2)
    started = []
    engine.on_worker_start = started.append
    rows = [f"row{i}" for i in range(40)]
    results = engine.run(together(tmp_path, *rows, limit=16))
    assert all(r.ok for r in results) and len(started) == 2
    # each hand-over is a quarter (1 / (2 x 2 workers)) of what waits, rounded up: the last ones are single rows, so
    # the workers run out of work together; the two workers write their lines in whatever order they get them
    assert sorted(handed_sizes(handed), reverse=True) == [10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1]
    handed.unlink()
    EngineRun(EngineSettings(), workers=1).run(together(tmp_path, *rows, limit=16))
    assert handed_sizes(handed) == [16, 16, 8]  # one worker: whole hand-overs, nobody to wait for


def test_interactive_jobs_arriving_together_are_shared_evenly_among_idle_workers(tmp_path, monkeypatch):
    handed = tmp_path / "handed.txt"
    monkeypatch.setenv("FAKE_HANDED", str(handed))
    svc = EngineService(EngineSettings(), workers=2)
    try:
        handles = svc.submit_many([(job, None) for job in together(tmp_path, *"abcdef", limit=16)], priority=Priority.INTERACTIVE)
        assert all(h.result(timeout=30).ok for h in handles)
    finally:
        svc.shutdown()
    assert sorted(handed_sizes(handed)) == [3, 3]


def test_a_failure_fails_the_rest_of_its_hand_over_and_nothing_else(tmp_path):
    engine = EngineRun(EngineSettings())
    results = engine.run(together(tmp_path, "a", "fail", "b", "c", limit=3) + jobs(tmp_path / "..", "after"))
    assert [r.ok for r in results] == [True, False, False, True, True]
    assert all("engine exploded" in str(r.error) for r in results[1:3])
    assert not os.path.exists(results[2].job.output)


def test_jobs_handed_over_with_a_crashed_one_run_again_without_an_attempt_charged(tmp_path):
    engine = EngineRun(EngineSettings(retries=0))
    started = []
    engine.on_worker_start = started.append
    results = engine.run(together(tmp_path, "slow crash", "b", "c", limit=3))
    assert [r.ok for r in results] == [False, True, True]
    assert "killed by SIGKILL" in str(results[0].error)
    assert [r.attempts for r in results] == [1, 1, 1] and len(started) == 2
