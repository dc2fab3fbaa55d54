"""``piper-train`` and ``piper-export``, the parent side: preflight, the training process, progress, the voice.

Parent side (no torch): the work runs in :mod:`demod_voice.training.runner`, a separate process
running piper-tts's own Lightning trainer, which reports events back through a pipe. Output folder::

    train.json          the run's settings (``--resume`` reads them back)
    model.json          the model's hyper-parameters, fixed at the first start
    train.log           everything the trainer printed (read it when a run fails)
    .tmp/               the trainer's temporary files (a checkpoint being saved), emptied at each start
    checkpoints/        the newest --keep-checkpoints epochs; last.ckpt links to the newest
    samples/epoch-K/    the voice as of epoch K, and sample sentences it spoke
    <name>.onnx(.json)  the final voice
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError, Interrupted, OutputFull, RuntimeFailure, UsageError, from_wire
from demod_voice.logs import PROG, line
from demod_voice.paths import LOCK, OutputLock, copy_together, os_error, write_text_atomic
from demod_voice.sandbox import python_child
from demod_voice.speech_text.espeak import check_espeak_voice
from demod_voice.training import preflight
from demod_voice.training import quality as qualities
from demod_voice.training.bases import HUB, checkpoints_dir, hyper_parameters, refuse_folder, refuse_voice, resolve_base
from demod_voice.training.heard import EpochListener

log = logging.getLogger(__name__)

SPEC = "train.json"
STATE = "train-state.json"
LOG = "train.log"
SEGMENT = 8192


@dataclass(frozen=True)
class TrainRequest:
    """A ``piper-train`` request as typed values."""

    dataset_dir: Path
    """A ``piper-preprocess`` output folder."""
    output_dir: Path
    """Where checkpoints, samples and the final voice go."""
    name: str
    """The voice's name: ``<name>.onnx``, and its name in the voice cache with ``install``."""
    epochs: int = 500
    """Train until this many epochs are done (counting those before a ``--resume``)."""
    batch_size: Optional[int] = None
    """Clips per step; ``None``: the run's own on ``--resume``, else 16 (:data:`RUN_DEFAULTS`)."""
    quality: Optional[str] = None
    """Voice size; ``None``: the base checkpoint's, or ``medium`` from scratch."""
    base: Optional[str] = None
    """Checkpoint to fine-tune from (recommended): a path, or a released voice's name; ``None`` trains from scratch."""
    resume: bool = False
    export_every: Optional[int] = None
    """Export and speak the samples every this many epochs (and after the last); ``None``: as :attr:`batch_size`."""
    keep_checkpoints: Optional[int] = None
    """The newest checkpoints kept; ``None``: as :attr:`batch_size`."""
    sentences: tuple[str, ...] = ()
    """Sample sentences (default: three English ones for English voices, else dataset lines)."""
    device: str = "auto"
    """``auto`` (a GPU when torch sees one), ``gpu`` or ``cpu``."""
    precision: str = "32"
    validation_split: Optional[float] = None
    """Share of clips held out for validation; ``None``: the run's own on ``--resume``, else 0.05 (:data:`RUN_FIXED`)."""
    seed: Optional[int] = None
    """Seed of the train/validation split (and the training); ``None``: as :attr:`validation_split`."""
    install_to: Optional[Path] = None
    """Copy the final voice into this voice folder (the cache's ``piper/``)."""
    cache: Optional[Path] = None
    """The cache folder, where base checkpoints named by voice are downloaded."""
    hub: str = HUB
    """Where released checkpoints are looked up (Hugging Face, or a mirror)."""
    progress: bool = True
    listen: Optional[Callable[[Path, list[str]], str]] = None
    """Scores an export's samples (voice, sentences) -> a phrase for its progress line, such as its word error rate
    (:class:`~demod_voice.training.heard.EpochListener`); ``None``: not scored."""


RUN_DEFAULTS = {"batch_size": 16, "export_every": 50, "keep_checkpoints": 2}
"""Settings a ``--resume`` keeps as the run last had them unless given again, and their values for a new run. A resume
typed without ``--batch-size`` trained at 16, and a small dataset started at 2 was refused ("lower --batch-size")."""

RUN_FIXED = {"validation_split": 0.05, "seed": 1234}
"""Settings a ``--resume`` always keeps as the run began with them (given again otherwise, it says so), and their values for
a new run: the clips a run holds out for validation stay the same on every resume. Another given on a resume was replaced
by the run's own without a word."""


@dataclass(frozen=True)
class ExportRequest:
    """A ``piper-export`` request."""

    checkpoint: Path
    output: Path
    config: Optional[Path] = None
    """The training's voice config (``config.json`` of the dataset); default: the piper-train run's own when the checkpoint
    is in one (``RUN/checkpoints/``), else built from the checkpoint."""
    language: Optional[str] = None
    """The espeak-ng voice when no voice config is given or found (``None``: the run's, else ``en-us``)."""
    progress: bool = True


@dataclass
class Outcome:
    """What a finished run left."""

    voice: Path
    epochs: int
    installed: Optional[Path] = None
    events: list[dict[str, Any]] = field(default_factory=list)


def say(request: Any, text: str) -> None:
    if request.progress:
        print(line(text), file=sys.stderr, flush=True)


# --- piper-train ---------------------------------------------------------------------------------


def run_training(request: TrainRequest) -> Outcome:
    """Check everything, train in a separate process, deliver the voice; errors are :class:`DemodVoiceError`."""
    preflight.check_dependencies()
    request = _settled(request)
    _check_request(request)
    spec = _spec(request)
    state = _load_state(request.output_dir) if request.resume else {}
    if request.resume:
        state["epochs_done"] = _epochs_saved(request.output_dir, state)
        if request.epochs <= state["epochs_done"]:
            finished = _finished(request, spec["name"], state["epochs_done"])
            if finished is not None:
                return finished
            voice = request.output_dir / f"{spec['name']}.onnx"
            mine = f" (its voice: {voice}; --install to install it)" if voice.is_file() and request.install_to is None else ""
            raise UsageError(f"the run in {request.output_dir} has trained {state['epochs_done']} epoch(s) already{mine}; "
                             f"pass --epochs larger than that to train on")
    quality, segment = _model_size(request, spec)
    dataset = preflight.read_dataset(request.dataset_dir, segment)
    preflight.check_split(dataset, request.batch_size, request.validation_split)
    if isinstance(request.listen, EpochListener):
        request.listen.check(dataset.espeak_voice)
    if request.resume:
        _check_same_shape(request.output_dir, dataset)
    base = None
    if request.base and not request.resume:
        base = resolve_base(request.base, request.cache or Path.cwd(), request.hub, request.progress)
    preflight.check_disk(request.output_dir, _disk_needed(request, quality, dataset, base, state.get("epochs_done", 0)))
    spec.update(clips=dataset.clips, dataset_texts=dataset.texts, base=str(base) if base else spec["base"])
    try:
        request.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a read-only place (root passes every permission check before this)
        raise os_error(f"cannot create {request.output_dir}", err) from None
    # A training run holds its folder from here (an flock the trainer inherits: held while either lives), so nothing
    # below (the feature cache, the settings) touches a folder a leftover trainer still writes into.
    with OutputLock(request.output_dir, "training run") as lock:
        _forget_stale_features(request.output_dir / "cache", request.dataset_dir)
        # on --resume too: the settings it goes on with are those the next --resume keeps (RUN_DEFAULTS)
        write_text_atomic(request.output_dir / SPEC, json.dumps({k: v for k, v in spec.items() if k != "mode"}, indent=2) + "\n")
        say(request, f"dataset: {dataset.clips} clips at {dataset.sample_rate} Hz, {dataset.num_speakers} speaker(s); "
                     f"{'resuming' if request.resume else 'fine-tuning ' + str(request.base) if request.base else 'training from scratch'}"
                     f", {request.epochs} epoch(s), batch {request.batch_size}")
        done = _run(request, spec, ProgressPrinter(request, state), lock)
    voice = Path(done["voice"])
    outcome = Outcome(voice, int(done["epochs"]))
    if request.install_to is not None:
        outcome.installed = _install_trained(voice, request.install_to, request.name)
        say(request, f"installed as '{request.name}': {PROG} piper-infer {request.name} 'Some text.'")
    say(request, f"voice ready: {voice} ({PROG} piper-infer {voice} 'Some text.')")
    return outcome


def _settled(request: TrainRequest) -> TrainRequest:
    """``request`` with each of :data:`RUN_DEFAULTS` not given set: to the run's own on ``--resume``, else the default;
    and each of :data:`RUN_FIXED` the run's own on ``--resume`` (another given is said to be unused), else as given."""
    first = _run_settings(request.output_dir) if request.resume else {}
    settled = {}
    for key, default in RUN_DEFAULTS.items():
        kept = first.get(key)
        settled[key] = getattr(request, key) if getattr(request, key) is not None else kept if isinstance(kept, int) else default
    for key, default in RUN_FIXED.items():
        given, kept = getattr(request, key), first.get(key)
        if isinstance(kept, bool) or not isinstance(kept, (int, float)):
            kept = None
        if given is not None and kept is not None and given != kept:
            flag = f"--{key.replace('_', '-')}" if key == "validation_split" else key
            say(request, f"{flag} {given} is not used: the run keeps its own, {kept} (a resume holds out the same clips for "
                         "validation as the run began with; start a new --output-dir for another)")
        settled[key] = kept if kept is not None else given if given is not None else default
    return replace(request, **settled)


def _run_settings(out: Path) -> dict[str, Any]:
    """The settings of the run in ``out`` (its ``train.json``), or none: a run folder without that file (copied without it,
    say) ended a ``--resume`` with "internal error: FileNotFoundError"; it goes on with the settings given."""
    try:
        first = json.loads((out / SPEC).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return first if isinstance(first, dict) else {}


def _finished(request: TrainRequest, name: str, epochs: int) -> Optional[Outcome]:
    """``--install`` on a run already trained as far as asked: its voice of that epoch installed without training (there
    was no way to install a voice trained without ``--install``: the same command with it was refused as done).
    ``None`` when there is nothing to install (no ``--install``, or that epoch was never exported)."""
    exported = request.output_dir / "samples" / f"epoch-{epochs}" / f"{name}.onnx"
    if request.install_to is None or not exported.is_file() or not Path(f"{exported}.json").is_file():
        return None
    with OutputLock(request.output_dir, "training run"):  # not while a trainer is still writing there
        say(request, f"the run has trained {epochs} epoch(s) already: installing its voice of epoch {epochs}")
        voice = copy_voice(exported, request.output_dir / f"{name}.onnx")  # also when the run was stopped before it
        outcome = Outcome(voice, epochs, install_voice(voice, request.install_to, name))
    say(request, f"installed as '{name}': {PROG} piper-infer {name} 'Some text.'")
    return outcome


def _check_same_shape(out: Path, dataset: preflight.Dataset) -> None:
    """A resumed run's dataset has the sample rate and speakers the model was made for (a 16 kHz dataset trained a
    22.05 kHz model and exported a voice that claimed 16 kHz)."""
    try:
        model = json.loads((out / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    rate, speakers = model.get("sample_rate"), model.get("num_speakers", 1)
    if rate and rate != dataset.sample_rate:
        raise InputError(f"the run in {out} trains a {rate} Hz voice but this dataset is {dataset.sample_rate} Hz: resume with "
                         f"its own dataset (piper-preprocess --sample-rate {rate}), or start a new --output-dir")
    if speakers != dataset.num_speakers:
        raise InputError(f"the run in {out} trains {speakers} speaker(s) but this dataset has {dataset.num_speakers}: resume with "
                         "its own dataset, or start a new --output-dir")


def _forget_stale_features(cache: Path, dataset_dir: Path) -> None:
    """Empty the trainer's feature cache when the dataset changed since it was filled. piper's trainer keys a clip's
    cached audio and spectrogram by its row and the start of its text, so a clip recorded again (or rows reordered)
    went on training from the old recording after a --resume."""
    stamp = cache / ".dataset"
    now = _dataset_stamp(dataset_dir)
    try:
        known = stamp.read_text(encoding="utf-8")
    except OSError:
        known = None
    if known == now:
        return
    if known is not None or (cache.is_dir() and any(cache.iterdir())):
        shutil.rmtree(cache, ignore_errors=True)
        log.info("the dataset changed since the trainer's feature cache was made: it is made again")
    cache.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, now)


def _dataset_stamp(dataset_dir: Path) -> str:
    """What the cached features depend on: metadata.csv's bytes and each clip's size and time."""
    digest = hashlib.sha256((dataset_dir / "metadata.csv").read_bytes())
    for wav in sorted((dataset_dir / "wavs").glob("*.wav")):
        stat = wav.stat()
        digest.update(f"{wav.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _check_request(request: TrainRequest) -> None:
    out = request.output_dir
    check_voice_name(request.name)  # the voice is written as NAME.onnx in the output folder, installed or not
    _check_sentences(request.sentences)
    if request.resume:
        if not (out / "checkpoints" / "last.ckpt").exists() or not (out / "model.json").is_file():
            if (out / LOCK).is_file():  # a run started there has not written its first checkpoint yet: say it is busy
                with OutputLock(out, "training run"):
                    pass
            raise InputError(f"there is no training run to resume in {out} (no checkpoints/last.ckpt); leave out --resume to start one")
        _check_resumable(out / "checkpoints" / "last.ckpt")
        return
    # a first checkpoint whose save failed (a full disk, a stop) leaves checkpoints/ empty: "run the same command again" was
    # then refused as a run to --resume, and --resume as no run
    if any((out / "checkpoints").glob("*.ckpt")):
        raise InputError(f"{out} already holds a training run: pass --resume to continue it, or choose a new --output-dir")
    if request.quality and request.base is None:
        rate = qualities.SAMPLE_RATES[request.quality]
        if rate and (request.dataset_dir / "config.json").is_file():
            have = preflight.read_config(request.dataset_dir / "config.json").sample_rate
            if have != rate:
                raise InputError(f"--quality {request.quality} voices are {rate} Hz but the dataset is {have} Hz: "
                                 f"re-run piper-preprocess --sample-rate {rate}, or choose another --quality")


def _check_sentences(sentences: tuple[str, ...]) -> None:
    """Each ``--sample-text`` has something to speak: an empty one trained every epoch up to the first export, which then
    ended the run with wave's "Error: # channels not specified" (the voice spoke no audio)."""
    blank = next((text for text in sentences if not any(c.isalnum() for c in text)), None)
    if blank is not None:
        raise UsageError(f"--sample-text {blank!r} has no words to speak: give a sentence, or leave --sample-text out for "
                         "the default ones")


def _check_resumable(last: Path) -> None:
    """``last.ckpt`` (a link to the newest checkpoint) is a whole checkpoint: one cut short (a full disk, a machine that
    lost power while saving) ended a resume with torch's raw ``PytorchStreamReader failed reading zip archive``. A
    checkpoint is a zip archive; a cut one has no central directory at its end."""
    import zipfile

    if zipfile.is_zipfile(last):
        return
    newest = last.resolve()
    intact = sorted((p for p in last.parent.glob("epoch-*.ckpt") if p.resolve() != newest and zipfile.is_zipfile(p)),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    way = (f"resume from the one before it: ln -sfn {intact[0].name} {last}, then run the same command with --resume"
           if intact else "no earlier checkpoint is whole: start the run again in a new --output-dir")
    named = f" ({newest.name})" if newest.name != last.name else ""
    raise InputError(f"the newest checkpoint {last.name}{named} is damaged (cut short: a full disk or a stop while it was "
                     f"saved); {way}")


def _spec(request: TrainRequest) -> dict[str, Any]:
    """What the training process is told; on ``--resume`` the first run's choices win."""
    # ``listen`` is the parent's (its settings held the whole config, API keys included, and were written to train.json)
    spec = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(request).items() if k not in ("install_to", "progress", "listen")}
    spec["sentences"] = list(request.sentences)
    if request.resume:
        first = _run_settings(request.output_dir)
        if request.quality and first.get("quality") and request.quality != first["quality"]:  # the same command may rerun
            raise UsageError(f"the run in {request.output_dir} trains a {first['quality']} voice: --resume continues it at "
                             f"that size; give --quality {first['quality']} or leave it out (it was silently ignored)")
        if first.get("name") and request.name != first["name"]:  # its voice, samples and install are all under one name
            raise UsageError(f"the run in {request.output_dir} makes the voice '{first['name']}': --resume keeps that name; "
                             f"give --name {first['name']} or leave it out")
        for key in ("name", "quality", "base"):  # and validation_split, seed: _settled
            spec[key] = first.get(key, spec[key])
        spec["sentences"] = list(request.sentences) or first.get("sentences", [])
    spec["mode"] = "fit"
    return spec


def check_resumed_base(output_dir: Path, base: str, cache: Path) -> None:
    """``--base`` given with ``--resume``: fine when it is the base the run was fine-tuned from (a stopped or failed
    fine-tune is told to "run the same command with --resume", and that command holds --base: it was refused); else
    :class:`UsageError`. The base is not read again: it is in the run's weights."""
    first = _run_settings(output_dir).get("base")
    if not isinstance(first, str) or not first:
        raise UsageError("--base starts a new run; --resume continues one (its base is already in its weights): give one of them")
    given = Path(base).expanduser()
    if given.absolute() == Path(first) or Path(first) == checkpoints_dir(cache) / f"{base}.ckpt":
        return
    raise UsageError(f"the run in {output_dir} was fine-tuned from {first}: --resume goes on from its own checkpoints (that "
                     "base is already in its weights); leave out --base, or start a new --output-dir to fine-tune from another")


def voice_name(output_dir: Path, given: Optional[str], resume: bool) -> str:
    """The voice's name: ``given``, else the run's own on ``--resume`` (its ``train.json``), else the output folder's. A
    resume without ``--name`` installed the voice under the folder's name while the run's files kept the first one."""
    if resume and given is None:
        try:
            first = json.loads((output_dir / SPEC).read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            first = None  # no run there: the resume is refused as such
        if isinstance(first, str) and first:
            return first
    return given or output_dir.name


def _disk_needed(request: TrainRequest, quality: str, dataset: preflight.Dataset, base: Optional[Path], done: int) -> int:
    """Bytes the run adds to its folder at its fullest. Each epoch saves a checkpoint before the oldest past
    ``--keep-checkpoints`` is deleted, so the run holds one more than it keeps, at most, but never more new ones than it
    has epochs left, and a resumed run's checkpoints are on disk already. Counting keep + 1 new checkpoints always
    refused a one-epoch run (or a resume) that needed one, on a disk with room for two less than that."""
    if base is not None and request.quality is None:  # the base's size, known where it is a piper-train run's
        quality = _run_quality(base) or quality
    checkpoint = qualities.checkpoint_bytes(quality) if quality in qualities.PARAMETERS else qualities.checkpoint_bytes("high")
    if base is not None and quality != "tiny":  # a new tiny run trains the narrow critic, whatever critic its base had
        checkpoint = max(checkpoint, base.stat().st_size)
    epochs = max(1, request.epochs - done)
    folder = request.output_dir / "checkpoints"
    sizes = [p.stat().st_size for p in folder.glob("epoch-*.ckpt")] if folder.is_dir() else []
    held = len(sizes)
    # a resumed run saves what it holds: a tiny run begun before the narrow critic saves ~570 MB checkpoints, not ~8 MB
    checkpoint = max([checkpoint, *sizes])
    new = min(epochs, max(1, request.keep_checkpoints + 1 - held))
    exports = (epochs // max(1, request.export_every) + 2) * qualities.voice_bytes(quality)
    cache = 0 if (request.output_dir / "cache").is_dir() else 6 * dataset.wav_bytes
    return new * checkpoint + exports + cache


def _model_size(request: TrainRequest, spec: dict[str, Any]) -> tuple[str, int]:
    """The quality of the voice trained and its training segment in samples (clips shorter than it are refused): the run's
    own model on ``--resume``, the base's without ``--quality``, else ``--quality``'s (``medium``). A
    fine-tune from one's own tiny trial, and its resumes, were checked with medium's 0.37 s segment, not tiny's 0.09 s,
    and a resume of it was asked for disk as a medium voice's."""
    quality = spec["quality"] or "medium"
    model = None
    if request.resume:
        model = _run_model(request.output_dir)
    elif spec["base"] and request.quality is None:
        model = _base_model(Path(spec["base"]).expanduser())
    if model is None:
        return quality, qualities.QUALITIES.get(quality, {}).get("segment_size", SEGMENT)
    segment = model.get("segment_size", SEGMENT)
    return _model_quality(model) or quality, segment if isinstance(segment, int) else SEGMENT


def _run_model(run: Path) -> Optional[dict[str, Any]]:
    """The hyper-parameters of the piper-train run in ``run`` (its ``model.json``); ``None`` when it holds none."""
    try:
        model = json.loads((run / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return model if isinstance(model, dict) else None


def _base_model(checkpoint: Path) -> Optional[dict[str, Any]]:
    """The hyper-parameters of a base checkpoint: its piper-train run's ``model.json`` when it is in a run's
    ``checkpoints/``, else those saved in the checkpoint (read without torch); ``None`` when neither can be read."""
    model = _run_model(checkpoint.parent.parent) if checkpoint.parent.name == "checkpoints" else None
    return model if model is not None else hyper_parameters(checkpoint) if checkpoint.is_file() else None


def _run_quality(checkpoint: Path) -> Optional[str]:
    """The quality of a base checkpoint (:func:`_base_model`); ``None`` when unknown. A fine-tune from one's own tiny trial
    without ``--quality`` was counted as a medium voice, ~850 MB a checkpoint for ~8 MB ones."""
    model = _base_model(checkpoint)
    return _model_quality(model) if model is not None else None


def _model_quality(model: dict[str, Any]) -> Optional[str]:
    try:
        return qualities.detect(model, model.get("sample_rate"))
    except (AttributeError, TypeError):  # a model.json of another shape: a size of its own
        return None


def _epochs_saved(out: Path, state: dict[str, Any]) -> int:
    """Epochs in the newest checkpoint (``last.ckpt`` links to ``epoch-K.ckpt``), which ``--resume`` goes on from. The
    progress state counts an epoch as it ends, before its checkpoint is saved: after a save that failed (a full disk) or a
    stop in between, it said 5 while the newest checkpoint held 4, and ``--resume --epochs 5`` was refused as done."""
    match = re.fullmatch(r"epoch-(\d+)\.ckpt", (out / "checkpoints" / "last.ckpt").resolve().name)
    return int(match.group(1)) if match else int(state.get("epochs_done", 0))


def _load_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class ProgressPrinter:
    """Turns the trainer's events into one line each on stderr, and remembers how far the run got."""

    def __init__(self, request: TrainRequest, state: dict[str, Any]) -> None:
        self.request, self.state = request, state
        self.seconds: list[float] = []

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "note":
            say(self.request, event["text"])
        elif kind == "start":
            where = f"resumed after epoch {event['epoch']}" if event["resumed"] else "started"
            say(self.request, f"{where}: {event['steps_per_epoch']} steps per epoch, optimizer at step {event['optimizer_step']}, "
                              f"global step {event['global_step']}")
        elif kind == "epoch":
            self._epoch(event)
        elif kind == "export":
            heard = self.request.listen(Path(event["voice"]), event.get("sentences", [])) if self.request.listen else ""
            say(self.request, f"epoch {event['epoch']}: voice and {event['samples']} sample(s) in {Path(event['voice']).parent} "
                              f"({event['seconds']:.1f} s){'; ' + heard if heard else ''}")

    def _epoch(self, event: dict[str, Any]) -> None:
        self.seconds.append(event["seconds"])
        mean = sum(self.seconds) / len(self.seconds)
        left = (event["epochs"] - event["epoch"]) * mean
        losses = "  ".join(f"{k} {v:.3f}" for k, v in event["losses"].items())
        say(self.request, f"epoch {event['epoch']}/{event['epochs']}  {losses}  {event['seconds']:.1f} s/epoch  "
                          f"ETA {_duration(left)}")
        self.state["epochs_done"] = event["epoch"]
        write_text_atomic(self.request.output_dir / STATE, json.dumps(self.state) + "\n")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


# --- the process ---------------------------------------------------------------------------------


def _run(request: Any, spec: dict[str, Any], on_event: Callable[[dict[str, Any]], None],
         lock: Optional[OutputLock] = None) -> dict[str, Any]:
    """Run the runner with ``spec``; feed its events to ``on_event``; return its ``done`` event. ``lock``: the output
    folder's, which the runner inherits (held while it lives, should this process end first)."""
    folder = Path(spec["output_dir"]) if spec["mode"] == "fit" else Path(spec["output"]).parent
    spec_path = folder / (".train-spec.json" if spec["mode"] == "fit" else f".{Path(spec['output']).name}.export.json")
    log_path = folder / (LOG if spec["mode"] == "fit" else f".{Path(spec['output']).name}.export.log")
    try:
        write_text_atomic(spec_path, json.dumps(spec))
        log_file = open(log_path, "ab" if spec["mode"] == "fit" else "wb")  # noqa: SIM115 - closed by the with below
    except OSError as err:  # a nearly full disk: the few bytes of the process's settings did not fit
        spec_path.unlink(missing_ok=True)
        raise os_error(f"cannot write in {folder}", err) from None
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["DEMOD_VOICE_PARENT_PID"] = str(os.getpid())  # the runner ends with this process (sandbox.die_with_parent)
    done: dict[str, Any] = {}
    with log_file:
        read_end, write_end = os.pipe()
        env["DEMOD_VOICE_EVENTS_FD"] = str(write_end)
        process = subprocess.Popen([*python_child(module="demod_voice.training.runner"), str(spec_path)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                   pass_fds=(write_end, *((lock.fileno(),) if lock is not None else ())), start_new_session=True)
        os.close(write_end)
        try:
            with os.fdopen(read_end, encoding="utf-8") as events:
                for line in events:
                    event = json.loads(line)
                    if event["event"] in ("done", "error"):
                        done = event
                    else:
                        on_event(event)
            code = process.wait()
        except KeyboardInterrupt:
            raise _interrupted(request, spec, process, log_path) from None
        finally:
            spec_path.unlink(missing_ok=True)
    if done.get("event") == "error":
        hint = f"; the whole log is in {log_path}" if done["kind"] == "RuntimeFailure" else ""
        if not hint and spec["mode"] != "fit":  # an export refused says why in its one line: its log was left behind
            log_path.unlink(missing_ok=True)
        raise from_wire(done["kind"], done["message"] + hint)
    if code != 0 or not done:
        raise RuntimeFailure(f"the training process died (exit code {code}): {_last_line(log_path)}; the whole log is in {log_path}")
    if spec["mode"] != "fit":  # an export's log is for its failure: one per export was left in the voice's folder for good
        log_path.unlink(missing_ok=True)
    return done


def _interrupted(request: Any, spec: dict[str, Any], process: subprocess.Popen, log_path: Path) -> Interrupted:
    """Ctrl-C: the process stopped, and what the user has and may run next."""
    if spec["mode"] != "fit":  # an export ends at once; its voice is written whole or not at all
        _stop(process, request)
        log_path.unlink(missing_ok=True)  # kept for a failure; a stop's was left in the voice's folder
        return Interrupted("the export was stopped: run the same command again to export the voice")
    # the trainer ends after its step: silence for up to STOP_WAIT s read as a hang. Which checkpoint is kept is said once
    # it has ended: at an epoch's end its checkpoint may be being saved right now.
    say(request, f"stopping: the trainer finishes its current step (or the checkpoint it is saving) and ends, up to {STOP_WAIT} "
                 "s; the steps since the newest checkpoint are not saved (Ctrl-C again ends it now)")
    _stop(process, request)
    folder = Path(spec["output_dir"])
    if (folder / "checkpoints" / "last.ckpt").exists():
        return Interrupted("training stopped; the newest checkpoint is kept: run the same command with --resume to go on")
    # the first epoch was cut short: there is nothing to --resume, and the same command (without it) starts again
    return Interrupted(f"stopped before a checkpoint was written; nothing in {folder} to resume from: run the same "
                       "command again (without --resume) to start over")


STOP_WAIT = 20
"""Seconds the trainer gets to end its step after Ctrl-C (a CPU step of a medium voice takes ~16 s)."""


def _stop(process: subprocess.Popen, request: Any) -> None:
    """Stop the training process's group; its current step (or a checkpoint being written) gets a moment to finish, unless
    a second Ctrl-C comes (it ended the command with a bare "interrupted" while the trainer went on)."""
    for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
        except KeyboardInterrupt:
            say(request, "ending it now")
            continue


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "it printed nothing"


# --- piper-export and installing -----------------------------------------------------------------


def run_export(request: ExportRequest) -> Path:
    """Export a checkpoint to ``request.output`` (+ ``.onnx.json``) in a separate process."""
    preflight.check_dependencies()
    refuse_folder(request.checkpoint)
    if not request.checkpoint.is_file():
        raise InputError(f"checkpoint {request.checkpoint} does not exist")
    refuse_voice(request.checkpoint)
    if request.config is not None and not request.config.is_file():
        raise InputError(f"voice config {request.config} does not exist")
    config = request.config or (_run_voice_config(request.checkpoint) if request.language is None else None)
    if config is not None:  # one that is not a voice's (train.json, a typo) failed after the checkpoint loaded, or was
        # written as the voice's .onnx.json, a voice that piper-infer refused
        preflight.read_config(config, "give the training's voice config: its dataset's config.json (piper-preprocess "
                                      "wrote it) or a voice's .onnx.json")
    if config is None:  # the voice config names the espeak voice otherwise
        check_espeak_voice(request.language or "en-us")
    elif request.config is None:
        say(request, f"voice config: {config} (the training run's: its language, phoneme map and speaker names)")
    spec = {"mode": "export", "checkpoint": str(request.checkpoint), "output": str(request.output),
            "config": str(config) if config else None, "language": request.language or "en-us"}
    done = _run(request, spec, lambda event: say(request, event["text"]) if event["event"] == "note" else None)
    return Path(done["voice"])


def _run_voice_config(checkpoint: Path) -> Optional[Path]:
    """The voice config of the piper-train run holding ``checkpoint`` (``RUN/checkpoints/epoch-K.ckpt``), if any: built from
    the checkpoint alone, a run's voice spoke with en-us phonemes whatever its language, and its speakers lost their names."""
    if checkpoint.parent.name != "checkpoints":
        return None
    config = checkpoint.parent.parent / "voice-config.json"
    return config if config.is_file() else None


def check_voice_name(name: str) -> None:
    """:class:`InputError` unless ``name`` can name an installed voice."""
    from demod_voice.models.registry import looks_like_name

    if not looks_like_name(name) or name.startswith(".") or not name.strip():
        raise InputError(f"'{name}' cannot be a voice name (no '/', no .onnx ending); choose another --name")


def install_voice(voice: Path, folder: Path, name: str) -> Path:
    """Copy ``voice`` and its ``.onnx.json`` into the voice folder as ``name``."""
    check_voice_name(name)
    return copy_voice(voice, folder / f"{name}.onnx")


def _install_trained(voice: Path, folder: Path, name: str) -> Path:
    """``--install`` at the end of a training. A failure says that the voice is kept and the command that installs it: a
    plain copy's advice ("run the same command again", "choose another path") was refused as a folder holding a run, or
    read as starting over."""
    try:
        return install_voice(voice, folder, name)
    except (InputError, OutputFull) as err:
        cause = str(err).rsplit("; ", 1)[0]  # os_error's "doing: cause; advice", without its advice
        fix = "free some space" if isinstance(err, OutputFull) else "fix that folder (or set cache_dir in the config)"
        raise type(err)(f"{cause}; the trained voice is kept as {voice}: {fix}, then run the same command with --resume to "
                        "install it (nothing is trained again)") from None


def copy_voice(voice: Path, target: Path) -> Path:
    """Copy ``voice`` and its ``.onnx.json`` to ``target`` (+ ``.json``), both or neither: on a failure (a full disk) a
    voice already there stays as it was, never its old model beside the new config."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_together((voice, target), (Path(f"{voice}.json"), Path(f"{target}.json")))
    except OSError as err:
        raise os_error(f"cannot write the voice {target}", err) from None
    return target
