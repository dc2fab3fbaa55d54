"""Engine-level Ray scenarios, run by test_ray.py inside the cluster's network namespace:
``python ray_scenarios.py SCENARIO ADDRESS OUT_DIR`` prints one JSON object.

They use the fake backend of tests/fakes.py (``crash`` in a text kills the worker process), so
they test the executor and the engine's rules, not an engine.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes

from demod_voice.config import EngineSettings  # noqa: E402
from demod_voice.engine.executors.ray import RayExecutor  # noqa: E402
from demod_voice.engine.jobs import LoadSpec, SynthesisJob  # noqa: E402
from demod_voice.engine.service import EngineService  # noqa: E402

FAKE = "fakes:FakeBackend"


def _results(results) -> list[dict]:
    return [{"output": Path(r.job.output).name, "ok": r.ok, "attempts": r.attempts, "where": r.where,
             "error": None if r.ok else str(r.error)} for r in results]


def crash(address: str, out: Path) -> dict:
    """A row whose text kills every worker it touches, among good rows. One worker, so that each
    death makes the engine start a worker again: Ray's restart of the same actor (model reloaded)."""
    settings = EngineSettings(retries=1, ray_num_cpus=0.25)
    executor = RayExecutor(settings, address)
    started: list = []
    service = EngineService(settings, workers=1, executor=executor)
    service.on_worker_start = started.append
    spec = LoadSpec(FAKE, str(out))
    texts = ["one two", "bad crash here", "three", "four five", "six"]
    results = service.run([SynthesisJob(spec, text, str(out / f"{i}.wav"), label=f"row{i}") for i, text in enumerate(texts)])
    service.shutdown()
    return {"results": _results(results), "deaths": [w.deaths for w in started], "pids": [w.pid for w in started],
            "actors": len({w.actor._actor_id.hex() for w in started}),
            "stats": service.stats(), "files": sorted(p.name for p in out.iterdir())}


def missing(address: str, out: Path) -> dict:
    """A model no node can see fails every row of that model with one clear error."""
    settings = EngineSettings(ray_num_cpus=0.25)
    service = EngineService(settings, workers=1, executor=RayExecutor(settings, address))
    spec = LoadSpec(FAKE, str(out / "no-such-model"))
    results = service.run([SynthesisJob(spec, "hello", str(out / "m.wav"))])
    service.shutdown()
    return {"results": _results(results)}


def cancel(address: str, out: Path) -> dict:
    """A job cancelled while its actor makes it stops between chunks; the actor stays loaded."""
    settings = EngineSettings(ray_num_cpus=0.25)
    executor = RayExecutor(settings, address)
    started: list = []
    service = EngineService(settings, workers=1, executor=executor)
    service.on_worker_start = started.append
    spec = LoadSpec(FAKE, str(out))
    handle = service.submit(SynthesisJob(spec, " ".join(["slow"] * 50), "-"))
    first = next(iter(handle.chunks()))
    handle.cancel()
    result = handle.result(timeout=60)
    after = service.submit(SynthesisJob(spec, "again", "-")).result(timeout=60)
    service.shutdown()
    return {"first_chunk": len(first.samples), "cancelled": type(result.error).__name__, "after_ok": after.ok,
            "workers_started": len(started)}


def together(address: str, out: Path) -> dict:
    """Jobs with one ``together`` key reach one actor in one hand-over, and each gets its own answer."""
    from demod_voice.engine.executors.ray import RayWorker

    settings = EngineSettings(ray_num_cpus=0.25)
    handed: list[int] = []
    send = RayWorker.send

    def recording(self, jobs):
        if isinstance(jobs, list):
            handed.append(len(jobs))
        return send(self, jobs)

    RayWorker.send = recording
    service = EngineService(settings, workers=1, executor=RayExecutor(settings, address))
    spec = LoadSpec(FAKE, str(out))
    jobs = [SynthesisJob(spec, " ".join(["word"] * (i + 1)), str(out / f"t{i}.wav"), together="voice", together_limit=4)
            for i in range(4)]
    results = service.run(jobs)
    service.shutdown()
    return {"results": _results(results), "handed": handed, "audio": [r.audio_seconds for r in results]}


def full(address: str, out: Path) -> dict:
    """A model whose actors cannot be placed while idle actors of another model hold the whole
    cluster (two CPUs): those give their room up, instead of holding it for engine.idle_timeout."""
    import time

    settings = EngineSettings(ray_num_cpus=1, idle_timeout=600)
    started: list = []
    service = EngineService(settings, workers=2, executor=RayExecutor(settings, address))
    service.on_worker_start = started.append
    first, second = LoadSpec(FAKE, str(out / "a")), LoadSpec(FAKE, str(out / "b"))
    for spec in (first, second):
        Path(spec.model).mkdir(parents=True, exist_ok=True)
    before = service.run([SynthesisJob(first, "one two", str(out / f"a{i}.wav")) for i in range(4)])
    began = time.monotonic()
    after = service.run([SynthesisJob(second, "three", str(out / f"b{i}.wav")) for i in range(4)])
    waited = time.monotonic() - began
    service.shutdown()
    return {"results": _results(before + after), "waited": waited, "released": sum(1 for w in started if w._released),
            "first_nodes": sorted({r.where for r in before})}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    name, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("FAKE_CRASH_ONCE", None)
    print(json.dumps({"crash": crash, "missing": missing, "cancel": cancel, "together": together, "full": full}[name](address, out)), flush=True)


if __name__ == "__main__":
    main()
