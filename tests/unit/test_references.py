"""The reference checks on the recordings people really have (phone memos with silence first, quiet ones)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import soundfile
from conftest import voiced_signal

from demod_voice.errors import InputError
from demod_voice.voices.references import check_reference

RATE = 16000


def recording(tmp_path, name, *parts):
    path = tmp_path / name
    soundfile.write(str(path), np.concatenate(parts).astype(np.float32), RATE)
    return str(path)


def silence(seconds):
    return np.zeros(int(seconds * RATE), np.float32)


def test_a_clear_recording_passes_without_a_word(tmp_path):
    _, warnings = check_reference(recording(tmp_path, "clear.wav", silence(0.5), voiced_signal(8.0, RATE)))
    assert warnings == []


def test_silence_before_the_speech_is_warned_about_with_the_cut_that_removes_it(tmp_path):
    """A phone memo with 20 s of silence before anyone spoke was cloned without a word: XTTS learns the voice from a
    recording's first seconds (the generated model's first 10 s: two memos with different voices after the silence gave
    identical profiles)."""
    _, warnings = check_reference(recording(tmp_path, "Mémo vocal 1.wav", silence(20.0), voiced_signal(8.0, RATE)))
    assert len(warnings) == 1, warnings
    assert "starts with 20.0 s of silence" in warnings[0]
    assert "ffmpeg -ss 19.5 -i 'Mémo vocal 1.wav' ref.wav" in warnings[0]


def test_a_recording_silent_for_all_that_xtts_hears_is_refused(tmp_path):
    with pytest.raises(InputError) as refused:
        check_reference(recording(tmp_path, "memo.wav", silence(35.0), voiced_signal(8.0, RATE)))
    message = str(refused.value)
    assert "silent for its first 35 s" in message and "ffmpeg -ss 34.5 -i memo.wav ref.wav" in message
    assert "\n" not in message


def test_a_very_quiet_recording_is_warned_about(tmp_path):
    _, warnings = check_reference(recording(tmp_path, "quiet.wav", voiced_signal(8.0, RATE, level=0.002)))
    assert len(warnings) == 1 and "very quiet (peak -54 dBFS)" in warnings[0], warnings
    assert "record closer to the microphone" in warnings[0]


def test_the_cut_for_a_too_long_recording_works_on_a_name_with_spaces(tmp_path):
    """The advice was 'ffmpeg -t 30 -i Mémo vocal.wav ref.wav': pasted into a shell, three arguments and a failure."""
    path = recording(tmp_path, "Mémo vocal.wav", voiced_signal(12.0, RATE))
    with pytest.raises(InputError) as refused:
        check_reference(path, 10.0)
    assert "ffmpeg -t 30 -i 'Mémo vocal.wav' ref.wav" in str(refused.value)


@pytest.mark.parametrize("name", ["memo.m4a", "take.wav"])
def test_an_empty_file_is_called_empty(tmp_path, name):
    """A 0-byte memo.m4a (a phone's upload cut off) was 'not audio that can be read (not a format FFmpeg recognises)'."""
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=r"is an empty file \(0 bytes\).*copy it again"):
        check_reference(str(tmp_path / name))


def test_music_or_noise_under_the_voice_is_warned_about_on_the_command_line_too(tmp_path):
    """A song given as the reference cloned without a word on the command line; the page called the same file noisy."""
    t = np.arange(10 * RATE) / RATE
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) + 0.02 * np.random.default_rng(0).standard_normal(len(t))
    _, warnings = check_reference(recording(tmp_path, "song.wav", chord))
    assert len(warnings) == 1 and "reference song.wav sounds noisy" in warnings[0], warnings


@pytest.mark.parametrize("name", ["alice.voice.npz", "Zoë's voice.npz"])
def test_an_exported_voice_given_as_the_reference_says_how_to_use_it(tmp_path, name):
    """A friend's exported voice given where a recording goes was 'not a format FFmpeg recognises; use wav, flac, ...'."""
    from demod_voice.voices.profiles import write_profile

    write_profile(tmp_path / name, "alice", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"), np.zeros((1, 8, 1), "float32"))
    with pytest.raises(InputError, match=r"is a saved voice .*not a recording: install it \(demod-voice voices import .*\), "
                                         r"then use --voice alice$") as caught:
        check_reference(str(tmp_path / name))
    assert f"import {shlex.quote(name)})" in str(caught.value)  # one word for a shell, spaces and quotes and all
