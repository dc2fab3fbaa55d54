"""The checks on a recording to convert (``convert`` and ``POST /v1/audio/conversions``' source), before any model runs."""

from __future__ import annotations

import numpy as np
import soundfile
from conftest import voiced_signal

from demod_voice.backends.openvoice import request
from demod_voice.backends.openvoice.request import SAMPLE_RATE, check_source


def test_a_source_above_the_converters_rate_is_told_the_rate_its_conversion_comes_at(tmp_path, monkeypatch):
    """A 48 kHz stereo take from a camera came back at 22.05 kHz without a word: a user dropping it into a 48 kHz project
    took the other rate for a fault. It is said, with why, and how to match the project."""
    monkeypatch.setattr(request, "_RATES_TOLD", set())
    path = tmp_path / "take 1.wav"
    soundfile.write(str(path), voiced_signal(3.0, 48000, channels=2), 48000, subtype="PCM_24")
    _, warnings = check_source(str(path), 600.0, str(tmp_path / "take 1 as Ann.wav"))
    assert warnings == [f"source take 1.wav is sampled at 48000 Hz; its conversion comes out at {SAMPLE_RATE} Hz, the "
                        f"converter's rate (it makes nothing above {SAMPLE_RATE // 2} Hz): resample the result if a 48000 Hz "
                        "project needs it (ffmpeg -i 'take 1 as Ann.wav' -ar 48000 'take 1 as Ann-48k.wav')"], warnings
    assert check_source(str(path), 600.0, str(tmp_path / "again.wav"))[1] == []  # said once: a batch of takes hears it once
    assert check_source(str(path), 600.0, "-")[1] == []  # a stream's reader is told its rate


def test_a_source_at_the_converters_rate_passes_without_a_word(tmp_path):
    path = tmp_path / "take.flac"
    soundfile.write(str(path), voiced_signal(3.0, SAMPLE_RATE) + 0.001 * np.ones(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert check_source(str(path), 600.0)[1] == []
