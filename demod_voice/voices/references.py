"""Reference recordings: checked before any work, and turned into cached XTTS conditioning latents.

The latents (GPT conditioning latent and speaker embedding) cost seconds to compute and
depend only on the reference audio, the model and the conditioning parameters, so they are
stored under a key made of exactly those, in ``.npz`` files read with ``allow_pickle=False``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError, OutputFull, RuntimeFailure
from demod_voice.paths import atomic_path
from demod_voice.voices.profiles import PRIVATE, installs_as, is_profile_file

log = logging.getLogger(__name__)

MIN_SECONDS = 1.0
GOOD_SECONDS = (6.0, 30.0)
SILENT_PEAK = 1e-3
QUIET_PEAK = 0.03
"""A peak below this (-30 dBFS) is warned about: the conditioning hears little more than the noise floor."""
CLIPPED_SHARE = 0.01
LOW_RATE = 16000
"""A reference sampled below this (a phone call's 8 kHz) is warned about: XTTS copies its muffled sound into the clone."""
LEAD_SECONDS = 2.0
"""Silence at a recording's start and end (together) longer than this is said to have been cut off (:func:`sound_span`)."""
TRIM_DB = 35.0
"""Sound at a reference's start and end more than this below its loudest moment is silence (a phone left recording): it
is cut off before the voice is learnt (:func:`sound_span`)."""
FLOOR_DB = 10.0
"""Sound at a reference's start and end less than this above its noise floor (its quietest tenth) is silence too: room
noise at -44 dBFS is less than 35 dB below the speech, and was kept and learnt as part of the voice."""
SPEECH_DB = 15.0
"""The silence threshold is never closer than this to the loudest moment: a recording with no pause at all has a noise
"floor" of soft speech, which is not cut."""
TRIM_MARGIN = 0.1
"""Seconds kept either side of the sound that :func:`sound_span` finds (a soft first consonant, a last word's decay)."""
NOISY_DB = 20.0
"""A reference whose quietest moments are less than this far below its speech is called noisy (music, a fan, a busy room)."""
ADVICE = "a good reference is 6-30 s of one person speaking clearly, no music or noise, not clipped"


@dataclass(frozen=True)
class Reference:
    """A checked reference recording."""

    path: str
    """Absolute path."""
    sha256: str
    """Content hash (the cache key ignores names and dates)."""
    seconds: float
    """Duration."""
    speech: float = 0.0
    """Seconds of sound in it: its silence at the start and end left out, as the voice is learnt (the first
    :data:`CHECK_SECONDS` of a longer one are judged); 0 when it was not judged."""


MAX_SECONDS = 300.0
"""Default for ``xtts.max_reference_seconds``."""
CHECK_SECONDS = 60.0
"""Seconds decoded to judge a reference's level and clipping (XTTS conditions on the start only)."""


@functools.lru_cache(maxsize=256)
def check_reference(path_text: str, max_seconds: float = MAX_SECONDS) -> tuple[Reference, list[str]]:
    """Read and judge one reference: (the reference, warnings). Unusable audio raises :class:`InputError`.

    The duration comes from the header first: a file longer than ``max_seconds`` is refused
    before any of it is decoded, and only the first :data:`CHECK_SECONDS` are decoded to judge it.
    Cached per path: a batch of thousands of rows cloning one voice reads and hashes it once.
    """
    path = Path(path_text).expanduser().absolute()
    if path.is_dir():
        raise InputError(f"reference audio {path} is a folder; give the recordings in it (e.g. {path}/*.wav)")
    if not path.is_file():
        raise InputError(f"reference audio {path} not found; check the path (or give a saved voice with --voice)")
    cut = "(xtts.max_reference_seconds); cut a 6-30 s piece of it, e.g. ffmpeg -t 30 -i {name} ref.wav"
    readable = readable_path(path, max_seconds, "reference", cut)
    seconds, audio, rate = read_start(readable, max_seconds, "reference", cut, path.name)
    if len(audio) == 0:
        raise InputError(f"reference {path.name} holds no audio (zero length); {ADVICE}")
    if seconds < MIN_SECONDS:
        raise InputError(f"reference {path.name} is {seconds:.2f} s long, too short to clone from; {ADVICE}")
    speech, warnings = _judge(path.name, audio, seconds, rate)
    return Reference(str(readable), _sha256(readable), seconds, round(speech, 2)), warnings


def read_start(path: Path, max_seconds: float, what: str, cut_hint: str, name: str = "") -> tuple[float, Any, int]:
    """(duration in seconds, the first CHECK_SECONDS as a float32 array of shape (frames, channels), sample rate).

    A file longer than ``max_seconds`` (by its header) is refused before any of it is decoded; ``what``
    names it in messages ("reference", "source") with ``name`` (default: the file's), ``cut_hint`` (``{name}``,
    ``{max}``) says how to shorten it.
    """
    import numpy as np
    import soundfile

    name = name or path.name
    try:
        info = soundfile.info(str(path))
        seconds = info.frames / info.samplerate if info.samplerate and info.frames > 0 else 0.0
        if seconds > max_seconds:
            raise InputError(f"{what} {name} is {seconds / 60:.1f} min long, over the {max_seconds:.0f} s limit "
                             + cut_hint.format(name=shlex.quote(name), max=f"{max_seconds:.0f}"))
        frames = int(CHECK_SECONDS * info.samplerate) if info.samplerate else -1
        audio, rate = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OverflowError) as err:
        raise InputError(f"{what} {name} is not audio that can be read ({err}); use wav, flac, ogg, mp3 or m4a") from None
    if not np.isfinite(audio).all():  # a damaged float recording: the engine failed on it ("synthesis failed", exit 1)
        raise InputError(f"{what} {name} holds samples that are not numbers (NaN or infinity), as a damaged float recording "
                         "does; export it again, e.g. as a 16-bit WAV")
    if not seconds:
        seconds = len(audio) / rate if rate else 0.0
    return seconds, audio, rate


_DECODED: dict[tuple[str, int, int], Path] = {}
"""Recordings decoded in this process: (path, size, mtime) -> the WAV made of it."""


def readable_path(path: Path, max_seconds: float, what: str, cut_hint: str) -> Path:
    """``path`` when libsndfile reads it (wav, flac, ogg, mp3); else a WAV that FFmpeg (through PyAV, as the server's
    uploads are) decodes from it, in a folder of this process's removed when it exits: a phone's ``.m4a`` or ``.aac``,
    a video's sound track. :class:`InputError` for what neither reads, in one line."""
    import soundfile

    stat = path.stat()
    if not stat.st_size:  # "not a format FFmpeg recognises" said nothing of what went wrong
        raise InputError(f"{what} {path.name} is an empty file (0 bytes): the recording was not saved, or its copy was cut off; "
                         "copy it again")
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _DECODED and _DECODED[key].is_file():
        return _DECODED[key]
    from demod_voice.audio.decode import NO_SOUND, NoSound, TooLong, decode_to_wav, looks_like_audio, plain_error

    # libsndfile's MP3 decoder prints its notes on a file named .mp3 that is not one (a web page saved by a failed
    # download) to the process's stderr, three lines before the one saying what is wrong: FFmpeg judges such a file alone
    if path.suffix.lower() != ".mp3" or looks_like_audio(path):
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError):
            pass
        else:
            return _one_channel(path, info, key) if info.channels > 1 and info.duration <= max_seconds else path

    target = _scratch() / f"{len(_DECODED)}-{path.stem[:60]}.wav"
    try:
        decode_to_wav(str(path), str(target), max_seconds)
    except ModuleNotFoundError:  # PyAV comes with the serve and book extras
        raise InputError(f"{what} {path.name} is not wav, flac, ogg or mp3; convert it (ffmpeg -i {shlex.quote(path.name)} "
                         f"{shlex.quote(path.stem + '.wav')}) or install PyAV (pip install av) to read it") from None
    except TooLong:
        target.unlink(missing_ok=True)
        raise InputError(f"{what} {path.name} is over the {max_seconds:.0f} s limit "
                         + cut_hint.format(name=shlex.quote(path.name), max=f"{max_seconds:.0f}")) from None
    except NoSound:
        target.unlink(missing_ok=True)
        raise InputError(f"{what} {path.name} {NO_SOUND}") from None
    except Exception as err:  # noqa: BLE001 - PyAV's many errors: the file is not audio it can read
        target.unlink(missing_ok=True)
        raise _undecoded(path, target, err, what, plain_error(err, path, target)) from None
    _DECODED[key] = target
    return target


def _undecoded(path: Path, target: Path, err: BaseException, what: str, cause: str) -> Exception:
    """What to say of a recording FFmpeg did not decode into ``target``: a full disk there (it said "not audio that can
    be read (No space left on device)"), a saved voice given as a recording, or a file that is not audio."""
    from demod_voice.audio.writer import is_full

    if getattr(err, "errno", None) is not None and is_full(target.parent, err):  # the copy's disk, not the recording
        return scratch_error(path, target.parent, err)
    if is_profile_file(path):
        return InputError(f"{what} {path.name} is a saved voice (an exported voice profile), not a recording: install it "
                          f"(demod-voice voices import {shlex.quote(path.name)}), then use --voice {installs_as(path)}")
    return InputError(f"{what} {path.name} is not audio that can be read ({cause}); use wav, flac, ogg, mp3 or m4a")


def _one_channel(path: Path, info: Any, key: tuple[str, int, int]) -> Path:
    """``path``, unless its channels cancel out when mixed (one of them with its polarity inverted): then a WAV of its
    loudest channel, which the model hears instead of the silent mix (it was refused as "silent")."""
    import soundfile

    from demod_voice.audio.decode import cancelling_in

    try:
        start = soundfile.read(str(path), frames=int(CHECK_SECONDS * info.samplerate), dtype="float32", always_2d=True)[0]
    except (RuntimeError, soundfile.LibsndfileError):
        return path  # read_start says what is wrong with it
    loudest = cancelling_in(start)
    if loudest is None:
        return path
    target = _scratch() / f"{len(_DECODED)}-{path.stem[:60]}.wav"
    try:
        with soundfile.SoundFile(str(target), "w", info.samplerate, 1, subtype="PCM_16") as out:
            for block in soundfile.blocks(str(path), blocksize=1 << 16, dtype="float32", always_2d=True):
                out.write(block[:, loudest])
    except BaseException as err:  # a full disk left the half-written WAV (and libsndfile's "System error." as the message)
        target.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)):
            raise scratch_error(path, target.parent, err) from None
        raise
    log.info("the channels of %s cancel out when mixed (one is inverted): its channel %d is used", path.name, loudest + 1)
    _DECODED[key] = target
    return target


def scratch_error(path: Path, folder: Path, err: BaseException) -> RuntimeFailure:
    """One line for a recording's copy that could not be written to the temporary folder (:class:`OutputFull` when it is
    full), naming the recording, not the folder."""
    from demod_voice.audio.writer import is_full

    if is_full(folder, err):
        return OutputFull(f"no space left in the temporary folder for a copy of {path.name}: free some space there (or point "
                          "TMPDIR at a folder with room) and try again")
    return RuntimeFailure(f"cannot write a copy of {path.name} to the temporary folder: {getattr(err, 'strerror', None) or err}")


@functools.lru_cache(maxsize=1)
def _scratch() -> Path:
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="demod-voice-decoded-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _judge(name: str, audio: Any, seconds: float, rate: int) -> tuple[float, list[str]]:
    """Refuse silence; warn about length, clipping, a low level and a long silence before the sound. (Seconds of sound in
    it, the warnings.)"""
    import numpy as np

    from demod_voice.audio.decode import to_mono

    mono = to_mono(audio)
    peak = float(np.abs(mono).max())
    if peak < SILENT_PEAK:
        raise InputError(f"reference {name} is silent (peak {peak:.5f}); {ADVICE}")
    start, end = sound_span(mono, rate, margin=0.0)
    # a phone left recording before and after anyone spoke: the silence is cut off before the voice is learnt (the engine
    # finds the same span); it was kept, and XTTS averaged silent stretches into the voice
    lead, tail = start / rate, (len(mono) - end) / rate if len(mono) >= seconds * rate - 1 else 0.0  # tail: all was read
    spoken = seconds - lead - tail
    if spoken < MIN_SECONDS:
        raise InputError(f"reference {name} holds only {spoken:.2f} s of sound in its {seconds:.1f} s, too little to clone from; "
                         f"{ADVICE}")
    warnings = []
    if lead + tail > LEAD_SECONDS:
        warnings.append(f"reference {name} {_silence_cut(lead, tail)}: cut off, the voice is learnt from the speech alone")
    if spoken < GOOD_SECONDS[0]:
        of = f" of sound in its {seconds:.1f} s" if lead + tail > LEAD_SECONDS else ""
        warnings.append(f"reference {name} is only {spoken:.1f} s{of}; the clone will be rough ({ADVICE})")
    if spoken > GOOD_SECONDS[1]:
        warnings.append(f"reference {name} is {seconds:.0f} s; only its start is used ({ADVICE})")
    if rate < LOW_RATE:
        warnings.append(f"reference {name} is sampled at {rate} Hz (a phone call's sound): it lacks everything above {rate // 2} Hz, "
                        "and the clone will sound as muffled; record at 16 kHz or more (a phone's voice recorder does)")
    clipped = float((np.abs(audio) >= 0.999).mean())
    if clipped > CLIPPED_SHARE:
        warnings.append(f"reference {name} is clipped ({clipped:.1%} of samples at full scale); the clone will copy the distortion")
    noise = noise_note(mono, rate)
    if noise:
        warnings.append(f"reference {name} {noise}")
    if peak < QUIET_PEAK:
        warnings.append(f"reference {name} is very quiet (peak {20 * np.log10(peak):.0f} dBFS), too little above the noise for a "
                        f"good clone: record closer to the microphone, or raise its level (ffmpeg -i {shlex.quote(name)} -af loudnorm ref.wav)")
    return spoken, warnings


def _silence_cut(lead: float, tail: float) -> str:
    """``has 2.5 s of silence before the speech and 4.0 s after it`` (either part left out when under 0.1 s)."""
    parts = [f"{lead:.1f} s of silence before the speech"] if lead >= 0.05 else []
    if tail >= 0.05:
        parts.append(f"{tail:.1f} s after it" if parts else f"{tail:.1f} s of silence after the speech")
    return "has " + " and ".join(parts)


def sound_span(mono: Any, rate: int, margin: float = TRIM_MARGIN) -> tuple[int, int]:
    """``(start, end)``: the samples of ``mono`` from its first to its last sound, ``margin`` seconds kept either side.
    Sound is a 50 ms stretch less than :data:`TRIM_DB` below the loudest and at least :data:`FLOOR_DB` above the
    recording's noise floor (:data:`SPEECH_DB` below the loudest at most); all of ``mono`` when none is quieter."""
    import numpy as np

    frame = max(1, int(rate * 0.05))
    if len(mono) // frame < 2:
        return 0, len(mono)
    level = _frame_levels(mono, frame)
    count = len(level)
    top, floor = level.max(), np.percentile(level, 10)
    threshold = max(top * 10 ** (-TRIM_DB / 20), min(floor * 10 ** (FLOOR_DB / 20), top * 10 ** (-SPEECH_DB / 20)))
    loud = np.flatnonzero(level > threshold)
    kept = int(margin * rate)
    start = max(0, int(loud[0]) * frame - kept)
    end = len(mono) if loud[-1] == count - 1 else min(len(mono), (int(loud[-1]) + 1) * frame + kept)
    return start, end


def _frame_levels(mono: Any, frame: int) -> Any:
    """The RMS level of each whole ``frame`` of samples of ``mono`` (float64; a part frame at the end is left out)."""
    import numpy as np

    count = len(mono) // frame
    return np.sqrt(np.square(mono[: count * frame].astype(np.float64)).reshape(count, frame).mean(axis=1))


def noise_note(mono: Any, rate: int) -> str:
    """``sounds noisy: ...`` when the quiet moments (between words) are not much quieter than the speech: background noise,
    music, or no pauses at all; else "". (The page said it; the command line, with the same file, did not.)"""
    import numpy as np

    frame = max(1, int(rate * 0.03))
    if len(mono) // frame < 10:
        return ""
    rms = _frame_levels(mono, frame) + 1e-9
    floor, speech = np.percentile(rms, 10), np.percentile(rms, 95)
    ratio_db = 20 * np.log10(speech / floor)
    if ratio_db >= NOISY_DB:
        return ""
    return (f"sounds noisy: its quietest moments are only {ratio_db:.0f} dB below the speech; "
            "record somewhere quieter, closer to the microphone, with pauses between sentences")


_WARNED: set[str] = set()


def check_references(paths: tuple[str, ...] | list[str], max_seconds: float = MAX_SECONDS) -> tuple[Reference, ...]:
    """Check each reference; log each warning once per process (a batch reusing a reference hears it once). A recording
    given twice (``take.wav`` and its copy ``take (1).wav``, both in ``*.wav``) is used once: it weighed twice in the
    voice, over the other recordings."""
    checked: list[Reference] = []
    for reference, warnings, new in checked_once(paths, max_seconds):
        for warning in warnings:
            if warning not in _WARNED:
                _WARNED.add(warning)
                log.warning("%s", warning)
        if new:
            checked.append(reference)
    return tuple(checked)


def checked_once(paths: Iterable[str], max_seconds: float, skip_refused: bool = False) -> Iterator[tuple[Reference, list[str], bool]]:
    """Each of ``paths`` checked (:func:`check_reference`): ``(reference, warnings, new)``, where ``new`` is false for a
    recording given before under any name, whose one warning then says so (:func:`given_again`). ``skip_refused``: a
    path the check refuses (:class:`InputError`) is passed over instead of raised."""
    given: dict[str, str] = {}  # content hash -> the name it was first given under (not a decoded copy's)
    for path in paths:
        try:
            reference, warnings = check_reference(path, max_seconds)
        except InputError:
            if skip_refused:
                continue
            raise
        name, first = Path(path).name, given.get(reference.sha256)
        if first is None:
            given[reference.sha256] = name
            yield reference, warnings, True
        else:
            yield reference, [given_again(name, first)], False


def given_again(name: str, first: str) -> str:
    """The warning for reference ``name``, the same recording as the reference ``first`` given before it."""
    again = "given twice" if name == first else f"the same recording as {first}"
    return f"reference {name} is {again}: it is used once"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def latents_dir(cache: Path) -> Path:
    """The voice cache: conditioning latents, one ``.npz`` per key (docs/cli.md: "Voice cache")."""
    return Path(cache) / "latents"


def latent_key(references: list[Reference], model_identity: str, params: dict[str, Any]) -> str:
    """The cache key: reference contents (in order), model identity, conditioning parameters."""
    payload = json.dumps({"refs": [r.sha256 for r in references], "model": model_identity, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


def load_latents(folder: Optional[str], key: str) -> Optional[tuple[Any, Any]]:
    """Cached (gpt_cond_latent, speaker_embedding) numpy arrays, or ``None``."""
    import numpy as np

    if not folder:
        return None
    path = latents_dir(Path(folder)) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["gpt_cond_latent"], data["speaker_embedding"]
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring a damaged voice cache entry %s (%s)", path, err)
        return None


def save_latents(folder: Optional[str], key: str, gpt_cond_latent: Any, speaker_embedding: Any, meta: dict[str, Any]) -> None:
    """Store latents atomically; a cache that cannot be written is reported, not fatal."""
    import numpy as np

    if not folder:
        return
    target = latents_dir(Path(folder)) / f"{key}.npz"
    try:
        if not target.parent.is_dir():
            target.parent.parent.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(mode=0o700, exist_ok=True)
        # The conditioning is the cloned voice itself, as a profile is (0600): they were written under the umask (0644),
        # where any local user could take the clone.
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE)
            np.savez(handle, gpt_cond_latent=gpt_cond_latent, speaker_embedding=speaker_embedding, meta=np.array(json.dumps(meta)))
    except OSError as err:
        log.warning("could not cache the voice latents in %s (%s); they will be recomputed next time", target.parent, err)


def forget_latents(cache: Path, references: tuple[str, ...] | list[str]) -> int:
    """Remove the cached latents made from exactly these references (their SHA-256, in order): a deleted voice's
    conditioning stayed in the voice cache, from which the voice could be made again without its recordings.
    Returns how many entries went."""
    import numpy as np

    wanted = list(references)
    gone = 0
    if not wanted:
        return gone
    for path in sorted(latents_dir(Path(cache)).glob("*.npz")):
        try:
            with np.load(path, allow_pickle=False) as data:
                made_from = json.loads(str(data["meta"])).get("references")
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # not an entry this code wrote: left alone
        if made_from == wanted:
            path.unlink(missing_ok=True)
            gone += 1
    return gone
