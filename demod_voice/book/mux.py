"""Finished chapters into files, through PyAV (FFmpeg's own muxers and encoders): one ``.m4b``
(AAC, chapter marks with titles, title/author/cover) or one tagged file per chapter
(``.mp3``/``.opus``/``.flac``). Every file is written beside its target under a temporary name and
renamed into place once complete, so a failure or Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

from demod_voice.audio.encode import UNSIGNED, unsigned
from demod_voice.audio.writer import write_error
from demod_voice.errors import DependencyError
from demod_voice.paths import temp_beside

TRACK_FORMATS = {".mp3": ("mp3", "libmp3lame", 64000), ".opus": ("ogg", "libopus", 32000), ".flac": ("flac", "flac", 0)}
"""Per-chapter formats: extension -> (container, encoder, bit rate)."""
M4B_FORMAT = ("mp4", "aac", 64000)
"""The m4b's container, encoder and bit rate."""
HEADROOM = {".m4b": 1.2, ".opus": 1.0, ".mp3": 0.5, ".flac": 0.0}
"""dB kept under the true-peak ceiling per output, for the lossy codecs' overshoot of the peaks they are given. Measured on
a book of the released joe voice mastered 0.5 dB under a -1 dBTP ceiling: its m4b (AAC, 64 kb/s) decoded at -0.8 dBTP,
its opus files at -1.0, its mp3 files at -1.6. Where a chapter overshoots more (a buzz: 2 dB), :func:`decoded` tells."""


@dataclass(frozen=True)
class Tags:
    """What the files say about the book."""

    title: str
    author: str = ""
    language: str = ""
    cover: Optional[bytes] = None
    cover_type: str = ""


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise DependencyError("writing audiobooks needs PyAV; install it with: pip install 'demod-voice[book]'") from None
    return av


def write_m4b(path: Path, lengths: list[int], chapters: Iterable[Any], titles: list[str], rate: int, tags: Tags,
              bit_rate: int = M4B_FORMAT[2]) -> None:
    """One AAC file with a chapter mark per chapter (titles as given) and the book's tags and cover.
    ``chapters`` yields each chapter's samples in turn (``lengths`` long), so one chapter is in memory at a time."""
    av = _av()
    starts, total = [], 0
    for length in lengths:
        starts.append(total)
        total += length
    marks = [{"id": n + 1, "start": round(start * 1000 / rate), "end": round((starts[n + 1] if n + 1 < len(starts) else total) * 1000 / rate),
              "time_base": Fraction(1, 1000), "metadata": {"title": title}} for n, (start, title) in enumerate(zip(starts, titles, strict=True))]
    # mp4 rather than FFmpeg's ipod muxer: the latter refuses the cover's attached picture stream.
    with _written(path) as tmp, av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart", **UNSIGNED}) as out:
        stream = _audio_stream(out, M4B_FORMAT[1], rate, bit_rate)
        _metadata(out, tags)
        out.metadata["genre"] = "Audiobook"
        out.set_chapters(marks)
        cover = _cover_stream(out, tags)
        for samples in chapters:
            _encode(out, stream, samples, rate)
        _flush(out, stream)
        if cover is not None:
            _cover_packet(av, out, cover, tags.cover)


def write_track(path: Path, samples: Any, rate: int, tags: Tags, title: str, number: int, count: int) -> None:
    """One chapter as a tagged ``.mp3``/``.opus``/``.flac`` file, with the book's cover (players showed none)."""
    av = _av()
    container, codec, bit_rate = TRACK_FORMATS[path.suffix.lower()]
    with _written(path) as tmp, av.open(str(tmp), "w", format=container, options=UNSIGNED) as out:
        stream = _audio_stream(out, codec, rate, bit_rate)
        _metadata(out, tags)
        out.metadata.update({"title": title, "track": f"{number}/{count}", "genre": "Audiobook"})
        if container == "ogg":  # Ogg holds no picture stream: Vorbis comments carry it, as FLAC's picture block
            picture = _picture_block(tags)
            if picture:
                out.metadata["METADATA_BLOCK_PICTURE"] = picture
        cover = None if container == "ogg" else _cover_stream(out, tags)
        if cover is not None:  # first: the MP3 and FLAC muxers hold every audio packet back until the picture has come
            _cover_packet(av, out, cover, tags.cover)
        _encode(out, stream, samples, rate)
        _flush(out, stream)


def _audio_stream(out: Any, codec: str, rate: int, bit_rate: Optional[int]) -> Any:
    """The one mono audio stream of a book's file, set up alike wherever one is written (an m4b, a track, and the
    in-memory copy :func:`decoded` measures the peak of: it was encoded without the bit-exact flag the files have)."""
    stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout="mono")
    unsigned(stream)
    if bit_rate:
        stream.bit_rate = bit_rate
    return stream


def decoded(samples: Any, rate: int, suffix: str) -> Iterator[Any]:
    """``samples`` as a player decodes them from a file of ``suffix`` (``.m4b`` or a track format), encoded in memory as
    that file is, one decoded frame at a time: what its true peak is once the encoder has had them."""
    import numpy as np

    av = _av()
    container, codec, bit_rate = M4B_FORMAT if suffix == ".m4b" else TRACK_FORMATS[suffix]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container, options=UNSIGNED) as out:
        stream = _audio_stream(out, codec, rate, bit_rate)
        _encode(out, stream, samples, rate)
        _flush(out, stream)
    buffer.seek(0)
    with av.open(buffer, "r") as source:
        for frame in source.decode(audio=0):
            x = frame.to_ndarray().reshape(-1)
            yield x / 32768.0 if np.issubdtype(x.dtype, np.integer) else x


def track_name(number: int, title: str, suffix: str) -> str:
    """``03 The Storm.mp3``: the number keeps the order; the title loses characters file systems refuse (and the double
    space they left: "Chapter One: Été" was "01 Chapter One  Été.mp3")."""
    safe = " ".join(re.sub(r"[\x00-\x1f/\\:*?\"<>|]+", " ", title).split()).strip(" .") or "Chapter"  # "One: Été": "One Été"
    return f"{number:02d} {safe[:80]}{suffix}"


def _metadata(out: Any, tags: Tags) -> None:
    out.metadata["title"] = tags.title
    out.metadata["album"] = tags.title
    if tags.author:
        out.metadata["artist"] = tags.author
        out.metadata["album_artist"] = tags.author
    if tags.language:
        out.metadata["language"] = tags.language


def _encode(out: Any, stream: Any, samples: Any, rate: int) -> None:
    import numpy as np

    av = _av()
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate) if stream.rate != rate else None
    step = 1 << 16
    for start in range(0, len(samples), step):  # clipped a frame at a time: a copy of a long chapter took 4 bytes a sample
        x = np.ascontiguousarray(np.clip(np.asarray(samples[start: start + step], np.float32), -1.0, 1.0))
        frame = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
        frame.sample_rate = rate
        for piece in (resampler.resample(frame) if resampler else [frame]):
            for packet in stream.encode(piece):
                out.mux(packet)
    if resampler is not None:
        for piece in resampler.resample(None):
            for packet in stream.encode(piece):
                out.mux(packet)


def _flush(out: Any, stream: Any) -> None:
    for packet in stream.encode(None):
        out.mux(packet)


def _cover_stream(out: Any, tags: Tags) -> Any:
    if not tags.cover or tags.cover_type not in ("image/jpeg", "image/png"):
        return None
    av = _av()
    size = _image_size(tags.cover, tags.cover_type)
    if size is None:
        return None
    stream = out.add_mux_stream("mjpeg" if tags.cover_type == "image/jpeg" else "png", width=size[0], height=size[1])
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _picture_block(tags: Tags) -> str:
    """The cover as a FLAC picture block (front cover) in base64, the ``METADATA_BLOCK_PICTURE`` comment players read
    in Ogg files; empty without a cover whose size can be read."""
    size = _image_size(tags.cover, tags.cover_type) if tags.cover and tags.cover_type in ("image/jpeg", "image/png") else None
    if size is None or tags.cover is None:
        return ""
    mime = tags.cover_type.encode("ascii")
    # type 3 (front cover), its MIME type, no description, width, height, colour depth, no palette, the image
    block = struct.pack(">II", 3, len(mime)) + mime + struct.pack(">IIIIII", 0, size[0], size[1], 24, 0, len(tags.cover))
    return base64.b64encode(block + tags.cover).decode("ascii")


def _cover_packet(av: Any, out: Any, stream: Any, data: bytes) -> None:
    packet = av.Packet(data)
    packet.stream = stream
    packet.pts = packet.dts = 0
    packet.is_keyframe = True
    out.mux(packet)


def _image_size(data: bytes, kind: str) -> Optional[tuple[int, int]]:
    """Width and height read from the image's own header (PNG IHDR, JPEG SOFn); ``None`` if unreadable."""
    if kind == "image/png":
        if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    index = 2
    while index + 9 < len(data) and data[:2] == b"\xff\xd8":
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2: index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[index + 7: index + 9], "big"), int.from_bytes(data[index + 5: index + 7], "big")
        index += 2 + length
    return None


@contextlib.contextmanager
def _written(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write: synced and renamed over ``path`` when the block ends well (after the
    container inside it is closed), removed when it does not; an :class:`OSError` becomes one line naming ``path``."""
    tmp = temp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise


def read_marks(path: Path) -> tuple[list[tuple[float, str]], Tags]:
    """A file's chapter marks (start in seconds, title), in order, and its tags and cover (PNG or JPEG)."""
    av = _av()
    with av.open(str(path)) as container:
        marks = sorted((float(c["start"] * c["time_base"]), c.get("metadata", {}).get("title", "")) for c in container.chapters())
        meta = container.metadata
        cover, cover_type = None, ""
        for stream in container.streams.video:
            kind = {"mjpeg": "image/jpeg", "png": "image/png"}.get(stream.codec_context.name, "")
            if kind and stream.disposition & av.stream.Disposition.attached_pic:
                packet = next(iter(container.demux(stream)), None)
                cover, cover_type = (bytes(packet), kind) if packet is not None and packet.size else (None, "")
                break
    tags = Tags(meta.get("title") or meta.get("album") or "", meta.get("artist") or meta.get("album_artist") or "",
                meta.get("language") or "", cover, cover_type)
    return marks, tags


def decode(path: Path) -> tuple[Any, int]:
    """A file's audio as mono float32 samples and their rate (for checks and tests)."""
    import numpy as np

    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        parts = [frame.to_ndarray().reshape(-1) if frame.format.is_planar else frame.to_ndarray().reshape(-1)
                 for frame in container.decode(stream)]
        rate = stream.rate
    return (np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)), rate
