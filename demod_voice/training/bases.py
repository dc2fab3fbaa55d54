"""Which base checkpoint ``--base`` means: a file, or a released Piper checkpoint by voice name.

Parent side. Released checkpoints live in the ``rhasspy/piper-checkpoints`` dataset on Hugging Face,
one folder per voice (``en/en_US/lessac/medium/epoch=2164-step=1355540.ckpt``). A name such as
``en_US-lessac-medium`` is looked up there, downloaded once (resumable, size-checked) into the
cache, and afterwards read from the cache. Whatever its origin, the file is then loaded as plain
data like any other base.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError

log = logging.getLogger(__name__)

HUB = "https://huggingface.co"
REPO = "datasets/rhasspy/piper-checkpoints"
NAME = re.compile(r"^(?P<family>[a-z]{2,3})_(?P<region>[A-Za-z0-9]+)-(?P<speaker>[\w.]+)-(?P<quality>x_low|low|medium|high)$")


def checkpoints_dir(cache: Path) -> Path:
    """Where downloaded base checkpoints are kept."""
    return cache / "piper-checkpoints"


def refuse_voice(path: Path) -> None:
    """:class:`InputError` for an exported voice given where a training checkpoint belongs. Checked before any work: the
    training process found it out only after it had started (half a minute, and a run folder made)."""
    if path.suffix.lower() in (".onnx", ".json"):  # read as a pickle it was "not plain data", which says nothing useful
        raise InputError(f"{path} is an exported voice, not a training checkpoint; an .onnx voice cannot be trained or "
                         "exported again: use the .ckpt it was exported from")


def refuse_folder(path: Path) -> None:
    """:class:`InputError` for a folder given where a checkpoint file belongs (a piper-train run, its checkpoints/), naming
    the checkpoint in it to give: "does not exist" was said of a folder that did."""
    if not path.is_dir():
        return
    newest = next((p for p in (path / "checkpoints" / "last.ckpt", path / "last.ckpt") if p.is_file()), None)
    if newest is None:
        newest = max(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, default=None)
    instead = f": give the checkpoint in it, {newest}" if newest else "; give a .ckpt file"
    raise InputError(f"{path} is a folder, not a checkpoint{instead}")


class _Inert:
    """What :func:`hyper_parameters` makes of every object in a checkpoint's pickle that is not plain data (tensors,
    storages, paths): nothing is called, imported or run."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __setstate__(self, _state: Any) -> None:
        pass

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def __call__(self, *_args: Any, **_kwargs: Any) -> _Inert:  # what a pickle makes of getattr(a class, a method)
        return _Inert()


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return OrderedDict if (module, name) == ("collections", "OrderedDict") else _Inert

    def persistent_load(self, pid: Any) -> Any:
        return _Inert()


def hyper_parameters(checkpoint: Path) -> Optional[dict[str, Any]]:
    """The hyper-parameters a training checkpoint was saved with, read without torch (the parent has none) and without
    running anything in it; ``None`` when they cannot be read (not a zip-format checkpoint, damaged, none saved). A base
    outside a piper-train run without ``--quality`` was sized as a medium voice for its clip check and disk, whatever
    it was."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
            if pickled is None or archive.getinfo(pickled).file_size > 64 * 2**20:
                return None
            with archive.open(pickled) as data:
                ckpt = _PlainUnpickler(data).load()
    except Exception:  # noqa: BLE001 - a damaged or foreign file: the training process says what is wrong with it
        return None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    return hparams if isinstance(hparams, dict) else None


def resolve_base(base: str, cache: Path, hub: str = HUB, progress: bool = True) -> Path:
    """A local checkpoint for ``base``: the file itself, or the released checkpoint of that voice name."""
    path = Path(base).expanduser()
    if path.is_file():
        refuse_voice(path)
        return path.absolute()
    refuse_folder(path)
    match = NAME.match(base)
    if not match:
        raise InputError(f"base checkpoint {path} does not exist (a released one is named like en_US-lessac-medium)")
    target = checkpoints_dir(cache) / f"{base}.ckpt"
    if target.is_file():
        return target
    folder = f"{match['family']}/{match['family']}_{match['region']}/{match['speaker']}/{match['quality']}"
    name, size = _pick(_listing(hub, folder), base)
    from demod_voice.models.download import fetch

    part = fetch(f"{hub.rstrip('/')}/{REPO}/resolve/main/{name}", target, size=size, progress=progress)
    os.replace(part, target)
    log.info("downloaded %s to %s", name, target)
    return target


def _listing(hub: str, folder: str) -> list[dict]:
    import urllib.error
    import urllib.request

    from demod_voice.models.download import TIMEOUT, Offline

    url = f"{hub.rstrip('/')}/api/{REPO}/tree/main/{folder}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            entries = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return []
        raise Offline(f"listing {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise Offline(f"cannot reach {url} ({getattr(err, 'reason', err)}); download the .ckpt yourself and give its path "
                      "to --base") from None
    except ValueError:
        raise InputError(f"{url} did not answer with a file list") from None
    return [e for e in entries if isinstance(e, dict)]


def _pick(entries: list[dict], base: str) -> tuple[str, Optional[int]]:
    """The newest checkpoint of a voice folder (the highest step in its ``epoch=E-step=S.ckpt`` name)."""
    found = [e for e in entries if e.get("type") == "file" and str(e.get("path", "")).endswith(".ckpt")]
    if not found:
        raise InputError(f"there is no released checkpoint for '{base}' in {REPO}; give the path of a .ckpt to --base")

    def step(entry: dict) -> int:
        match = re.search(r"step=(\d+)", entry["path"])
        return int(match[1]) if match else -1

    best = max(found, key=step)
    return best["path"], int(best["size"]) if best.get("size") else None
