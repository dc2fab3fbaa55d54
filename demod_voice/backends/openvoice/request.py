"""Voice conversion's request side (parent): a source recording re-spoken in a target voice by
OpenVoice v2's converter (coqui-tts). Sources and references are checked, the converter found
(or downloaded into the cache), and one job per source built; no engine is imported here.

The target is reference recordings given directly, or an enrolled voice profile, which keeps
its references' first seconds since format 2 (:mod:`demod_voice.voices.profiles`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.audio.decode import to_mono
from demod_voice.config import ConvertSettings
from demod_voice.engine.jobs import STDOUT, LoadSpec, SynthesisJob, files_version
from demod_voice.errors import InputError, ModelMissing
from demod_voice.models.download import Offline, fetch
from demod_voice.paths import not_an_input
from demod_voice.voices.profiles import Profile, reenroll_text
from demod_voice.voices.references import MAX_SECONDS as MAX_REFERENCE_SECONDS
from demod_voice.voices.references import Reference, check_references, read_start, readable_path

log = logging.getLogger(__name__)

BACKEND = "openvoice"
SAMPLE_RATE = 22050
"""The converter's rate: sources are resampled to it, and the output has it."""
HOP = 256
"""Output samples per spectrogram frame."""
MODEL_FILES = ("config.json", "checkpoint.pth")
SERVER_MISSING = ("this server cannot convert voices yet: its voice converter (OpenVoice v2) is not installed; its administrator "
                  "can install it ('demod-voice models download openvoice_v2')")
"""What a server's client is told when the converter is missing (the command line's words name the server's folders)."""
MIN_SOURCE_SECONDS = 0.1
SILENT_PEAK = 1e-3
CLIPPED_SHARE = 0.01


@dataclass(frozen=True)
class Target:
    """The voice to convert into: reference recordings, or a profile's kept audio."""

    references: tuple[Reference, ...] = ()
    """Checked reference recordings (the worker reads them)."""
    audio: Any = None
    """A profile's references as one int16 array (``None`` with :attr:`references`)."""
    lengths: Any = None
    """Samples of each reference in :attr:`audio`."""
    rate: int = 0
    """Sample rate of :attr:`audio`."""
    key: str = ""
    """What the worker caches the target's embedding under (reference hashes, or the profile's digest)."""


@dataclass(frozen=True)
class ConvertOptions:
    """Per-job settings for the worker."""

    source: str
    """Absolute path of the (checked) source recording."""
    target: Target
    """The voice to convert into."""
    settings: ConvertSettings
    """Noise, seed, windows."""
    source_sha256: str = ""
    """The source's content hash (what a resumed ``batch`` compares, besides the settings and the target)."""


@dataclass(frozen=True)
class ConvertRequest:
    """A ``convert`` request as typed values, built by a front door."""

    sources: tuple[str, ...]
    """Source recordings (their words and timing are kept)."""
    outputs: tuple[str, ...]
    """One checked output per source (a path, or ``-``)."""
    settings: ConvertSettings
    """Effective settings."""
    cache_dir: str
    """Cache folder (the downloaded converter)."""
    references: tuple[str, ...] = ()
    """Reference recordings of the target voice."""
    profile: Optional[Profile] = None
    """An enrolled voice instead of references."""
    device: str = "cpu"
    """Requested device."""
    progress: bool = False
    """Show a progress bar when the converter is downloaded."""


def profile_target(profile: Profile) -> Target:
    """The target a profile holds; a profile made before conversion existed says so."""
    if profile.reference_audio is None or not len(profile.reference_audio):
        raise InputError(f"voice profile '{profile.name}' was made before voice conversion existed and keeps no reference audio; "
                         + reenroll_text(profile.name))
    return Target(audio=profile.reference_audio, lengths=profile.reference_lengths, rate=profile.reference_rate,
                  key=f"profile:{profile.digest}")


def reference_target(paths: tuple[str, ...], max_seconds: float = MAX_REFERENCE_SECONDS) -> Target:
    """Checked reference recordings as a target (warnings about them are logged once)."""
    references = check_references(paths, max_seconds)
    key = hashlib.sha256("".join(r.sha256 for r in references).encode()).hexdigest()
    return Target(references=references, key=f"references:{key}")


_RATES_TOLD: set[int] = set()
"""Source rates above the converter's that were said to come out at its rate (once each: a batch of a thousand takes)."""


def check_source(path_text: str, max_seconds: float, output: str = STDOUT) -> tuple[str, list[str]]:
    """(absolute path, warnings) for a source recording converted into the file ``output`` (``-``: a stream, whose rate
    its reader is told); unusable audio raises :class:`InputError` in one line."""
    import shlex

    import numpy as np

    path = Path(path_text).expanduser().absolute()
    if path.is_dir():
        raise InputError(f"source audio {path} is a folder; give the recordings in it (e.g. {path}/*.wav)")
    if not path.is_file():
        raise InputError(f"source audio {path} not found; check the path")
    cut = "(convert.max_source_seconds); cut it, e.g. ffmpeg -t {max} -i {name} part.wav"
    readable = readable_path(path, max_seconds, "source", cut)
    seconds, audio, rate = read_start(readable, max_seconds, "source", cut, path.name)
    if len(audio) == 0 or seconds < MIN_SOURCE_SECONDS:
        raise InputError(f"source {path.name} is {seconds:.2f} s long; a source needs at least {MIN_SOURCE_SECONDS:g} s of audio "
                         "to convert: record or cut a longer take")
    peak = float(np.abs(to_mono(audio)).max())
    if peak < SILENT_PEAK:
        raise InputError(f"source {path.name} is silent (peak {peak:.5f}); there is nothing to convert")
    warnings = []
    clipped = float((np.abs(audio) >= 0.999).mean())
    if clipped > CLIPPED_SHARE:
        warnings.append(f"source {path.name} is clipped ({clipped:.1%} of samples at full scale); the conversion keeps the distortion")
    if rate < 16000:
        warnings.append(f"source {path.name} is sampled at {rate} Hz; it is converted at {SAMPLE_RATE} Hz, and what it lacks above "
                        f"{rate // 2} Hz stays missing")
    if rate > SAMPLE_RATE and output != STDOUT and rate not in _RATES_TOLD:
        # a 48 kHz camera take came back at 22.05 kHz without a word, taken for a fault in a 48 kHz project
        _RATES_TOLD.add(rate)
        out = Path(output)
        warnings.append(f"source {path.name} is sampled at {rate} Hz; its conversion comes out at {SAMPLE_RATE} Hz, the converter's "
                        f"rate (it makes nothing above {SAMPLE_RATE // 2} Hz): resample the result if a {rate} Hz project needs it "
                        f"(ffmpeg -i {shlex.quote(out.name)} -ar {rate} {shlex.quote(f'{out.stem}-{rate // 1000}k{out.suffix}')})")
    return str(readable), warnings


def resolve_converter(settings: ConvertSettings, cache: Path, progress: bool = False) -> Path:
    """The converter folder: ``convert.model_dir``, or the released one in the cache (downloaded once)."""
    if settings.model_dir:
        folder = Path(settings.model_dir).expanduser().absolute()
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelMissing(f"the converter folder {folder} lacks {', '.join(missing)}; it needs config.json and checkpoint.pth "
                               f"(OpenVoice v2's converter/ folder)",
                               f"this server's voice converter folder (convert.model_dir) lacks {', '.join(missing)}; its "
                               "administrator must complete it")
        return folder
    folder = released_dir(cache)
    if all((folder / name).is_file() for name in MODEL_FILES):
        return folder
    log.warning("downloading OpenVoice v2's converter into %s (about 131 MB, once)", folder)
    parts = {}
    try:
        for name in MODEL_FILES:
            parts[folder / name] = fetch(settings.url.rstrip("/") + "/" + name, folder / name, progress=progress)
    except Offline as err:
        raise Offline(f"{err}; to install it by hand, put OpenVoice v2's converter/config.json and checkpoint.pth in {folder}") from None
    for dest in sorted(parts, key=lambda p: p.suffix == ".pth"):  # config first: visible weights always have it beside them
        os.replace(parts[dest], dest)
    return folder


def released_dir(cache: Path) -> Path:
    """Where the released converter lives in the cache (its name tells coqui's loader what it is)."""
    return Path(cache) / "convert" / "OpenVoiceV2"


def make_jobs(request: ConvertRequest) -> list[SynthesisJob]:
    """Check the target, every source and the converter; one job per source, in order."""
    settings = request.settings
    if request.profile is not None and request.references:
        raise InputError("give either --voice or --reference, not both")
    if request.profile is not None:
        target = profile_target(request.profile)
    elif request.references:
        target = reference_target(request.references)
    else:
        raise InputError("say which voice to convert into: --voice PROFILE or --reference RECORDING")
    sources = []
    for path, output in zip(request.sources, request.outputs, strict=True):
        source, warnings = check_source(path, settings.max_source_seconds, output)
        for warning in warnings:
            log.warning("%s", warning)
        sources.append(source)
    for output in request.outputs:
        not_an_input(output, [*request.sources, *request.references])
    try:
        folder = resolve_converter(settings, Path(request.cache_dir), request.progress)
    except Offline as err:  # a server's client (the web page's user) was told where to put files on the server
        raise ModelMissing(str(err), SERVER_MISSING) from None
    try:
        version = files_version(str(folder))  # a converter replaced in its folder is loaded by the next conversion
    except OSError:
        raise InputError("the voice converter's files were removed or replaced while they were read; try again") from None
    spec = LoadSpec(BACKEND, str(folder), request.device, cache_dir=request.cache_dir, version=version)
    return [SynthesisJob(spec=spec, text="(convert)", output=output, options=ConvertOptions(source, target, settings, _sha256(source)),
                         label="" if output != STDOUT else f"{Path(given).name} converted")
            for source, given, output in zip(sources, request.sources, request.outputs, strict=True)]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
