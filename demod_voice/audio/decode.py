"""Any recording FFmpeg reads (through PyAV) made a plain 16-bit mono WAV: the server's uploads (in a confined child,
:mod:`demod_voice.serve.uploads`) and the command line's references and sources that libsndfile cannot read (a
phone's ``.m4a``)."""

from __future__ import annotations

import re
from pathlib import Path

MAX_RATE = 48000


class TooLong(Exception):
    """The recording passed the allowed length while it was decoded (whatever its header claims)."""


def decode_to_wav(source: str, target: str, max_seconds: float, max_rate: int = MAX_RATE) -> float:
    """Decode ``source``'s first audio stream into a WAV at ``target`` (mono, 16-bit, its own rate up to ``max_rate``);
    its seconds. :class:`TooLong` past ``max_seconds``; PyAV's errors (or :class:`ValueError`) for what is not audio."""
    import wave

    import av

    with av.open(source, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream in it")
        stream = container.streams.audio[0]
        rate = min(int(stream.rate or stream.codec_context.sample_rate or 0) or max_rate, max_rate)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        frames = 0
        with wave.open(target, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            for frame in container.decode(stream):
                for piece in resampler.resample(frame):
                    data = piece.to_ndarray().astype("<i2").tobytes()
                    frames += len(data) // 2
                    if frames > max_seconds * rate:
                        raise TooLong()
                    out.writeframes(data)
            for piece in resampler.resample(None):
                data = piece.to_ndarray().astype("<i2").tobytes()
                frames += len(data) // 2
                out.writeframes(data)
    if frames == 0:
        raise ValueError("it holds no audio")
    return frames / rate


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
