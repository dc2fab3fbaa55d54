"""The engine's part of a book: takes made as jobs, heard back as recogniser jobs, remade when they fail.

Both kinds of job go to the same engine (its workers, retries, Ray executor): the recogniser runs
in a worker like any backend, never in the process that called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

from demod_voice.book import verify
from demod_voice.book.plan import BookOutcome, BookRequest, Planned, Progress, work_dir
from demod_voice.book.timings import Timings
from demod_voice.book.voice import language_of
from demod_voice.config import cache_root
from demod_voice.engine.handles import JobResult
from demod_voice.engine.jobs import LoadSpec, SynthesisJob
from demod_voice.errors import ModelMissing, OutputFull
from demod_voice.paths import os_error
from demod_voice.resume import Manifest


def synthesise(engine: Any, request: BookRequest, manifest: Manifest, outcome: BookOutcome, progress: Progress,
               only: Optional[set[str]] = None, stage: str = "synthesis") -> None:
    """Make every take whose file is missing (or only those in ``only``); one job per distinct take."""
    todo = _to_make(manifest, outcome, progress, only)
    if not todo:
        return
    titles = _titles(outcome)
    progress.start(stage, sum(len(p.take.text) for p in todo.values()))
    by_output = {p.job.output: p for p in todo.values()}
    timings = Timings(work_dir(request))

    recorded: set[str] = set()

    def finished(result: JobResult) -> None:
        if result.job.output in recorded:
            return  # given again: Ctrl-C or SIGTERM came while it was being recorded (EngineService.run)
        planned = by_output[result.job.output]
        progress.advance(len(planned.take.text), titles[planned.take.chapter])
        if result.ok:
            recorded.add(result.job.output)  # before the manifest's write and fsync: given again, it is not written twice
            manifest.record(result.job, planned.key)
            timings.record(planned.key, planned.path, result.value)  # the voice's own word timings, where it gave them
            outcome.made += 1
            return
        if isinstance(result.error, OutputFull):
            raise OutputFull(f"{result.job.describe()}: {result.error}")
        if isinstance(result.error, ModelMissing):  # the voice cannot be loaded: no take can be made, whatever its words
            raise result.error
        outcome.failed.append(f"{result.job.describe()}: {result.error}")

    try:
        engine.run([p.job for p in todo.values()], on_result=finished, keep=False)
    finally:
        timings.close()


def _titles(outcome: BookOutcome) -> dict[int, str]:
    return {n: f"{n + 1}/{len(outcome.book.chapters)} {c.title[:40]}" for n, c in enumerate(outcome.book.chapters)}


def hearing(request: BookRequest, outcome: BookOutcome, fetch: bool = True) -> Optional[tuple[LoadSpec, str]]:
    """The recogniser of ``--verify`` and the language it hears, ready before any take is made (``None``: no take has
    words to hear). A language or ``book.asr_model`` it cannot hear, a missing ``asr`` extra or a model that cannot be
    downloaded stopped the book after every take was made: a night's synthesis, and no audiobook in the morning.
    Without ``fetch`` (a dry run) the model is chosen, not made ready (nor downloaded)."""
    takes = [p for chapter in outcome.plan for p in chapter if p.take.text.strip()]
    if not takes:
        return None
    language = language_of(takes[0].job, outcome.book.language)
    spec = verify.recogniser_spec(language, request.config.book.asr_model, request.config.device, cache_root(request.config))
    if fetch:
        verify.ready(spec)
    return spec, language


def verify_takes(engine: Any, request: BookRequest, manifest: Manifest, outcome: BookOutcome, progress: Progress,
                 recogniser: Optional[tuple[LoadSpec, str]]) -> None:
    """Hear every take not yet heard with ``recogniser`` (:func:`hearing`); remake failing ones up to ``retakes`` times,
    keeping the best take of each."""
    ledger = verify.Ledger(work_dir(request))
    try:
        # a take of pauses only (a <speak> scene break) has no words to hear: "no speech in it" is what was meant
        distinct = {p.key: p for chapter in outcome.plan for p in chapter if p.take.text.strip()}
        if not distinct or recogniser is None:
            return
        spec, language = recogniser
        unheard = [p for p in distinct.values() if ledger.verdict(p.key, p.path) is None]
        _hear(engine, spec, ledger, unheard, language, request, progress, outcome, "verification")
        for attempt in range(1, request.retakes + 1):
            failing = [p for p in distinct.values() if not ledger.verdict(p.key, p.path).ok]
            if not failing:
                break
            progress.say(f"{len(failing)} take(s) failed verification; remaking them (retake {attempt} of {request.retakes})")
            aside = {p.key: _set_aside(p, ledger) for p in failing}
            synthesise(engine, request, manifest, outcome, progress, only=set(aside), stage=f"retake {attempt}")
            _hear(engine, spec, ledger, [p for p in failing if p.path.exists()], language, request, progress, outcome,
                  f"hearing retake {attempt}")
            for planned in failing:
                _keep_best(planned, aside[planned.key], ledger, manifest)
        outcome.verdicts = {key: ledger.verdict(key, p.path) for key, p in distinct.items()}
    finally:
        ledger.close()


def _to_make(manifest: Manifest, outcome: BookOutcome, progress: Progress, only: Optional[set[str]]) -> dict[str, Planned]:
    """The takes to make by key: those in ``only``, else every one not made yet (said, with how many are)."""
    if only is not None:
        return {p.key: p for chapter in outcome.plan for p in chapter if p.key in only}
    todo: dict[str, Planned] = {}
    distinct, made = set(), set()  # by take: a text said twice in a book is one take (a first run said "1 of 4 ... made")
    for planned in (p for chapter in outcome.plan for p in chapter):
        distinct.add(planned.key)
        if manifest.complete(planned.job, planned.key):
            made.add(planned.key)
        else:
            todo.setdefault(planned.key, planned)
    outcome.reused = len(made)
    if made:
        progress.say(f"{len(made)} of {len(distinct)} takes are already made (folder of takes); {len(todo)} to make")
    return todo


def _hear(engine: Any, spec: Any, ledger: verify.Ledger, takes: list[Planned], language: str, request: BookRequest,
          progress: Progress, outcome: BookOutcome, stage: str) -> None:
    if not takes:
        return
    titles = _titles(outcome)
    jobs = [verify.hear_job(spec, p.path, language, p.job.label) for p in takes]
    by_audio = {verify.heard_audio(job): p for job, p in zip(jobs, takes, strict=True)}
    progress.start(stage, sum(len(p.take.text) for p in takes))

    def heard(job: SynthesisJob, value: dict) -> None:
        planned = by_audio[verify.heard_audio(job)]
        seconds = verify.speech_seconds(planned.path)
        verdict = verify.judge(planned.take.reading, str(value.get("text", "")), seconds, request.wer_threshold,
                               planned.job.text, language)
        verdict = dataclasses.replace(verdict, words=verify.heard_words(value))
        ledger.record(planned.key, planned.path, verdict)
        progress.advance(len(planned.take.text), titles[planned.take.chapter])

    verify.transcribe(engine, jobs, heard)


def _set_aside(planned: Planned, ledger: verify.Ledger) -> tuple[Path, verify.Verdict]:
    """Move a failing take out of the way (its verdict kept) so that the retake takes its place."""
    verdict = ledger.verdict(planned.key, planned.path)
    aside = planned.path.with_suffix(".previous.flac")
    try:
        os.replace(planned.path, aside)
    except OSError as err:
        raise os_error(f"cannot set aside the take {planned.path.name}", err) from None
    return aside, verdict


def _keep_best(planned: Planned, aside: tuple[Path, verify.Verdict], ledger: verify.Ledger, manifest: Manifest) -> None:
    """Keep the retake if it scores better than the take set aside, else put that one back."""
    old_path, old = aside
    new = ledger.verdict(planned.key, planned.path) if planned.path.exists() else None
    if new is not None and new.score <= old.score:
        with contextlib.suppress(OSError):
            old_path.unlink()
        return
    try:
        os.replace(old_path, planned.path)
    except OSError as err:
        raise os_error(f"cannot restore the take {planned.path.name}", err) from None
    manifest.record(planned.job, planned.key)
    ledger.record(planned.key, planned.path, old)
