"""Any recording FFmpeg reads (through PyAV) made a plain 16-bit mono WAV: the server's uploads (in a confined child,
:mod:`demod_voice.serve.uploads`) and the command line's references and sources that libsndfile cannot read (a
phone's ``.m4a``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

MAX_RATE = 48000


class TooLong(Exception):
    """The recording passed the allowed length while it was decoded (whatever its header claims)."""


class NoSound(ValueError):
    """The file holds no audio stream: a video saved or exported without its sound."""


NO_SOUND = "has no sound track (a video saved or exported without its sound): export it again with its sound"
"""What a file with no audio stream is told (it was "not audio that can be read ...; use wav, flac, ogg, mp3 or m4a")."""


PLAYLISTS = frozenset({"hls", "dash", "concat"})
"""FFmpeg's readers of files that name other files to play, by any path (an HLS playlist's segments): a client's upload
decoded as one played the server's own files back to it."""


A_PLAYLIST = "it is a playlist, which names other files to play, not a recording"


def _starts_a_playlist(source: str) -> bool:
    """Whether ``source`` begins as an HLS playlist (FFmpeg reads one only from its first byte)."""
    with open(source, "rb") as handle:
        return handle.read(7) == b"#EXTM3U"


def decode_to_wav(source: str, target: str, max_seconds: float, max_rate: int = MAX_RATE, own_audio_only: bool = False) -> float:
    """Decode ``source``'s first audio stream into a WAV at ``target`` (mono, 16-bit, its own rate up to ``max_rate``);
    its seconds. :class:`TooLong` past ``max_seconds``; PyAV's errors (or :class:`ValueError`) for what is not audio.
    Channels that cancel out in the mix are written from the loudest of them instead (:func:`cancelling`).
    ``own_audio_only`` (a client's upload): a playlist (:data:`PLAYLISTS`) is a :class:`ValueError`, not played."""
    # refused unopened where it can be: FFmpeg first probes a segment the playlist names, and a refusal that came only
    # after that would differ with whether the file exists
    if own_audio_only and _starts_a_playlist(source):
        raise ValueError(A_PLAYLIST)
    frames, rate, loudest = _decode(source, target, max_seconds, max_rate, None, own_audio_only)
    if loudest is not None:
        frames, rate, _ = _decode(source, target, max_seconds, max_rate, loudest, own_audio_only)
    if frames == 0:
        raise ValueError("it holds no audio")
    return frames / rate


def _decode(source: str, target: str, max_seconds: float, max_rate: int, channel: Optional[int] = None,
            own_audio_only: bool = False) -> tuple[int, int, Optional[int]]:
    """(frames written, rate, the channel to take instead of the mix when the channels cancel out): the mix of all the
    channels when ``channel`` is ``None``, else that one channel."""
    import wave

    import av

    with av.open(source, metadata_errors="ignore") as container:
        if own_audio_only and PLAYLISTS & set(container.format.name.split(",")):
            raise ValueError(A_PLAYLIST)
        if not container.streams.audio:
            raise NoSound("no audio stream in it")
        stream = container.streams.audio[0]
        rate = min(int(stream.rate or stream.codec_context.sample_rate or 0) or max_rate, max_rate)
        resampler = av.AudioResampler(format="s16", layout="mono" if channel is None else stream.codec_context.layout, rate=rate)
        levels = Levels()
        frames = 0
        with wave.open(target, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            for frame in container.decode(stream):
                if channel is None:
                    levels.add(frame)
                for piece in resampler.resample(frame):
                    frames = _write(out, piece, channel, frames, max_seconds * rate)
            for piece in resampler.resample(None):
                frames = _write(out, piece, channel, frames, float("inf"))
    return frames, rate, levels.cancelling() if channel is None else None


def _write(out: Any, piece: Any, channel: Optional[int], frames: int, limit: float) -> int:
    """Write one resampled piece (its ``channel``, or all of it when mono) to ``out``; the frames written so far."""
    data = piece.to_ndarray()
    if channel is not None:
        data = data.reshape(-1, piece.layout.nb_channels)[:, channel]
    frames += data.size
    if frames > limit:
        raise TooLong()
    out.writeframes(data.astype("<i2").tobytes())
    return frames


CANCELLED = 0.25
"""A mix of the channels below this share of its loudest channel's level (-12 dB) has them cancelling out: one channel
with its polarity inverted (a miswired microphone or interface) made a recording that plays clearly "silent", as its
channels' mean is. Two channels unlike each other mix at about -3 dB, one silent channel at -6 dB."""


def cancelling(mix_energy: float, channel_energies: Any) -> Optional[int]:
    """The loudest channel when the channels (two or more) cancel out in their mix (energies: sums of squares), else ``None``."""
    energies = [float(e) for e in channel_energies]
    if len(energies) < 2 or max(energies) <= 0:
        return None
    loudest = energies.index(max(energies))
    return loudest if mix_energy < CANCELLED ** 2 * energies[loudest] else None


def cancelling_in(audio: Any) -> Optional[int]:
    """:func:`cancelling` of samples of shape (frames, channels)."""
    import numpy as np

    wide = audio.astype(np.float64)
    return cancelling(float(np.square(wide.mean(axis=1)).sum()), np.square(wide).sum(axis=0))


def to_mono(audio: Any) -> Any:
    """Samples of shape (frames, channels) as one channel: their mean, or the loudest channel when they cancel out."""
    if audio.shape[1] == 1:
        return audio[:, 0]
    loudest = cancelling_in(audio)
    return audio.mean(axis=1) if loudest is None else audio[:, loudest]


class Levels:
    """The energies of a decoded stream's channels and of their mix, frame by frame (as the decoder gives them: the
    measure is a ratio, so their sample format does not matter)."""

    def __init__(self) -> None:
        self.mix = 0.0
        self.channels: Any = None

    def add(self, frame: Any) -> None:
        import numpy as np

        count = frame.layout.nb_channels
        if count < 2 or frame.format.name.startswith("u8"):  # one channel, or 8-bit samples centred on 128: nothing to weigh
            return
        data = frame.to_ndarray().astype(np.float64)
        data = data if frame.format.is_planar else data.reshape(-1, count).T
        energies = np.square(data).sum(axis=1)
        if self.channels is None or len(self.channels) != count:  # a stream whose layout changes is weighed from there on
            self.mix, self.channels = 0.0, np.zeros(count)
        self.channels += energies
        self.mix += float(np.square(data.mean(axis=0)).sum())

    def cancelling(self) -> Optional[int]:
        """:func:`cancelling` of what was added."""
        return None if self.channels is None else cancelling(self.mix, self.channels)


def without_paths(message: str, *paths: Path) -> str:
    """A decoder's message with the files' names taken out (FFmpeg quotes the path it failed on)."""
    for path in paths:
        for form in (f"'{path}'", f'"{path}"', str(path), str(path.parent)):
            message = message.replace(form, "the file")
    return message


def plain_error(err: Exception, *paths: Path) -> str:
    """A decoder's failure in a person's words: what is wrong with the file, not the decoder's class, errno or path."""
    text = without_paths(str(err), *paths)
    if type(err).__name__ == "InvalidDataError" or "Invalid data found" in text:
        if paths and _is_mp4(paths[0]):
            # A phone's recorder writes an .m4a's index (its moov box) when it stops: one sent before that, or cut short,
            # reads as "not a format FFmpeg recognises", which sent app developers looking for a codec problem.
            return "an MP4/M4A file without its index: the recording was not finished (stop the recorder before sending it) " \
                   "or the file was cut short"
        return "not a format FFmpeg recognises"
    if "End of file" in text:  # "End of file: 'the file'": a header of a format with nothing after it
        return "it ends before any audio"
    return re.sub(r"\[Errno -?\d+\]\s*", "", text).strip()[:200] or type(err).__name__


def looks_like_audio(path: Path) -> bool:
    """Whether ``path`` starts as a recording does (wav, flac, ogg, WebM, mp3, ADTS aac, an MP4/M4A), by its first bytes
    alone: nothing is decoded (the server asks this of uploads in its own process)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    frame_sync = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # mp3 and ADTS frames
    return head[:4] in (b"RIFF", b"fLaC", b"OggS", b"\x1aE\xdf\xa3") or head[:3] == b"ID3" or head[4:8] == b"ftyp" or frame_sync


def _is_mp4(path: Path) -> bool:
    """Whether ``path`` starts as an MP4 family file does (an ``ftyp`` box)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(12)[4:8] == b"ftyp"
    except OSError:
        return False
