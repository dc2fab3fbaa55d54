"""The engine with the real Piper backend: a worker killed in the middle of a job."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import soundfile

from demod_voice.audio.writer import FileSink
from demod_voice.backends.piper.request import PiperRequest, make_job
from demod_voice.config import EngineSettings, PiperSettings
from demod_voice.engine.service import EngineRun

# Many sentences: far more audio than a pipe buffers, so the worker is still busy when killed.
MANY = " ".join(f"This is sentence number {i}, spoken to keep the worker busy." for i in range(30))


class KillOnFirstChunk(FileSink):
    """A file sink that SIGKILLs the job's worker when the first chunk arrives, once per path."""

    worker_pid = 0
    killed: set[str] = set()

    def write(self, chunk):
        if self.path.name.startswith("victim") and str(self.path) not in self.killed:
            self.killed.add(str(self.path))
            os.kill(self.worker_pid, signal.SIGKILL)
        super().write(chunk)


def piper_jobs(voice: Path, folder: Path, names: list[str]):
    settings = PiperSettings()
    return [make_job(PiperRequest(str(voice), MANY if n.startswith("victim") else "Short.", str(folder / n), settings)) for n in names]


def run(voice, folder, names, retries):
    engine = EngineRun(EngineSettings(retries=retries), sink_factory=lambda job: KillOnFirstChunk(Path(job.output)))
    started = []

    def remember(worker):
        started.append(worker)
        KillOnFirstChunk.worker_pid = worker.pid

    engine.on_worker_start = remember
    return engine.run(piper_jobs(voice, folder, names)), started


def test_killed_worker_fails_its_job_and_the_next_job_succeeds(piper_voice, tmp_path):
    results, started = run(piper_voice, tmp_path, ["first.wav", "victim.wav", "next.wav"], retries=0)
    assert [r.ok for r in results] == [True, False, True]
    assert "killed by SIGKILL" in str(results[1].error)
    assert len(started) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.wav", "next.wav"]
    assert soundfile.info(str(tmp_path / "next.wav")).frames > 0


def test_killed_worker_job_is_retried_when_allowed(piper_voice, tmp_path):
    results, started = run(piper_voice, tmp_path, ["victim-retry.wav"], retries=1)
    assert results[0].ok and results[0].attempts == 2
    assert soundfile.info(str(tmp_path / "victim-retry.wav")).duration > 30
    assert len(started) == 2
