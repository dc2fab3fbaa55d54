"""Enrollment: a voice's conditioning is computed by an engine job and kept as a named profile.

Both front doors enroll the same way: ``voices add`` (CLI) and ``POST /v1/voices`` (server)
ask the backend that makes voices from recordings (:func:`~demod_voice.backends.registry.cloner`)
for one enrollment job (:meth:`~demod_voice.backends.plugin.RequestSide.enroll_job`), the
engine runs it in a worker, and the job's value (the latents, the model's identity, the
references' hashes and their first seconds of audio for voice conversion) is written here as
the profile. No engine library is loaded in the calling process.
"""

from __future__ import annotations

import logging
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends import registry
from demod_voice.backends.plugin import Scope
from demod_voice.config import Config, cache_root
from demod_voice.engine.handles import JobResult
from demod_voice.engine.service import run_one
from demod_voice.errors import InputError, ModelMissing, RuntimeFailure
from demod_voice.voices.profiles import Profile, check_name, import_taken, profiles_dir, read_profile, write_profile

ENROLL_VALUE_KEYS = ("gpt_cond_latent", "speaker_embedding", "model", "references", "reference_audio", "reference_lengths",
                     "reference_rate")
"""What an enrollment job's value holds: a profile's contents (see :meth:`XttsBackend.enroll
<demod_voice.backends.xtts.engine.XttsBackend.enroll>`)."""


class NameTaken(InputError):
    """A new cloned voice's name names something else a request may ask for (:func:`check_free`)."""


def check_free(where: Scope, name: str, reserved: Optional[Mapping[str, str]] = None) -> str:
    """``name`` for a new cloned voice, unless it names something else that requests ask for by name: ``reserved`` (a
    name -> what it is: a server's aliases and model names), the default voice, or a voice that is a model of its own
    (an installed Piper voice). A clone called ``en_US-joe-medium`` took that voice's place in every request naming it,
    and, as the default voice, in every request naming none (clones win a name over model voices)."""
    what = (reserved or {}).get(name)
    if what is None and name == where.config.piper.default_voice:
        what = "the default voice (piper.default_voice)"
    if what is None:
        for side in registry.request_sides():
            try:
                found = side.find(where, name)
            except ModelMissing:  # a damaged profile of that name: not a model voice (``--force`` replaces it)
                continue
            if found is not None and found.by_model:
                what = f"an installed {found.kind_label or found.kind} voice"
                break
    if what is not None:
        raise NameTaken(f"'{name}' is {what} here; give the cloned voice another name")
    return name


def add_voice(name: str, references: list[str], config: Config, force: bool = False, log_level: int = logging.WARNING,
              reserved: Optional[Mapping[str, str]] = None, language: str = "") -> Profile:
    """Enroll ``references`` as the profile ``name``: one engine job, then the profile is written. ``reserved``: names
    it may not take besides voices (see :func:`check_free`); ``language``, when given, is kept in the profile (the
    language it speaks when a request gives none, as a server's enrollment keeps its ``language``)."""
    check_name(name)
    cache = cache_root(config)
    where = Scope(config, cache, profiles_dir(cache))
    check_free(where, name, reserved)
    language = registry.cloner().enroll_language(where, language) if language else ""
    target = profiles_dir(cache) / f"{name}.npz"
    if target.exists() and not force:
        # --force alone learnt the voice from the new recordings only: a second memo of the same person replaced the first
        given = " ".join(shlex.quote(r) for r in references)
        raise InputError(f"a voice profile '{name}' exists already: --force replaces it with these recordings alone; to learn it "
                         f"from more recordings, give them all at once (demod-voice voices add {name} --force FIRST.wav {given})")
    job = registry.cloner().enroll_job(where, references, label=f"enroll {name}")
    return save_enrolled(target, name, run_one(job, config.engine, log_level), language)


def enroll_again(profile: Profile, name: str, config: Config, force: bool = False, log_level: int = logging.WARNING,
                 language: str = "") -> Profile:
    """``profile``, made with another XTTS model than this machine's, enrolled again as ``name`` from the first seconds of
    its recordings that it holds (what ``voices export`` carries to another machine): its latents would not fit this model,
    and the refusal asked for "its recordings", which the one importing it may never have had. ``language``: as
    :func:`add_voice` (default: the profile's own)."""
    if not force and (profiles_dir(cache_root(config)) / f"{check_name(name)}.npz").exists():
        raise import_taken(name)  # add_voice's refusal would name the recordings' copies, gone when it is read
    with tempfile.TemporaryDirectory(prefix="demod-voice-again-") as folder:
        paths = [str(path) for path, _ in recordings_of(profile, Path(folder))]
        return add_voice(name, paths, config, force=force, log_level=log_level, language=language or profile.language)


def recordings_of(profile: Profile, folder: Path) -> list[tuple[Path, float]]:
    """The recordings' first seconds that ``profile`` holds, one WAV each in ``folder``: ``(wav, seconds)``, to enroll
    it again for another XTTS model. :class:`InputError` for a profile that holds none (format 1: latents only)."""
    import soundfile

    if profile.reference_audio is None or not len(profile.reference_audio):
        raise InputError(f"voice profile '{profile.name}' was made with another XTTS model ({profile.model[:12]}...) and holds "
                         "no recordings to make it again from: enroll the voice again here from its recordings")
    out, start = [], 0
    for index, length in enumerate(int(n) for n in profile.reference_lengths):
        path = folder / f"{profile.name}-{index + 1}.wav"
        soundfile.write(str(path), profile.reference_audio[start:start + length], profile.reference_rate, subtype="PCM_16")
        out.append((path, length / profile.reference_rate))
        start += length
    return out


def save_enrolled(target: Path, name: str, result: JobResult, language: str = "") -> Profile:
    """Write an enrollment job's value as the profile ``target`` (atomically) and read it back verified (``language``: the
    one it was enrolled to speak, kept in the profile)."""
    value: Any = result.value
    if not isinstance(value, dict) or any(key not in value for key in ENROLL_VALUE_KEYS):
        raise RuntimeFailure(f"the enrollment of '{name}' ended without its conditioning; run it again with -vv to see why")
    write_profile(target, name, value["model"], list(value["references"]), value["gpt_cond_latent"], value["speaker_embedding"],
                  value["reference_audio"], value["reference_lengths"], value["reference_rate"], language=language)
    return read_profile(target)
