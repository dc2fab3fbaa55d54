from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from demod_voice.audio.chunks import AudioChunk
from demod_voice.audio.writer import FileSink, StdoutSink, check_output
from demod_voice.errors import InputError


def tone(seconds=0.1, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return AudioChunk((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


@pytest.mark.parametrize("suffix, fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_extension_picks_format_and_rename_is_atomic(tmp_path, suffix, fmt):
    target = tmp_path / f"out{suffix}"
    sink = FileSink(target)
    sink.write(tone())
    sink.write(tone())
    assert not target.exists()  # invisible until committed
    assert len(list(tmp_path.iterdir())) == 1
    assert sink.commit() == pytest.approx(0.2)
    info = soundfile.info(str(target))
    assert info.format == fmt and info.samplerate == 16000 and info.frames == 3200
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_abort_leaves_nothing(tmp_path):
    sink = FileSink(tmp_path / "out.wav")
    sink.write(tone())
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_no_audio_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no audio"):
        FileSink(tmp_path / "out.wav").commit()


def test_stdout_sink_writes_pcm16_and_is_retryable_only_before_first_byte():
    stream = io.BytesIO()
    sink = StdoutSink(stream)
    assert sink.retryable
    sink.write(tone(0.05))
    assert not sink.retryable
    data = np.frombuffer(stream.getvalue(), dtype="<i2")
    assert len(data) == 800 and np.abs(data).max() == pytest.approx(0.5 * 32767, rel=0.01)


def test_check_output(tmp_path):
    assert check_output(str(tmp_path / "a.flac")) == str(tmp_path / "a.flac")
    with pytest.raises(InputError, match="format"):
        check_output(str(tmp_path / "a.txt"))
    with pytest.raises(InputError, match="does not exist"):
        check_output(str(tmp_path / "missing" / "a.wav"))
    with pytest.raises(InputError, match="is a directory"):
        check_output(str(tmp_path))
    with pytest.raises(InputError, match="terminal"):
        check_output("-", stdout=_Tty())


def test_an_output_in_a_format_not_written_says_so_and_how_to_get_it(tmp_path):
    """``-o hello.m4a`` (a phone's format) was "cannot tell the audio format of 'hello.m4a'": it can tell; it does not write it."""
    with pytest.raises(InputError) as refused:
        check_output(str(tmp_path / "my hello.m4a"))
    wav, m4a = tmp_path / "my hello.wav", tmp_path / "my hello.m4a"
    assert str(refused.value) == (f"m4a is not a format written here: use a name ending in .wav, .flac, .ogg, .mp3, .opus (then, for an "
                                  f"m4a: ffmpeg -i '{wav}' '{m4a}'), or '-' for raw PCM on stdout")


def test_an_opus_output_is_written_at_48_khz_from_any_voice_rate(tmp_path):
    """``-o line.opus`` (and a batch row's ``line.opus``, the smallest file for 50,000 rows) was refused as "not a format
    written here" though the server sends opus: libsndfile's encoder takes no 22,050 Hz voice, so PyAV resamples it."""
    av = pytest.importorskip("av")
    target = tmp_path / "line.opus"
    assert check_output(str(target)) == str(target)
    sink = FileSink(target)
    sink.write(tone(0.5, 22050))
    sink.write(tone(0.5, 22050))
    assert not target.exists()
    assert sink.commit() == pytest.approx(1.0)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    with av.open(str(target)) as box:
        stream = box.streams.audio[0]
        assert (box.format.name, stream.codec_context.name, stream.rate) == ("ogg", "opus", 48000)
        decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in box.decode(stream)])
    assert len(decoded) / 48000 == pytest.approx(1.0, abs=0.03)
    assert np.abs(decoded).max() == pytest.approx(0.5, abs=0.1)
    aborted = FileSink(tmp_path / "gone.opus")
    aborted.write(tone(0.1, 22050))
    aborted.abort()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


class _Tty(io.BytesIO):
    def isatty(self):
        return True
