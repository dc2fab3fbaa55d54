"""A reader of an upload (the child decoding it) outlives a stop signal sent to every process of the service."""

from __future__ import annotations

import os
import signal
import threading
import time
import wave

import numpy as np
import pytest

pytest.importorskip("av")

from demod_voice.serve.uploads import decode_reference  # noqa: E402


def _readers() -> list[int]:
    """This process's children decoding an upload."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline") as cmdline:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                if parent == os.getpid() and "uploads import _child" in cmdline.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _ignores(pid: int, number: int) -> bool:
    """Whether process ``pid`` ignores signal ``number`` (its ``SigIgn`` mask)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            mask = next(line for line in status if line.startswith("SigIgn:")).split()[1]
    except (OSError, StopIteration):
        return False
    return bool(int(mask, 16) >> (number - 1) & 1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_an_upload_being_decoded_is_decoded_whole_when_the_service_is_stopped(tmp_path, sig):
    """``systemctl stop`` (systemd's default KillMode=control-group) sends SIGTERM to the server and to every process of
    it at once: the child decoding an enrollment's recording died on it, and the request the server was draining was
    answered 400 "'alice.wav' could not be decoded as audio (the decoder failed)", the client's file blamed."""
    rate, seconds = 48000, 120
    source, target = tmp_path / "alice.wav", tmp_path / "out.wav"
    tone = (0.3 * np.sin(2 * np.pi * 180 * np.arange(rate * seconds) / rate) * 32767).astype("<i2")
    with wave.open(str(source), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone, 2).tobytes())
    answer: list = []

    def decode():
        try:
            answer.append(decode_reference(source, target, 600.0, "alice.wav"))
        except Exception as err:  # noqa: BLE001 - the answer the server would have turned into a 400
            answer.append(err)

    thread = threading.Thread(target=decode)
    thread.start()
    deadline = time.monotonic() + 60
    while not (readers := _readers()) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert readers, answer
    # signalled once it ignores the signal or has begun writing (an old reader never ignores it): never at its start-up
    while thread.is_alive() and not (_ignores(readers[0], sig) or target.exists()):
        time.sleep(0.002)
    assert thread.is_alive(), "the reader finished before it could be signalled"
    os.kill(readers[0], sig)
    thread.join(120)
    assert answer == [pytest.approx(seconds)], answer
