"""Voice profiles: a cloned voice kept by name, exported and imported as one portable file.

A profile is an ``.npz`` (read with ``allow_pickle=False``: arrays and a JSON string, no code)
holding the XTTS conditioning latents, the identity of the model they were made with, the
references' content hashes, and a SHA-256 digest over all of it. A file whose digest does not
match was damaged or edited and is refused. The digest is not a signature: anyone can make a
valid profile, which is what makes them portable; it guards against corruption and casual edits.

Format 2 (written since voice conversion) also keeps up to 30 s of the references' audio (24 kHz,
16-bit), which conversion conditions on; format-1 profiles still speak, and say so when asked to convert.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demod_voice.errors import InputError, ModelMissing
from demod_voice.paths import atomic_path, copy_atomic

FORMAT = "demod-voice-profile/2"
FORMATS = ("demod-voice-profile/1", FORMAT)
"""Formats read: 1 (latents only) and 2 (latents and the references' audio)."""
NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
r"""A voice id. Use ``fullmatch``; the ``\A``/``\Z`` anchors also keep ``match`` from taking "name\n" (``$`` would)."""
REENROLL_CLI = "make it again with 'demod-voice voices add {name} REFERENCE... --force', or convert with --reference"
"""How the command line tells its user to make a profile again (``{name}``: the voice), e.g. a format-1 one to convert into."""
REENROLL_HTTP = ("enroll it again from its recordings (POST /v1/voices with force=true, or the web page's Clone tab), "
                 "or convert into reference recordings instead")
"""The same advice for the server's clients (API and web page), who have no command line."""
_REENROLL: ContextVar[str] = ContextVar("demod_voice_reenroll", default=REENROLL_CLI)


@dataclass(frozen=True)
class Profile:
    """A loaded, verified profile."""

    name: str
    """Its name."""
    model: str
    """Identity of the XTTS model it was made with."""
    references: tuple[str, ...]
    """SHA-256 of each reference recording."""
    created: str
    """UTC time of creation."""
    gpt_cond_latent: Any
    """float32 array."""
    speaker_embedding: Any
    """float32 array."""
    digest: str = ""
    """SHA-256 over the metadata and both arrays: the profile's identity (what batch resume keys on)."""
    reference_audio: Any = None
    """int16 array: the references' first seconds, one after another (``None`` in a format-1 profile)."""
    reference_lengths: Any = None
    """int64 array: samples of each reference in ``reference_audio``."""
    reference_rate: int = 0
    """Sample rate of ``reference_audio``."""
    language: str = ""
    """The language it was enrolled to speak (the server's enrollments; "" when none was kept: the command line's)."""


@contextmanager
def reenroll_advice(advice: str) -> Iterator[None]:
    """Within the block (this thread or task, and what it starts with its context: ``asyncio.to_thread``), a message
    asking to make a profile again says ``advice``: a front door other than the command line (the server) gives its own
    words without a parameter passed through every layer between it and the backend that finds the problem."""
    token = _REENROLL.set(advice)
    try:
        yield
    finally:
        _REENROLL.reset(token)


def reenroll_text(name: str) -> str:
    """How to make profile ``name`` again, in the words of the front door at work (:func:`reenroll_advice`)."""
    return _REENROLL.get().format(name=name)


def profiles_dir(cache: Path) -> Path:
    """Where named profiles live."""
    return cache / "profiles"


NAME_RULE = "use ASCII letters, digits, '_', '.' or '-' (up to 64, not starting with . - _)"
"""What a voice's name may hold, as refusals say it."""


def name_like(name: str) -> str:
    """A voice name made of ``name`` (accents dropped, spaces and other signs as '-'), as a refusal's example: "'Zoë' cannot
    name a voice: use letters" was told a person whose name has only letters; "" when none can be made."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    made = re.sub(r"[^A-Za-z0-9_.-]+", "-", plain).lstrip("._-")[:64].rstrip("-")
    return made if NAME.fullmatch(made) else ""


def name_rule(name: str) -> str:
    """:data:`NAME_RULE`, and a name like ``name`` that would do."""
    like = name_like(name)
    return f"{NAME_RULE}, e.g. '{like}'" if like and like != name else NAME_RULE


def check_name(name: str) -> str:
    """Profile names become file names: letters, digits, ``_ . -``, up to 64 characters."""
    if not isinstance(name, str) or not NAME.fullmatch(name):  # match() would let a trailing newline through ($)
        raise InputError(f"{str(name)[:80]!r} cannot name a voice: {name_rule(name)}")
    return name


def _digest(meta: dict[str, Any], *arrays: Any) -> str:
    body = {k: v for k, v in meta.items() if k != "digest"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode())
    for array in arrays:
        digest.update(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def write_profile(path: Path, name: str, model: str, references: list[str], gpt: Any, speaker: Any,
                  audio: Any = None, lengths: Any = None, rate: int = 0, created: str = "", language: str = "") -> None:
    """Write a profile file atomically; with ``audio`` (int16), ``lengths`` and ``rate`` in format 2; ``created``
    (default: now) keeps a renamed profile's date; ``language``, when given, travels with it (a download imported on
    another server speaks it)."""
    import numpy as np

    gpt, speaker = np.ascontiguousarray(gpt, dtype=np.float32), np.ascontiguousarray(speaker, dtype=np.float32)
    meta = {"format": FORMAT if audio is not None else FORMATS[0], "name": name, "model": model, "references": references,
            "created": created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if language:  # only when given: a profile without one has the digest it always had
        meta["language"] = language
    arrays = {"gpt_cond_latent": gpt, "speaker_embedding": speaker}
    if audio is not None:
        meta["reference_rate"] = int(rate)
        arrays["reference_audio"] = np.ascontiguousarray(audio, dtype=np.int16)
        arrays["reference_lengths"] = np.ascontiguousarray(lengths, dtype=np.int64)
    meta["digest"] = _digest(meta, *arrays.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        os.fchmod(handle.fileno(), PRIVATE)
        np.savez(handle, **arrays, meta=np.array(json.dumps(meta)))


PRIVATE = 0o600
"""A profile is someone's voice: its file is its owner's alone (enrolled ones were readable by every local user, imported
ones not)."""
MAX_BYTES = 16 << 20
"""A profile is ~130 kB; anything much larger is not one, and is refused before it is decompressed."""
MEMBERS = {"gpt_cond_latent.npy": "float32", "speaker_embedding.npy": "float32", "meta.npy": "str"}
AUDIO_MEMBERS = {"reference_audio.npy": "int16", "reference_lengths.npy": "int64"}
"""Format 2's extra members."""


def read_profile(path: Path) -> Profile:
    """Load and verify a profile file; :class:`InputError` when it is not one, or was altered.

    Any bytes may arrive here (``voices import``): the zip's members, their sizes and every array
    header are checked before numpy allocates anything, and nothing is ever unpickled.
    """
    import numpy as np

    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            gpt, speaker = data["gpt_cond_latent"], data["speaker_embedding"]
            audio = (data["reference_audio"], data["reference_lengths"]) if "reference_audio" in data.files else None
    except FileNotFoundError:
        raise InputError(f"no voice profile at {path}: file not found; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a voice profile file") from None
    except _CutOff:
        raise InputError(f"{path} is cut off: a profile whose end is missing (a download or copy that did not finish); copy "
                         "it again") from None
    except Exception as err:  # noqa: BLE001 - any bytes may arrive: zipfile and numpy fail in many ways (CRC, versions, encryption)
        why = " ".join(str(err).split())[:200] or type(err).__name__  # the class's name told a person nothing ("ValueError")
        raise InputError(f"{path} is not a demod-voice profile ({why}); export one with 'voices export' (or the page's Voices "
                         "tab)") from None
    if not isinstance(meta, dict) or meta.get("format") not in FORMATS:
        raise InputError(f"{path} is not a demod-voice profile (format {str(meta.get('format'))[:40]!r})" if isinstance(meta, dict) else
                         f"{path} is not a demod-voice profile (its metadata is not a mapping)")
    if (audio is not None) != (meta["format"] == FORMAT) or meta.get("digest") != _digest(meta, gpt, speaker, *(audio or ())):
        raise InputError(f"voice profile {path} fails its integrity check (damaged or edited); export it again from its source")
    name, model, references, created = (meta.get(key) for key in ("name", "model", "references", "created"))
    if not (isinstance(name, str) and isinstance(model, str) and isinstance(created, str) and isinstance(references, list)
            and all(isinstance(r, str) for r in references)):
        raise InputError(f"{path} is not a demod-voice profile (its name, model, references or date is missing or not text)")
    language = meta.get("language", "")
    if not (isinstance(language, str) and len(language) <= 40):
        raise InputError(f"{path} is not a demod-voice profile (its language is not a language code)")
    rate = meta.get("reference_rate", 0)
    if audio is not None and not (isinstance(rate, int) and 8000 <= rate <= 48000 and int(audio[1].sum()) == len(audio[0])
                                  and (audio[1] > 0).all()):
        raise InputError(f"{path} is not a demod-voice profile (its reference audio does not match its lengths or rate)")
    return Profile(check_name(name), model, tuple(references), created, gpt, speaker, meta["digest"],
                   *(audio or (None, None)), rate if audio is not None else 0, language)


def is_profile_file(path: Path) -> bool:
    """Whether ``path`` is shaped as a profile file is (a zip with a profile's members): an exported voice given where a
    recording goes, which was told it is "not a format FFmpeg recognises; use wav, flac, ogg, mp3 or m4a"."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return set(MEMBERS) <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def installs_as(path: Path) -> str:
    """The name profile file ``path`` installs as ("NAME" when it does not read as a profile)."""
    try:
        return read_profile(path).name
    except InputError:
        return "NAME"


class _CutOff(ValueError):
    """A profile file whose end is missing: it was told "not a zip archive; export one with 'voices export'", when it was
    one, its copy unfinished."""


def _check_members(path: Path) -> None:
    """Refuse anything but the three expected ``.npy`` members with sane headers and bounded sizes."""
    import zipfile

    import numpy as np

    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path.stat().st_size} bytes, more than a profile's {MAX_BYTES >> 20} MiB")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as head:
            if head.read(4) == b"PK\x03\x04":  # a zip's start without its end (the directory is written last)
                raise _CutOff() from None
        raise ValueError("not a zip archive") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        expected = {**MEMBERS, **AUDIO_MEMBERS} if "reference_audio.npy" in infos else MEMBERS
        if set(infos) != set(expected):
            raise ValueError(f"members {', '.join(sorted(infos))[:120] or 'none'}, expected {', '.join(sorted(expected))}")
        if sum(info.file_size for info in infos.values()) > MAX_BYTES:
            raise ValueError("its members unpack to more than a profile can hold")
        for name, kind in expected.items():
            with archive.open(infos[name]) as member:
                version = np.lib.format.read_magic(member)
                readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in readers:
                    raise ValueError(f"{name} is in .npy format {version}, which profiles do not use")
                shape, _, dtype = readers[version](member, max_header_size=1024)
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                fits = dtype == np.dtype(kind) and len(shape) <= 3 if kind != "str" else dtype.kind == "U" and shape == ()
                if not fits or dtype.hasobject or size > infos[name].file_size:
                    raise ValueError(f"{name} holds {dtype}{list(shape)}, not what a profile holds")


@functools.lru_cache(maxsize=64)
def load_named(cache: Path, name: str) -> Profile:
    """The installed profile called ``name`` (cached: batch rows reuse voices)."""
    path = profiles_dir(cache) / f"{check_name(name)}.npz"
    if not path.is_file():
        raise InputError(f"there is no voice profile '{name}': 'demod-voice voices list' shows them; "
                         f"'demod-voice voices add {name} REFERENCE...' makes one")
    return read_installed(path)


def read_installed(path: Path) -> Profile:
    """An installed profile (``NAME.npz`` among the profiles): :func:`read_profile`, a damaged one a
    :class:`~demod_voice.errors.ModelMissing` whose server message names the voice, not the server's file."""
    try:
        return read_profile(path)
    except InputError as err:
        raise ModelMissing(str(err), f"the voice '{path.stem}' is damaged on this server: delete it and enroll it again",
                           "damaged_voice") from None


def export_profile(cache: Path, name: str, target: Path) -> None:
    """Copy a verified profile to ``target`` (atomically)."""
    load_named(cache, name)
    copy_atomic(profiles_dir(cache) / f"{name}.npz", target)


def check_made_with(profile: Profile, model: str) -> Profile:
    """:class:`InputError` unless ``profile`` was made with the XTTS model whose identity is ``model``: latents of
    another model would not sound like the voice (or not work at all), so such a profile is refused at import."""
    if profile.model != model:
        raise InputError(f"voice profile '{profile.name}' was made with another XTTS model ({profile.model[:12]}...) than this "
                         f"one ({model[:12]}...): enroll the voice again here from its recordings")
    return profile


def write_renamed(profile: Profile, target: Path, name: str, created: str = "", language: str = "") -> None:
    """``profile`` written to ``target`` under ``name``: the name is inside the file, under its digest, so it is written
    again, not copied (``created``: as :func:`write_profile`; ``language``: a new one, default its own)."""
    write_profile(target, name, profile.model, list(profile.references), profile.gpt_cond_latent, profile.speaker_embedding,
                  profile.reference_audio, profile.reference_lengths, profile.reference_rate, created=created,
                  language=language or profile.language)


def import_profile(cache: Path, source: Path, force: bool = False, model: str = "", name: str = "", language: str = "") -> Profile:
    """Verify ``source`` (made with the XTTS model ``model``, when given) and install it under its own name, or ``name``
    (two people's exports of a voice both called 'me' can live side by side), speaking its own language, or ``language``
    (a checked code: one exported without a language, or with the wrong one, is set right as the server's import does)."""
    profile = read_profile(source)
    if model:
        check_made_with(profile, model)
    name = check_name(name) if name else profile.name
    target = profiles_dir(cache) / f"{name}.npz"
    if target.exists() and not force:
        raise import_taken(name)
    if name != profile.name or language not in ("", profile.language):  # both are inside the file, under its digest
        write_renamed(profile, target, name, created=profile.created, language=language)
        return read_profile(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, PRIVATE)
    return profile


def import_taken(name: str) -> InputError:
    """The refusal of an import under the name of a voice profile that exists (``--force`` not given)."""
    return InputError(f"a voice profile '{name}' exists already; import this one under another name (--name NEW), "
                      "or replace it (--force)")
