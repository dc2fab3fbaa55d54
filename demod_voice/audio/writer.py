"""The one audio writer: every path (file, stdout) consumes the same chunks the same way.

Files are written to a hidden temporary file beside the target and renamed into place
on success, so an interrupted or failed job never leaves a half-written output."""

from __future__ import annotations

import errno
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, BinaryIO, Optional, Protocol

from demod_voice.audio.chunks import AudioChunk, to_int16
from demod_voice.engine.jobs import STDOUT
from demod_voice.errors import DemodVoiceError, DependencyError, InputError, NothingToSpeak, OutputFull, PipeClosed, RuntimeFailure
from demod_voice.paths import check_output_path, temp_beside

log = logging.getLogger(__name__)

# extension -> (libsndfile format, subtype)
FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".opus": ("OGG", "OPUS"),  # through PyAV at 48 kHz (:class:`_EncodedFile`): libsndfile's takes no voice's 22,050 Hz
}


class Sink(Protocol):
    """Where a job's chunks go. ``commit`` makes the output visible; ``abort`` leaves no trace.

    ``write`` and ``commit`` raise only :class:`DemodVoiceError` for trouble with the output
    (:class:`OutputFull` for a full disk, :class:`PipeClosed` when stdout's reader left), never a
    library's own exception, so every caller reports them as one line.
    """

    def write(self, chunk: AudioChunk) -> None: ...
    def commit(self) -> float: ...
    def abort(self) -> None: ...
    @property
    def retryable(self) -> bool: ...


NOT_WRITTEN = (".m4a", ".aac", ".webm", ".wma", ".aiff")
"""Audio files people ask for (a phone's and an app's formats) that the writer does not make."""


def check_output(output: str, stdout: Optional[BinaryIO] = None) -> str:
    """Validate an output target before work starts; return it normalised (absolute path or ``-``)."""
    if output == STDOUT:
        if stdout is None and sys.stdout is None:  # started with fd 1 closed ('>&-'): Python has no stdout at all
            raise InputError("standard output is closed: pipe it (e.g. '| aplay -r RATE -f S16_LE -c 1') or use --output FILE.wav")
        stream = stdout or sys.stdout.buffer
        if stream.isatty():
            raise InputError("refusing to write raw audio to a terminal; pipe it (e.g. '| aplay -r RATE -f S16_LE -c 1') or use --output FILE.wav")
        return STDOUT
    path = check_output_path(Path(output), elsewhere=", or '-' for raw 16-bit PCM on stdout")  # piper's habit: -f /dev/stdout
    suffix = path.suffix.lower()
    if suffix in NOT_WRITTEN:  # was "cannot tell the audio format of 'hello.m4a'": it could, it cannot write it
        made = shlex.quote(str(Path(output).with_suffix(".wav")))
        raise InputError(f"{suffix[1:]} is not a format written here: use a name ending in {', '.join(FORMATS)} (then, for an "
                         f"{suffix[1:]}: ffmpeg -i {made} {shlex.quote(output)}), or '-' for raw PCM on stdout")
    if suffix not in FORMATS:
        raise InputError(f"cannot tell the audio format of '{output}': use a name ending in {', '.join(FORMATS)}, or '-' for raw PCM on stdout")
    if suffix == ".opus" and not _opus_supported():
        raise DependencyError("writing .opus needs PyAV: pip install av (it comes with 'demod-voice[serve]'); or write .ogg (Vorbis)")
    if suffix == ".mp3" and not _mp3_supported():
        raise DependencyError("this libsndfile cannot write mp3 (needs libsndfile >= 1.1); write .wav/.flac/.ogg or upgrade the soundfile package")
    return str(path)


def _opus_supported() -> bool:
    from importlib.util import find_spec

    return find_spec("av") is not None


def _mp3_supported() -> bool:
    import soundfile

    return "MP3" in soundfile.available_formats()


def open_sink(output: str) -> Sink:
    """The sink for a checked output target."""
    return StdoutSink() if output == STDOUT else FileSink(Path(output))


class FileSink:
    """Writes chunks to a temporary file beside ``path``; ``commit`` renames it into place."""

    retryable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp: Optional[Path] = None
        self._file: Any = None
        self._frames = 0
        self._rate = 0

    def write(self, chunk: AudioChunk) -> None:
        """Append a chunk to the temporary file (nothing is kept in memory: long outputs stream to disk)."""
        if self._file is not None and chunk.sample_rate != self._rate:
            raise ValueError(f"sample rate changed mid-output ({self._rate} -> {chunk.sample_rate})")
        try:
            if self._file is None:
                self._open(chunk.sample_rate)
            # PCM outputs get the same integer samples as the stdout stream; lossy codecs take floats.
            self._file.write(to_int16(chunk.samples) if self._file.subtype == "PCM_16" else chunk.samples)
        except (OSError, RuntimeError, DemodVoiceError) as err:  # the OS's, libsndfile's (a RuntimeError), a missing PyAV
            self.abort()
            raise write_error(self.path, err) from None
        self._frames += len(chunk.samples)

    def _open(self, rate: int) -> None:
        import soundfile

        fmt, subtype = FORMATS[self.path.suffix.lower()]
        self._tmp = temp_beside(self.path)
        self._rate = rate
        if subtype == "OPUS":
            self._file = _EncodedFile(self._tmp, "opus", rate)
            return
        self._file = soundfile.SoundFile(str(self._tmp), mode="w", samplerate=rate, channels=1, format=fmt, subtype=subtype)

    def commit(self) -> float:
        """Close, fsync and rename into place; return the duration in seconds."""
        if self._file is None:
            raise NothingToSpeak("the text produced no audio (nothing speakable in it?)")
        try:
            self._file.close()
            self._file = None
            with open(self._tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self._tmp, self.path)
        except (OSError, RuntimeError) as err:  # as in write(): a closing flush can meet a full disk too
            self.abort()
            raise write_error(self.path, err) from None
        self._tmp = None
        return self._frames / self._rate

    def abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class _EncodedFile:
    """A file written through :class:`~demod_voice.audio.encode.StreamEncoder` (the server's own opus: Ogg at 48 kHz,
    resampled by FFmpeg), as a ``soundfile.SoundFile`` is written: ``write`` float samples, then ``close``."""

    subtype = "ENCODED"

    def __init__(self, path: Path, fmt: str, rate: int) -> None:
        from demod_voice.audio.encode import StreamEncoder

        self._encoder = StreamEncoder(fmt, rate)  # before the file is opened: a missing PyAV leaves nothing to close
        self._handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close(), as a SoundFile is

    def write(self, samples: Any) -> None:
        self._handle.write(self._encoder.feed(samples))

    def close(self) -> None:
        try:
            if not self._handle.closed:
                self._handle.write(self._encoder.close())
        finally:
            self._handle.close()


class StreamedSink:
    """A sink whose chunks leave as they come (stdout, a client): nothing to remove on abort, and
    retryable only until the first chunk has left (a retry would repeat it)."""

    def __init__(self) -> None:
        self._frames = 0
        self._rate = 0

    @property
    def retryable(self) -> bool:
        """Once audio has left, a retry would repeat it."""
        return self._frames == 0

    def _sent(self, chunk: AudioChunk) -> None:
        self._rate = chunk.sample_rate
        self._frames += len(chunk.samples)

    def commit(self) -> float:
        if self._rate == 0:
            raise NothingToSpeak("the text produced no audio (nothing speakable in it?)")
        return self._frames / self._rate

    def abort(self) -> None:
        """Nothing to remove: what was streamed is gone."""


class StdoutSink(StreamedSink):
    """Streams raw little-endian 16-bit mono PCM to stdout, flushing after every chunk."""

    def __init__(self, stream: Optional[BinaryIO] = None) -> None:
        super().__init__()
        self._stream = stream or sys.stdout.buffer

    def write(self, chunk: AudioChunk) -> None:
        if self._rate == 0:
            log.info("raw PCM on stdout: signed 16-bit little-endian, %d Hz, 1 channel", chunk.sample_rate)
        try:
            self._stream.write(to_int16(chunk.samples).tobytes())
            self._stream.flush()
        except BrokenPipeError:
            raise PipeClosed("the reader of stdout closed the pipe") from None
        except OSError as err:
            raise write_error(Path("stdout"), err) from None
        self._sent(chunk)


FULL_BELOW = 1 << 20
"""Free bytes under which a write error that names no cause (libsndfile's "System error.") is taken for a full disk."""
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""The errors of a write that a full filesystem (or quota) gives."""


def write_error(path: Path, err: BaseException) -> DemodVoiceError:
    """One line naming the file and the cause; :class:`OutputFull` when the disk is full.

    libsndfile reports ENOSPC as ``LibsndfileError: System error.`` without an errno, so when the
    error carries none, the free space of the folder decides.
    """
    if isinstance(err, DemodVoiceError):
        return err
    cause = getattr(err, "strerror", None) or str(err) or type(err).__name__
    if is_full(path.parent, err):
        free = free_bytes(path.parent)
        return OutputFull(f"cannot write {path}: no space left on its filesystem ({free // 1024} KiB free); "
                          "free some space and run the same command again")
    return RuntimeFailure(f"cannot write {path}: {cause}")


def is_full(folder: Path, err: BaseException) -> bool:
    """Whether writing in ``folder`` failed with ``err`` because its filesystem is full (or over quota); libsndfile's
    errors carry no errno, so then the folder's free space decides."""
    code = getattr(err, "errno", None)
    return code in FULL_ERRNOS or (code is None and free_bytes(folder) < FULL_BELOW)


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s filesystem (a large number if unknown)."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return 1 << 62
    return stat.f_bavail * stat.f_frsize


