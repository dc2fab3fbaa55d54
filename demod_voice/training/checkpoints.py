"""Piper training checkpoints: loaded as plain data, cleaned, described, checked against a dataset, warm-started.

Worker side (imports torch). A checkpoint is a pickle; ``torch.load(weights_only=True)`` unpickles
only tensors and plain containers, so a file from anywhere cannot run code here. The one kind of
object older Piper checkpoints carry beyond that is a ``pathlib`` path in their hyper-parameters
(``dataset: [PosixPath(...)]``), allowed explicitly and turned into a string.
"""

from __future__ import annotations

import inspect
import logging
import pathlib
import re
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError
from demod_voice.paths import os_error
from demod_voice.training import quality as qualities
from demod_voice.training.bases import refuse_voice

log = logging.getLogger(__name__)

DROPPED_ALWAYS = ("dataset", "kwargs", "warmstart_ckpt", "vocoder_warmstart_ckpt")
"""Hyper-parameters never carried over: data paths of someone else's machine, and checkpoints the
model would load by itself at the start of training (only files the user names are loaded)."""

PATH_TYPES = (pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath)


def load(path: Path) -> dict[str, Any]:
    """The checkpoint as plain data; :class:`InputError` for anything that is not a Piper training checkpoint."""
    import zipfile

    import torch

    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    refuse_voice(path)
    try:
        with torch.serialization.safe_globals(list(PATH_TYPES)):
            # Memory-mapped: the optimiser state of a released checkpoint (~2/3 of its ~800 MB) is never read.
            mmap = zipfile.is_zipfile(path)
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except OSError as err:
        raise os_error(f"cannot read the checkpoint {path}", err) from None
    except Exception as err:  # noqa: BLE001 - torch's loaders raise IndexError, KeyError, EOFError... for junk
        raise _unreadable(path, err) from None
    if not isinstance(ckpt, dict) or not any(k.startswith("model_g.") for k in ckpt.get("state_dict", {})):
        raise InputError(f"{path} is not a Piper training checkpoint (it has no model_g weights); an .onnx voice cannot be "
                         "trained further: use the .ckpt it was exported from")
    return ckpt


def _unreadable(path: Path, err: Exception) -> InputError:
    """Why torch could not load ``path`` as plain data, in a line: a forbidden object named, a damaged checkpoint, or a
    file that is no checkpoint at all (a wav given as --base was ``IndexError: pop from empty list``)."""
    import pickle

    text = str(err)
    forbidden = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(err, pickle.UnpicklingError) and forbidden:
        return InputError(f"{path} holds Python objects that are not plain data ({forbidden.group(1)}); refusing to unpickle it")
    with open(path, "rb") as head:
        zipped = head.read(4) == b"PK\x03\x04"  # what torch.save writes; an older torch wrote a bare pickle
    if zipped:
        first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(err).__name__
        return InputError(f"{path} is not a readable PyTorch checkpoint ({first}): it is damaged or cut short (a full disk "
                          "or a stop while it was saved); use another checkpoint")
    return InputError(f"{path} is not a PyTorch checkpoint; give a .ckpt file that piper-train or Piper's trainer saved")


def known_hparams() -> set[str]:
    """The keyword arguments piper-tts's ``VitsModel`` takes."""
    from piper.train.vits.lightning import VitsModel

    return {name for name, p in inspect.signature(VitsModel.__init__).parameters.items()
            if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def clean_hparams(hparams: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Hyper-parameters this piper-tts accepts, paths as strings, no downloads; and the names dropped."""
    known = known_hparams() | {qualities.NARROW_CRITIC}
    clean, dropped = {}, []
    for key, value in hparams.items():
        if key not in known or key in DROPPED_ALWAYS:
            dropped.append(key)
            continue
        clean[key] = _plain(value)
    clean["mos_metric"] = None  # the default downloads a MOS predictor from a model hub
    return clean, sorted(dropped)


def _plain(value: Any) -> Any:
    if isinstance(value, PATH_TYPES):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint is: symbols, speakers, sample rate, quality, epochs trained (read from the weights where possible)."""
    state = ckpt["state_dict"]
    hparams = ckpt.get("hyper_parameters", {})
    emb = state.get("model_g.enc_p.emb.weight")
    speakers = state.get("model_g.emb_g.weight")
    sample_rate = hparams.get("sample_rate")
    return {
        "num_symbols": int(emb.shape[0]) if emb is not None else hparams.get("num_symbols"),
        "num_speakers": int(speakers.shape[0]) if speakers is not None else 1,
        "gin_channels": int(speakers.shape[1]) if speakers is not None else 0,
        "sample_rate": int(sample_rate) if sample_rate else None,
        "quality": qualities.detect(hparams, sample_rate),
        # Lightning saves the 0-based index of the epoch it was in: epoch-2.ckpt (two epochs trained) holds 1.
        "epochs": ckpt["epoch"] + 1 if isinstance(ckpt.get("epoch"), int) else None,
        "global_step": ckpt.get("global_step"),
    }


def check_base(info: dict[str, Any], path: Path, dataset: dict[str, Any], wanted: Optional[str]) -> list[str]:
    """Refuse a base that cannot start this voice (:class:`InputError` with the reason); else notes on what differs."""
    if info["sample_rate"] and info["sample_rate"] != dataset["sample_rate"]:
        raise InputError(f"base checkpoint {path.name} was trained at {info['sample_rate']} Hz but the dataset is "
                         f"{dataset['sample_rate']} Hz: re-run piper-preprocess --sample-rate {info['sample_rate']}, "
                         "or choose a base at the dataset's rate")
    if wanted and info["quality"] != wanted:
        raise InputError(f"base checkpoint {path.name} is a {info['quality'] or 'custom-size'} voice, not --quality {wanted}: "
                         "leave --quality out to train at the base's size, or choose a base of that quality")
    notes = []
    if info["num_symbols"] != dataset["num_symbols"]:
        notes.append(f"the base knows {info['num_symbols']} phoneme ids and the dataset's voice {dataset['num_symbols']}: "
                     "the shared ids keep their trained embeddings")
    if info["num_speakers"] != dataset["num_speakers"]:
        notes.append(f"the base has {info['num_speakers']} speaker(s) and the dataset {dataset['num_speakers']}: "
                     "speaker conditioning starts fresh")
    return notes


def warm_start(model: Any, state: dict[str, Any], minimum_share: float = 0.5) -> tuple[int, int]:
    """Copy every base weight whose name and shape match (the phoneme embedding row by row); return (copied, total).

    :class:`InputError` when less than ``minimum_share`` of the generator's weights could be copied:
    such a base would only pretend to help.
    """
    import torch

    own = model.state_dict()
    copied, generator_total, generator_copied = 0, 0, 0
    with torch.no_grad():
        for name, tensor in own.items():
            base = state.get(name)
            is_generator = name.startswith("model_g.")
            generator_total += tensor.numel() if is_generator else 0
            if base is None:
                continue
            if base.shape == tensor.shape:
                tensor.copy_(base)
            elif name == "model_g.enc_p.emb.weight" and base.shape[1:] == tensor.shape[1:]:
                rows = min(base.shape[0], tensor.shape[0])
                tensor[:rows].copy_(base[:rows])
            else:
                continue
            copied += 1
            generator_copied += tensor.numel() if is_generator else 0
    if generator_total and generator_copied < minimum_share * generator_total:
        raise InputError(f"the base checkpoint shares only {100 * generator_copied / generator_total:.0f}% of its generator "
                         "weights with the model for this dataset; it is not a base for this voice")
    return copied, len(own)
