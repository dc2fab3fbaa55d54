"""A fake backend for orchestration tests of the engine only (it proves nothing about a real engine).

Behaviour is steered by the job text: ``crash`` kills its own worker, ``slow`` sleeps between
chunks, ``mute`` makes nothing for 30 s, ``fail`` raises, ``hog`` holds 300 MB; anything else yields a short tone per word. A
first text ``refuse`` makes ``synthesize_together`` raise at once. With ``FAKE_HANDED`` set,
each hand-over (one job or several together) appends a line of their texts to that file.
Models: ``.../broken`` raises on load (``.../broken-until-mended``: until the file ``FAKE_MENDED`` exists; its
worker exits while loading instead with ``FAKE_MENDED_DIES`` set), ``.../dies-loading`` exits while loading,
``.../slow-load`` takes a second (``slower-load`` 14 s),
``.../flaky``
loads once and then raises (marker file ``FAKE_FLAKY``); ``.../dies-after-load`` loads, then its worker exits 0.2 s later,
the first ``FAKE_DEATHS`` times (a count kept in the file ``FAKE_LOADS``; every time without it), sparing the one load
that makes the marker file ``FAKE_SPARED``.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from demod_voice.audio.chunks import AudioChunk
from demod_voice.backends.base import Backend, LoadInfo
from demod_voice.errors import InputError

RATE = 8000


class FakeBackend(Backend):
    def load(self, spec):
        if spec.model.endswith("broken"):
            raise InputError(f"cannot load {spec.model}")
        if spec.model.endswith("broken-until-mended") and not os.path.exists(os.environ["FAKE_MENDED"]):
            if os.environ.get("FAKE_MENDED_DIES"):
                os._exit(3)
            raise InputError(f"cannot load {spec.model}: missing")
        if spec.model.endswith("dies-loading"):
            os._exit(3)
        if spec.model.endswith("slow-load"):
            time.sleep(1.0)
        if spec.model.endswith("slower-load"):
            time.sleep(14.0)
        if spec.model.endswith("flaky"):
            marker = os.environ["FAKE_FLAKY"]
            if os.path.exists(marker):
                raise RuntimeError("out of memory while loading")
            open(marker, "w").close()
        if spec.model.endswith("dies-after-load"):
            self._die_soon()
        from demod_voice import devices

        return LoadInfo(device="cpu", detail=f"fake, threads={devices.THREADS}", sample_rate=RATE)

    @staticmethod
    def _die_soon():
        spared = os.environ.get("FAKE_SPARED")
        if spared:  # made with O_EXCL: of two workers loading at once exactly one is spared (a count file let both be)
            try:
                os.close(os.open(spared, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return
            except FileExistsError:
                pass
        count = os.environ.get("FAKE_LOADS")
        if count:
            loads = int(open(count).read() or 0) + 1 if os.path.exists(count) else 1
            with open(count, "w") as handle:
                handle.write(str(loads))
            if loads > int(os.environ.get("FAKE_DEATHS", "1000")):
                return
        import threading

        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(5)), daemon=True).start()

    def synthesize(self, job):
        marker = os.environ.get("FAKE_CRASH_ONCE")
        for word in job.text.split():
            if word == "crash" and not (marker and os.path.exists(marker)):
                if marker:
                    open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            if word == "fail":
                raise RuntimeError("engine exploded")
            if word == "slow":
                time.sleep(0.2)
            if word == "mute":
                time.sleep(30.0)
            if word == "hog":
                self.hog = bytearray(300 * 2**20)
                time.sleep(2.0)
            yield AudioChunk(np.full(RATE // 10, 0.1, dtype=np.float32), RATE)

    def synthesize_together(self, jobs):
        handed = os.environ.get("FAKE_HANDED")
        if handed:
            with open(handed, "a") as log:
                log.write("|".join(job.text for job in jobs) + "\n")
        waiting = os.environ.get("FAKE_WAITING")
        if waiting:
            with open(waiting, "a") as log:
                log.write("".join(f"{job.text}:{job.waiting}\n" for job in jobs))
        if jobs[0].text.startswith("refuse"):
            raise RuntimeError("cannot batch these")
        return super().synthesize_together(jobs)


class InterleavingFakeBackend(FakeBackend):
    """Makes the jobs of a hand-over at once, as XTTS streams a GPT batch: a chunk of each job in
    turn, job ``i``'s chunks at amplitude ``0.1 * (i + 1)``; ``slow`` sleeps before its chunk, ``fail``
    raises. Jobs that join (``more()``) come in at the next round, as XTTS takes them."""

    def interleaved(self, jobs, more=None):
        return self._rounds([job.text.split() for job in jobs], more)

    def _rounds(self, words, more=None):
        made = [0] * len(words)
        ended: set[int] = set()
        while len(ended) < len(words) or more is not None:
            for job in more() if more is not None else ():
                words.append(job.text.split())
                made.append(0)
            if len(ended) == len(words):
                return
            for index, these in enumerate(words):
                if index in ended:
                    continue
                if made[index] == len(these):
                    ended.add(index)
                    yield index, None
                    continue
                if these[made[index]] == "fail":
                    raise RuntimeError("engine exploded")
                if these[made[index]] == "slow":
                    time.sleep(0.1)
                made[index] += 1
                yield index, AudioChunk(np.full(RATE // 10, 0.1 * (index + 1), dtype=np.float32), RATE)
