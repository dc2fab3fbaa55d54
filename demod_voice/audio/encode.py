"""Streamed audio containers for HTTP: chunks in, bytes out as soon as the codec gives them.

One encoder per response. ``wav`` and ``pcm`` need no library: a WAV header with unknown
lengths (the streaming convention: both sizes ``0xFFFFFFFF``; players read to the end) and
16-bit samples. ``flac``, ``mp3`` (LAME), ``opus`` (in Ogg, 48 kHz) and ``aac`` (ADTS) go
through PyAV, FFmpeg's codecs in-process: no program is started per request. The output is
written to a sink that cannot seek, so no muxer goes back to patch a header already sent.

``pcm`` is 24 kHz, as OpenAI defines it (clients play it without being told the rate);
every other format keeps the voice's own rate where the codec allows it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

from demod_voice.audio.chunks import to_int16
from demod_voice.errors import DependencyError, InputError

PCM_RATE = 24000
"""OpenAI's ``pcm``: raw 16-bit little-endian mono at 24 kHz."""


@dataclass(frozen=True)
class Format:
    """How one ``response_format`` is made."""

    media_type: str
    """The HTTP ``Content-Type``."""
    container: str = ""
    """PyAV's muxer name (empty: written here)."""
    codec: str = ""
    """PyAV's encoder name."""
    rates: tuple[int, ...] = ()
    """Sample rates the codec takes (empty: any)."""
    bit_rate: int = 0
    """Target bits per second of a lossy codec (0: the codec's default)."""
    options: tuple[tuple[str, str], ...] = ()
    """Muxer options."""


FORMATS: dict[str, Format] = {
    "wav": Format("audio/wav"),
    "pcm": Format("audio/pcm"),
    "flac": Format("audio/flac", "flac", "flac"),
    "mp3": Format("audio/mpeg", "mp3", "libmp3lame", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 64000),
    # Ogg pages of ~60 ms: the default (one page per second or 4 KB) holds back the first audio.
    "opus": Format("audio/ogg", "ogg", "libopus", (48000,), 32000, (("page_duration", "60000"),)),
    "aac": Format("audio/aac", "adts", "aac", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 64000),
}


def media_type(fmt: str) -> str:
    """The ``Content-Type`` of a format."""
    return FORMATS[fmt].media_type


class _Collect:
    """A write-only file for PyAV: no ``seek``, so muxers never rewrite what was already sent."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class StreamEncoder:
    """Encodes one stream of mono float chunks at one sample rate; ``feed`` and ``close`` return the bytes ready so far."""

    def __init__(self, fmt: str, sample_rate: int) -> None:
        if fmt not in FORMATS:
            raise InputError(f"unknown audio format '{fmt}'; use one of {', '.join(FORMATS)}")
        if sample_rate <= 0:
            raise InputError(f"sample rate must be positive, got {sample_rate}")
        self.format = fmt
        self.sample_rate = sample_rate
        """The input's rate."""
        self.media_type = FORMATS[fmt].media_type
        self.frames = 0
        """Input samples fed so far."""
        self._header_sent = False
        self._av: Optional[_AvStream] = None
        self._resampler: Any = None
        if fmt in ("flac", "mp3", "opus", "aac"):
            self._av = _AvStream(FORMATS[fmt], sample_rate)
        elif fmt == "pcm" and sample_rate != PCM_RATE:
            self._resampler = _Resampler(sample_rate, PCM_RATE)

    @property
    def output_rate(self) -> int:
        """The sample rate of the encoded audio."""
        if self._av is not None:
            return self._av.rate
        return PCM_RATE if self.format == "pcm" else self.sample_rate

    def feed(self, samples: Any) -> bytes:
        """Encode float32 mono samples in [-1, 1]; return the bytes the container has ready."""
        self.frames += len(samples)
        if self._av is not None:
            return self._av.feed(samples)
        if self._resampler is not None:
            return self._resampler.feed(samples)
        out = to_int16(samples).tobytes()
        if self.format == "wav" and not self._header_sent:
            self._header_sent = True
            return wav_header(self.sample_rate) + out
        return out

    def close(self) -> bytes:
        """Flush the codec; the last bytes of the stream (a WAV with no audio still gets its header)."""
        if self._av is not None:
            return self._av.close()
        if self._resampler is not None:
            return self._resampler.close()
        if self.format == "wav" and not self._header_sent:
            self._header_sent = True
            return wav_header(self.sample_rate)
        return b""


def wav_header(rate: int, data_bytes: Optional[int] = None) -> bytes:
    """A 44-byte PCM WAV header for 16-bit mono; ``data_bytes=None``: length unknown (streamed)."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", size))


UNSIGNED = {"fflags": "+bitexact"}
"""Muxer options that leave FFmpeg's name and version out of a file (its ``encoder`` tag, ``Lavf62.12.102``): every
MP3, Opus and FLAC answer told each client which FFmpeg build decodes the uploads it may send."""


def unsigned(stream: Any) -> None:
    """Leave FFmpeg's name and version out of what ``stream``'s encoder writes (AAC's ``Lavc62.28.102``; see
    :data:`UNSIGNED`)."""
    from av.codec.context import Flags

    stream.codec_context.flags |= Flags.bitexact


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise DependencyError("mp3, opus, aac and flac responses need PyAV: pip install 'demod-voice[serve]'") from None
    return av


class _AvStream:
    """A PyAV muxer and encoder writing into a :class:`_Collect`."""

    def __init__(self, fmt: Format, rate: int) -> None:
        self._avmod = _import_av()
        self.rate = rate if not fmt.rates or rate in fmt.rates else _nearest_rate(rate, fmt.rates)
        self._in_rate = rate
        self._sink = _Collect()
        self._container = self._avmod.open(self._sink, "w", format=fmt.container, options={**dict(fmt.options), **UNSIGNED})
        self._stream = self._container.add_stream(fmt.codec, rate=self.rate, layout="mono")
        unsigned(self._stream)
        if fmt.bit_rate:
            self._stream.bit_rate = fmt.bit_rate
        self._pts = 0

    def feed(self, samples: Any) -> bytes:
        import numpy as np

        if len(samples) == 0:
            return self._sink.take()
        block = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32).reshape(1, -1)
        frame = self._avmod.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = self._in_rate
        frame.pts = self._pts
        self._pts += block.shape[1]
        for packet in self._stream.encode(frame):  # PyAV converts format and rate and cuts codec frames
            self._container.mux(packet)
        return self._sink.take()

    def close(self) -> bytes:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.take()


class _Resampler:
    """Float mono at one rate -> 16-bit mono bytes at another, through FFmpeg's resampler."""

    def __init__(self, rate: int, target: int) -> None:
        av = _import_av()
        self._av = av
        self._rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=target)

    def _frames_bytes(self, frames: Any) -> bytes:
        return b"".join(bytes(frame.to_ndarray().astype("<i2").tobytes()) for frame in frames)

    def feed(self, samples: Any) -> bytes:
        import numpy as np

        if len(samples) == 0:
            return b""
        block = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32).reshape(1, -1)
        frame = self._av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = self._rate
        return self._frames_bytes(self._resampler.resample(frame))

    def close(self) -> bytes:
        return self._frames_bytes(self._resampler.resample(None))


def _nearest_rate(rate: int, rates: tuple[int, ...]) -> int:
    """The lowest rate the codec takes that is at least ``rate`` (no band lost), else its highest."""
    higher = [r for r in sorted(rates) if r >= rate]
    return higher[0] if higher else max(rates)
