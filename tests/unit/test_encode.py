"""Streamed encoders: each format decodes back (through FFmpeg via PyAV, or soundfile) to the audio fed in."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest

from demod_voice.audio.encode import FORMATS, PCM_RATE, StreamEncoder, wav_header
from demod_voice.errors import InputError

av = pytest.importorskip("av")


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def encode(fmt: str, rate: int, chunks: list[np.ndarray]) -> tuple[bytes, list[int], StreamEncoder]:
    encoder = StreamEncoder(fmt, rate)
    out, sizes = [], []
    for chunk in chunks:
        out.append(encoder.feed(chunk))
        sizes.append(len(out[-1]))
    out.append(encoder.close())
    return b"".join(out), sizes, encoder


def decode(data: bytes) -> tuple[np.ndarray, int, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().astype(np.float32).reshape(-1) for frame in container.decode(stream)]
        name = stream.codec_context.name
        rate = stream.rate
    samples = np.concatenate(frames)
    if samples.dtype != np.float32 or np.abs(samples).max() > 2:
        samples = samples / 32768.0
    return samples, rate, name


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize("fmt,codec", [("mp3", "mp3"), ("opus", "opus"), ("aac", "aac"), ("flac", "flac"), ("wav", "pcm_s16le")])
@pytest.mark.parametrize("rate", [22050, 24000])
def test_every_format_decodes_to_the_same_tone(fmt, codec, rate):
    audio = tone(1.5, rate)
    data, sizes, encoder = encode(fmt, rate, np.array_split(audio, 7))
    samples, out_rate, name = decode(data)
    assert name.startswith(codec[:3])
    assert out_rate == encoder.output_rate
    assert abs(len(samples) / out_rate - 1.5) < 0.1, len(samples) / out_rate
    assert abs(dominant_hz(samples, out_rate) - 440) < 5
    assert np.sqrt(np.mean(samples**2)) > 0.2  # not silence: a 0.4 sine has RMS 0.28
    assert sum(sizes[:3]) > 0, "nothing came out before the end: not streamed"


def test_opus_is_48k_ogg_and_pcm_is_24k():
    assert StreamEncoder("opus", 22050).output_rate == 48000
    data, _, _ = encode("pcm", 22050, [tone(1.0, 22050)])
    assert abs(len(data) / 2 - PCM_RATE) < 200
    samples = np.frombuffer(data, "<i2") / 32768.0
    assert abs(dominant_hz(samples, PCM_RATE) - 440) < 5


def test_pcm_at_24k_is_the_samples_themselves():
    audio = tone(0.2, 24000)
    data, _, _ = encode("pcm", 24000, [audio])
    assert np.array_equal(np.frombuffer(data, "<i2"), (np.clip(audio, -1, 1) * 32767).astype("<i2"))


def test_wav_header_says_unknown_length_and_soundfile_reads_it():
    import soundfile

    data, sizes, _ = encode("wav", 16000, [tone(0.5, 16000), tone(0.5, 16000)])
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF
    assert sizes[0] == 44 + 8000 * 2
    samples, rate = soundfile.read(io.BytesIO(wav_header(16000, len(data) - 44) + data[44:]))
    assert rate == 16000 and len(samples) == 16000


def test_empty_stream_still_makes_a_valid_file():
    data, _, _ = encode("wav", 22050, [])
    assert len(data) == 44
    data, _, _ = encode("mp3", 22050, [np.zeros(0, np.float32)])
    assert isinstance(data, bytes)


def test_unknown_format_is_refused():
    with pytest.raises(InputError, match="unknown audio format 'ogg'"):
        StreamEncoder("ogg", 22050)
    assert set(FORMATS) == {"wav", "pcm", "flac", "mp3", "opus", "aac"}


FFMPEG_VERSION = re.compile(rb"Lav[fc]\d+\.\d+\.\d+")
"""FFmpeg's name and version as its muxers (Lavf62.12.102) and its AAC encoder (Lavc62.28.102) sign a file."""


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
def test_an_answer_does_not_say_which_ffmpeg_the_server_runs(fmt):
    """Every MP3, Opus, AAC and FLAC answer carried FFmpeg's version (an encoder tag, a signature in the AAC stream): any
    client with a speak key learnt the exact build that decodes the uploads it may send. The file still decodes."""
    data, _, _ = encode(fmt, 24000, [tone(0.5, 24000)])
    assert not FFMPEG_VERSION.search(data), FFMPEG_VERSION.search(data)
    assert len(decode(data)[0]) > 0


@pytest.mark.parametrize("suffix", [".m4b", ".mp3", ".opus", ".flac"])
def test_a_books_files_do_not_say_which_ffmpeg_the_server_runs(suffix, tmp_path):
    """The same for a book's files (an m4b, a chapter's track), which a client of the server's books API downloads."""
    from demod_voice.book.mux import Tags, write_m4b, write_track

    samples, path, tags = tone(0.5, 24000), tmp_path / f"book{suffix}", Tags("A Book", "Someone", "en")
    if suffix == ".m4b":
        write_m4b(path, [len(samples)], iter([samples]), ["One"], 24000, tags)
    else:
        write_track(path, samples, 24000, tags, "One", 1, 1)
    data = path.read_bytes()
    assert not FFMPEG_VERSION.search(data), FFMPEG_VERSION.search(data)
    assert len(decode(data)[0]) > 0
