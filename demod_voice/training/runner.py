"""The training process of ``piper-train`` (and ``piper-export``): piper-tts's own Lightning trainer, run here.

Worker side. Started by :mod:`demod_voice.training.train` as ``python -m demod_voice.training.runner
SPEC.json``; it reports to its parent as JSON lines on the file descriptor named in
``DEMOD_VOICE_EVENTS_FD`` and writes everything else (Lightning's own messages, warnings, a crash's
traceback) to its stderr, which the parent keeps in ``train.log``. Its licence and its crashes stay here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import DemodVoiceError, InputError, OutputFull, RuntimeFailure
from demod_voice.sandbox import die_with_parent
from demod_voice.training import quality as qualities

log = logging.getLogger("demod_voice.training")

EVENTS_FD = "DEMOD_VOICE_EVENTS_FD"
MODEL_FILE = "model.json"
VOICE_CONFIG = "voice-config.json"
SCRATCH = ".tmp"
"""The trainer's temporary folder, inside the output folder (on the checkpoints' filesystem)."""


class Events:
    """One JSON object per line to the parent."""

    def __init__(self) -> None:
        fd = os.environ.get(EVENTS_FD)
        self.stream = os.fdopen(int(fd), "w", buffering=1, encoding="utf-8") if fd else sys.stdout

    def __call__(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        self("note", text=text)


# --- device --------------------------------------------------------------------------------------


def choose_device(wanted: str, precision: str, send: Events) -> tuple[str, str]:
    """(accelerator, precision) for Lightning, said plainly to the user."""
    import torch

    if wanted != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        send.say(f"training on the GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB), precision {precision}")
        return "gpu", precision
    why = "--cpu was given" if wanted == "cpu" else f"torch {torch.__version__} sees no CUDA GPU"
    if wanted == "gpu":
        send.say(f"warning: --gpu was asked for, but {why}; training on the CPU")
    if precision != "32":
        send.say(f"mixed precision ({precision}) is for GPUs; training in 32-bit")
    send.say(f"training on the CPU ({torch.get_num_threads()} thread(s); {why}): fine for trials, "
             "but a medium voice needs a GPU for a real training")
    return "cpu", "32"


# --- the model's hyper-parameters ----------------------------------------------------------------


def dataset_facts(dataset_dir: Path) -> dict[str, Any]:
    """What the model needs from the dataset's voice config (written by piper-preprocess)."""
    config = json.loads((dataset_dir / "config.json").read_text(encoding="utf-8"))
    return {"sample_rate": int(config["audio"]["sample_rate"]), "num_symbols": int(config["num_symbols"]),
            "num_speakers": int(config.get("num_speakers", 1)), "espeak_voice": config.get("espeak", {}).get("voice", "en-us"),
            "phoneme_type": config.get("phoneme_type", "espeak"), "config": config}


def scratch_hparams(quality: str, data: dict[str, Any]) -> dict[str, Any]:
    """A new voice of ``quality`` for the dataset."""
    hparams: dict[str, Any] = dict(qualities.QUALITIES[quality])
    if data["num_speakers"] > 1:
        hparams["gin_channels"] = 16 if quality == "tiny" else 512
    return hparams


def base_hparams(spec: dict[str, Any], data: dict[str, Any], send: Events) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base checkpoint's cleaned hyper-parameters adapted to the dataset, and its weights."""
    from demod_voice.training import checkpoints

    path = Path(spec["base"])
    ckpt = checkpoints.load(path)
    info = checkpoints.describe(ckpt)
    notes = checkpoints.check_base(info, path, data, spec.get("quality"))
    hparams, dropped = checkpoints.clean_hparams(ckpt.get("hyper_parameters", {}))
    send.say(f"base {path.name}: {info['quality'] or 'custom-size'} voice, {info['num_speakers']} speaker(s), "
             f"{info['num_symbols']} symbols, {info['epochs'] if info['epochs'] is not None else '?'} epoch(s) trained")
    if dropped:
        send.say(f"base cleaned: dropped hyper-parameters this piper-tts does not take or must not load: {', '.join(dropped)}")
    for note in notes:
        send.say(note)
    hparams["num_symbols"] = max(info["num_symbols"], data["num_symbols"])
    hparams["gin_channels"] = (info["gin_channels"] or (16 if info["quality"] == "tiny" else 512)) if data["num_speakers"] > 1 else 0
    return hparams, ckpt["state_dict"]


def model_hparams(spec: dict[str, Any], data: dict[str, Any], send: Events) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
    """Hyper-parameters for ``VitsModel`` (fixed at a run's start, reused by ``--resume``) and warm-start weights."""
    out = Path(spec["output_dir"])
    state = None
    if spec["resume"]:
        return json.loads((out / MODEL_FILE).read_text(encoding="utf-8")), None
    if spec.get("base"):
        hparams, state = base_hparams(spec, data, send)
    else:
        hparams = scratch_hparams(spec.get("quality") or "medium", data)
    hparams.update(num_symbols=max(hparams.get("num_symbols", 0), data["num_symbols"]), num_speakers=data["num_speakers"],
                   sample_rate=data["sample_rate"], batch_size=spec["batch_size"], mos_metric=None, dataset=None)
    if qualities.detect(hparams, data["sample_rate"]) == "tiny":
        hparams[qualities.NARROW_CRITIC] = True  # saved with the run: a resume of an older tiny run keeps piper's critic
    hparams = json.loads(json.dumps(hparams))  # tuples to lists: what the saved copy will give back on resume
    (out / MODEL_FILE).write_text(json.dumps(hparams, indent=2) + "\n", encoding="utf-8")
    return hparams, state


# --- fit -----------------------------------------------------------------------------------------


def fit(spec: dict[str, Any], send: Events) -> None:
    from demod_voice.training import align

    align.install()
    import lightning
    from piper.train.vits.dataset import VitsDataModule
    from piper.train.vits.lightning import VitsModel

    from demod_voice.training import checkpoints, critic
    from demod_voice.training.callbacks import EpochReport, ExportEvery, KeepNewest

    out, dataset = Path(spec["output_dir"]), Path(spec["dataset_dir"])
    keep_scratch_in(out / SCRATCH)
    lightning.seed_everything(spec["seed"], verbose=False)  # the same train/validation split on every resume
    accelerator, precision = choose_device(spec["device"], spec["precision"], send)
    data_facts = dataset_facts(dataset)
    hparams, state = model_hparams(spec, data_facts, send)
    model = VitsModel(**hparams)
    if hparams.get(qualities.NARROW_CRITIC):
        model.model_d = critic.NarrowCritic()  # before the optimisers are made and a checkpoint or base is loaded
    if state is not None:
        send.say(warm_start_note(*checkpoints.warm_start(model, state)))
        del state
    data = VitsDataModule(
        csv_path=dataset / "metadata.csv", audio_dir=dataset / "wavs", cache_dir=out / "cache",
        espeak_voice=data_facts["espeak_voice"], config_path=out / VOICE_CONFIG, voice_name=spec["name"],
        sample_rate=data_facts["sample_rate"], num_symbols=hparams["num_symbols"], num_speakers=data_facts["num_speakers"],
        batch_size=spec["batch_size"], validation_split=spec["validation_split"], num_test_examples=0,
        segment_size=hparams.get("segment_size", 8192), dataset_type="phoneme_ids", trim_silence=False,
        phoneme_type=data_facts["phoneme_type"], num_workers=0 if accelerator == "cpu" else 2,
    )
    exporter = Exporter(spec, hparams, data_facts, send)
    trainer = lightning.Trainer(
        max_epochs=spec["epochs"], accelerator=accelerator, devices=1, precision=precision, logger=False,
        callbacks=[EpochReport(send, spec["epochs"], spec["resume"]), ExportEvery(spec["export_every"], spec["epochs"], exporter),
                   KeepNewest(str(out / "checkpoints"), spec["keep_checkpoints"])],
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(out),
        limit_val_batches=1.0 if int(spec["clips"] * spec["validation_split"]) > 0 else 0,
    )
    resume_from = out / "checkpoints" / "last.ckpt"
    trainer.fit(model, datamodule=data, ckpt_path=str(resume_from) if spec["resume"] else None)
    final = exporter.finish(trainer.current_epoch)
    send("done", voice=str(final), epochs=trainer.current_epoch)


def keep_scratch_in(folder: Path) -> None:
    """Make ``folder`` (emptied first: a stopped save leaves its part there) this process's temporary folder. Lightning
    saves a checkpoint into a temporary file and moves it into place: in $TMPDIR, a tmpfs /tmp held each ~0.6-0.9 GB
    checkpoint in memory, refused it when smaller (ENOSPC), and the move across filesystems was a copy that a stop
    could cut short in checkpoints/. Beside the checkpoints the move is a rename, whole or not at all."""
    import shutil
    import tempfile

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(folder)


def warm_start_note(copied: int, total: int) -> str:
    """What a warm start took from the base ("the rest start fresh" only where there is a rest)."""
    return f"warm start: {copied} of {total} weight tensors copied from the base{'; the rest start fresh' if copied < total else ''}"


class Exporter:
    """Exports the model being trained into ``samples/epoch-K/`` and speaks the sample sentences with it."""

    def __init__(self, spec: dict[str, Any], hparams: dict[str, Any], data: dict[str, Any], send: Events) -> None:
        self.out, self.name, self.hparams, self.send = Path(spec["output_dir"]), spec["name"], hparams, send
        self.sentences, self.language = spec.get("sentences") or [], data["espeak_voice"]
        self.texts = spec.get("dataset_texts") or []
        self.last: Optional[tuple[int, Path]] = None

    def __call__(self, epoch: int, pl_module: Any) -> None:
        from demod_voice.training import export

        started = time.perf_counter()
        folder = self.out / "samples" / f"epoch-{epoch}"
        trained = json.loads((self.out / VOICE_CONFIG).read_text(encoding="utf-8"))
        config = export.voice_config(trained, self.hparams, self.language)
        state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        onnx = export.write_voice(export.generator(self.hparams, state), folder / f"{self.name}.onnx", config)
        sentences = export.sample_sentences(config, self.texts, self.sentences)
        wavs = export.speak_samples(onnx, folder, sentences)
        self.last = (epoch, onnx)
        self.send("export", epoch=epoch, voice=str(onnx), samples=len(wavs), seconds=round(time.perf_counter() - started, 2),
                  sentences=list(sentences))

    def finish(self, epochs_done: int) -> Path:
        """The final voice, ``<name>.onnx`` + ``.onnx.json`` in the output folder (the last epoch's export)."""
        from demod_voice.training.train import copy_voice

        if self.last is None or self.last[0] != epochs_done:
            raise RuntimeFailure(f"training ended after epoch {epochs_done} without an export of it; rerun with --resume")
        return copy_voice(self.last[1], self.out / f"{self.name}.onnx")


# --- export alone --------------------------------------------------------------------------------


def export_checkpoint(spec: dict[str, Any], send: Events) -> None:
    """``piper-export``: a checkpoint from anywhere, loaded as plain data, to a voice."""
    from demod_voice.training import checkpoints, export

    path = Path(spec["checkpoint"])
    ckpt = checkpoints.load(path)
    info = checkpoints.describe(ckpt)
    hparams, dropped = checkpoints.clean_hparams(ckpt.get("hyper_parameters", {}))
    if dropped:
        send.say(f"checkpoint cleaned: dropped hyper-parameters this piper-tts does not take or must not load: {', '.join(dropped)}")
    if not info["sample_rate"]:
        raise InputError(f"{path} does not say its sample rate (no sample_rate hyper-parameter); it cannot be exported as a voice")
    hparams.update(num_symbols=info["num_symbols"], num_speakers=info["num_speakers"], gin_channels=info["gin_channels"])
    config = json.loads(Path(spec["config"]).read_text(encoding="utf-8")) if spec.get("config") else None
    if config is not None:
        export.check_fits(config, info, Path(spec["config"]).name)
    voice = export.write_voice(export.generator(hparams, ckpt["state_dict"]), Path(spec["output"]),
                               export.voice_config(config, hparams, spec.get("language") or "en-us"))
    send("done", voice=str(voice), quality=info["quality"], epochs=info["epochs"])


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # End (SIGTERM, as the command's own Ctrl-C would) when the piper-train that started this process ends, however it
    # ends: a closed terminal or kill -9 of the command left the trainer running, and a --resume trained beside it.
    die_with_parent(signal.SIGTERM, int(os.environ.get("DEMOD_VOICE_PARENT_PID", "0") or 0))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    send = Events()
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        (fit if spec["mode"] == "fit" else export_checkpoint)(spec, send)
    except DemodVoiceError as err:
        send("error", kind=type(err).__name__, message=str(err))
        return err.exit_code
    except Exception as err:  # noqa: BLE001 - anything else from the trainer becomes one line for the user
        traceback.print_exc()
        failure = full_disk(spec, err) or RuntimeFailure(f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
        send("error", kind=type(failure).__name__, message=str(failure))
        return failure.exit_code
    return 0


def full_disk(spec: dict[str, Any], err: BaseException) -> Optional[OutputFull]:
    """The run's end as one line when ``err`` (or what it wraps) is a full disk or quota: the folder and what to do,
    the part of a checkpoint that did not fit removed from the scratch folder (it held the space to be freed)."""
    import errno
    import shutil

    cause: Optional[BaseException] = err
    for _ in range(20):  # a chain of causes, not followed for ever
        if cause is None or isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            break
        cause = cause.__cause__ or cause.__context__
    if not isinstance(cause, OSError) or cause.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    if spec["mode"] != "fit":  # piper-export: the voice's folder
        return OutputFull(f"cannot save in {Path(spec['output']).parent}: {cause.strerror or 'the disk is full'}; free some "
                          "space and run the same command again")
    out = Path(spec["output_dir"])
    shutil.rmtree(out / SCRATCH, ignore_errors=True)  # made again by the next run (keep_scratch_in)
    again = "run the same command with --resume" if (out / "checkpoints" / "last.ckpt").exists() else "run the same command again"
    return OutputFull(f"cannot save in {out}: {cause.strerror or 'the disk is full'}; free some space and {again}")


if __name__ == "__main__":
    sys.exit(main())
