"""Windowed conversion keeps memory flat: the converter's worker needs no more for a long source than for a short one.

What grows with a source's length if windowing breaks: the converter run over the whole clip (its activations, about
15 MB per second of audio on the released architecture) or the whole clip's audio and spectrogram held in memory. The
test converts a short and a long source (over three times as long, both in windows) and compares the worker's peak resident
size during the conversion (VmHWM, reset once the converter is loaded, so the load's own peak does not hide the
conversion's); what is bounded by a setting rather than by the length (the source's own voice is judged on its first
``convert.source_embedding_seconds``) is set the same for both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile
from conftest import BIN, voiced_signal

RATE = 22050
SHORT, LONG = 6.0, 30.0
"""Seconds of the two sources, both longer than a window (3 s here): 17-60 s for the test on two cores, with the load."""
MARGIN_MB = 150
"""How much more the long source's conversion may take at peak. Measured here (windowed, 3 s windows): 706-771 MB for
sources of 6, 15 and 30 s alike, from run to run, and once in CI 683 MB for 6 s and 783 MB for 20 s (the peak moves
~100 MB from run to run whatever the length); converted as one clip instead, 15 s took 918 MB and 30 s 1173 MB (about
14 MB more per second of source: ~340 MB more for 30 s than for 6 s), so a whole-clip conversion of the long source
still passes the margin by far."""
WINDOW = {"DEMOD_VOICE_CONVERT_WINDOW_SECONDS": "3", "DEMOD_VOICE_CONVERT_OVERLAP_SECONDS": "0.5",
          "DEMOD_VOICE_CONVERT_SOURCE_EMBEDDING_SECONDS": "3", "DEMOD_VOICE_CONVERT_SEED": "7"}


def status_kb(pid: str, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match[1]) if match else 0


def peak_while_converting(source: Path, reference: Path, out: Path, env: dict) -> tuple[int, float, str]:
    """(the worker's peak resident kB after its load, seconds converted, stderr) for one ``convert`` run."""
    command = [sys.executable, str(BIN), "-v", "convert", str(source), "--reference", str(reference), "-o", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                               env={**os.environ, **env}, text=True)
    worker: list[str] = []
    peaks = [0]

    def watch() -> None:  # VmHWM is a high-water mark: polling it misses at most the last few milliseconds
        while process.poll() is None:
            if worker:
                try:
                    peaks.append(status_kb(worker[0], "VmHWM"))
                except OSError:
                    pass  # the worker has ended
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"worker (\d+): .* loaded in", line)
        if found and not worker:
            try:
                Path(f"/proc/{found[1]}/clear_refs").write_text("5")  # the peak counts from now: the load's own is left out
            except OSError:
                pass  # not allowed here: the peak then includes the load, the same for both runs
            worker.append(found[1])
    process.wait(timeout=300)
    watcher.join(10)
    text = "".join(lines)
    assert process.returncode == 0 and worker, text[-3000:]
    return max(peaks), soundfile.info(str(out)).duration, text


def test_windowed_conversion_keeps_memory_flat(vc_model, references, tmp_path):
    rng = np.random.default_rng(5)
    sources = {}
    for seconds in (SHORT, LONG):
        path = tmp_path / f"source-{seconds:g}s.wav"
        signal = voiced_signal(seconds, RATE) + (0.01 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)
        soundfile.write(str(path), signal, RATE)
        sources[seconds] = path
    env = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "DEMOD_VOICE_CONVERT_MODEL_DIR": str(vc_model), **WINDOW}
    short, short_seconds, _ = peak_while_converting(sources[SHORT], references["ref.wav"], tmp_path / "short.wav", env)
    long, long_seconds, log = peak_while_converting(sources[LONG], references["ref.wav"], tmp_path / "long.wav", env)
    assert (round(short_seconds, 2), round(long_seconds, 2)) == (SHORT, LONG)
    assert short > 100_000, short  # the worker's peak was read (a loaded converter holds well over 100 MB)
    grown_mb = (long - short) / 1024
    print(f"peak while converting: {SHORT:g} s {short / 1024:.0f} MB, {LONG:g} s {long / 1024:.0f} MB")
    assert grown_mb < MARGIN_MB, f"converting {LONG:g} s took {grown_mb:.0f} MB more at peak than {SHORT:g} s: {log[-2000:]}"
