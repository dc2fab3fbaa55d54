"""``piper-preprocess``: a recorded dataset into what piper-tts's trainer (``piper.train``) reads.

Output folder:
    wavs/<id>.wav       mono 16-bit at the target rate, silence trimmed, loudness normalised
    metadata.csv        id|text|phoneme_ids  (or id|speaker|text|phoneme_ids), for --data.dataset_type phoneme_ids
    config.json         the voice config (sample rate, espeak voice, phoneme map, speaker map)
    report.json         clips kept and dropped (with reasons) and hours per speaker
Clips are processed in parallel; a rerun reprocesses only clips whose audio, text or settings changed.
The resume state is saved as clips finish (and when a run is stopped), so Ctrl-C or a crash costs
only the clips in flight; a clip that fails in an unexpected way is dropped with its reason (and
tried again next run), never the run. Clip ids and speaker names must be plain names: an id such
as ``../../x`` would read and write outside the dataset's folders, and is dropped as unsafe.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import DependencyError, InputError, Interrupted
from demod_voice.paths import atomic_path, os_error, write_text_atomic
from demod_voice.sandbox import die_with_parent
from demod_voice.speech_text.espeak import check_espeak_voice
from demod_voice.training.dataset import TEXT_FILES, Entry, audio_index, check_audio_folder, entry_problem, find_audio, read_metadata, unlisted_audio

log = logging.getLogger(__name__)

STATE = ".preprocess-state.json"
SAVE_EVERY = 2.0
"""Seconds between saves of the resume state while clips finish."""
PEAK_SILENT = 1e-3
CLIPPED_SHARE = 0.001
TRIM_DB = 40.0
PAD_SECONDS = 0.1
TARGET_RMS_DB = -20.0
SHOWN = 20
"""Dropped clips printed one per line (all are in report.json)."""
RAW_LIMIT = 4
"""A recording over this many times the longest clip is too long before its silence is trimmed (and is not decoded)."""


@dataclass(frozen=True)
class Settings:
    """What shapes each processed clip (part of every clip's fingerprint)."""

    sample_rate: int = 22050
    espeak_voice: str = "en-us"
    min_seconds: float = 0.6
    max_seconds: float = 15.0


@dataclass(frozen=True)
class PreprocessRequest:
    """A ``piper-preprocess`` request as typed values."""

    input_dir: Path
    output_dir: Path
    settings: Settings
    layout: str = "auto"
    workers: int = 1
    min_total_seconds: float = 300.0
    progress: bool = True
    """Progress bars on stderr."""
    quiet: bool = False
    """No report lines on stderr."""


@dataclass
class ClipResult:
    """What happened to one clip."""

    clip_id: str
    line: int
    status: str  # "kept" or "dropped"
    reason: str = ""
    seconds: float = 0.0
    speaker: Optional[str] = None
    text: str = ""
    phoneme_ids: Optional[list[int]] = None
    fingerprint: str = ""
    recorded_rate: int = 0
    """The recording's own sample rate (0: not read)."""


# --- per clip (runs in worker processes) -------------------------------------------------------

_PHONEMIZER: Any = None


def _phonemize(text: str, voice: str) -> list[int]:
    global _PHONEMIZER
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP, phonemes_to_ids
    from piper.phonemize_espeak import EspeakPhonemizer

    if _PHONEMIZER is None:
        _PHONEMIZER = EspeakPhonemizer()
    ids: list[int] = []
    for sentence in _PHONEMIZER.phonemize(voice, text):
        if sentence:
            ids.extend(phonemes_to_ids(sentence, DEFAULT_PHONEME_ID_MAP))
    return ids


def process_clip(entry: Entry, source: Optional[str], target: str, settings: Settings, fingerprint: str) -> ClipResult:
    """Check, convert and phonemise one clip; write ``target`` atomically when kept. Never raises:
    an unexpected failure drops the clip with its reason, unfingerprinted so the next run tries it again."""
    try:
        return _process_clip(entry, source, target, settings, fingerprint)
    except Exception as err:  # noqa: BLE001 - one clip's trouble (a decoder, a full disk) must not end the run
        log.debug("clip %s failed", entry.clip_id, exc_info=True)
        reason = f"failed: {type(err).__name__}: {err}"
        return ClipResult(entry.clip_id, entry.line, "dropped", reason, speaker=entry.speaker, text=entry.text)


def _process_clip(entry: Entry, source: Optional[str], target: str, settings: Settings, fingerprint: str) -> ClipResult:
    result = ClipResult(entry.clip_id, entry.line, "dropped", speaker=entry.speaker, text=entry.text, fingerprint=fingerprint)
    if source is None:
        result.reason = "missing audio"
        return result
    if not entry.text:
        result.reason = "empty transcript"
        return result
    try:
        audio, result.recorded_rate = _prepare_audio(Path(source), settings)
    except _Drop as drop:
        result.reason = str(drop)
        return result
    ids = _phonemize(entry.text, settings.espeak_voice)
    if len(ids) < 3:  # BOS and EOS alone mean nothing was spoken
        result.reason = "unphonemisable text"
        return result
    _write_wav(Path(target), audio, settings.sample_rate)
    result.status, result.seconds, result.phoneme_ids = "kept", len(audio) / settings.sample_rate, ids
    return result


class _Drop(Exception):
    """A clip unfit for training; the message is the reason."""


def _prepare_audio(path: Path, settings: Settings) -> tuple[Any, int]:
    """The clip's samples ready to write, and the recording's own sample rate; :class:`_Drop` for a clip unfit to train."""
    import numpy as np
    import soxr

    audio, rate = _read_audio(path, settings.max_seconds * RAW_LIMIT)
    if not np.isfinite(audio).all():  # a float file's NaN or infinity: every comparison below failed, and trimming raised
        raise _Drop("invalid samples")
    mono = audio.mean(axis=1)
    if len(mono) == 0 or np.abs(mono).max() < PEAK_SILENT:
        raise _Drop("silent audio")
    if (np.abs(audio) >= 0.999).mean() > CLIPPED_SHARE:
        raise _Drop("clipped audio")
    if rate != settings.sample_rate:
        mono = soxr.resample(mono, rate, settings.sample_rate).astype(np.float32)
    mono = _trim(mono, settings.sample_rate)
    seconds = len(mono) / settings.sample_rate
    if seconds < settings.min_seconds:
        raise _Drop("too short")
    if seconds > settings.max_seconds:
        raise _Drop("too long")
    return _normalise(mono), rate


def _read_audio(path: Path, limit: float) -> tuple[Any, int]:
    """The recording as float samples ``[frames, channels]`` and its rate. A file longer than ``limit`` seconds is dropped
    as too long before it is decoded (an hour at 48 kHz stereo is 1.4 GB of samples, in every worker); what libsndfile
    cannot read (a phone's ``.m4a``) is decoded by FFmpeg through PyAV."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError):
        return _decode_other(path, limit)
    if info.duration > limit:
        raise _Drop("too long")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError):
        raise _Drop("unreadable audio") from None
    return audio, rate


def _decode_other(path: Path, limit: float) -> tuple[Any, int]:
    import tempfile

    import soundfile

    from demod_voice.audio.decode import TooLong, decode_to_wav

    with tempfile.TemporaryDirectory(prefix="demod-voice-clip-") as folder:
        target = Path(folder) / "clip.wav"
        try:
            decode_to_wav(str(path), str(target), limit)
        except ModuleNotFoundError:  # PyAV comes with the preprocess extra
            raise _Drop("unreadable audio (not wav, flac, ogg or mp3: convert it, or pip install av)") from None
        except TooLong:
            raise _Drop("too long") from None
        except Exception:  # noqa: BLE001 - PyAV's many errors: the file is not audio it can read
            raise _Drop("unreadable audio") from None
        return soundfile.read(str(target), dtype="float32", always_2d=True)


def _trim(audio: Any, rate: int) -> Any:
    """Cut leading and trailing frames quieter than the peak frame by TRIM_DB, keeping a little padding."""
    import numpy as np

    frame = max(1, rate // 100)
    count = len(audio) // frame
    if count == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: count * frame].reshape(count, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > -TRIM_DB)[0]
    pad = int(PAD_SECONDS * rate)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


def _normalise(audio: Any) -> Any:
    """Scale to a common loudness (RMS of speech frames) without letting the peak clip."""
    import numpy as np

    rms = np.sqrt(np.mean(audio**2))
    gain = 10 ** (TARGET_RMS_DB / 20) / max(rms, 1e-6)
    gain = min(gain, 0.95 / max(np.abs(audio).max(), 1e-6))
    return (audio * gain).astype(np.float32)


def _write_wav(target: Path, audio: Any, rate: int) -> None:
    import soundfile

    from demod_voice.audio.chunks import to_int16

    with atomic_path(target) as tmp:
        soundfile.write(str(tmp), to_int16(audio), rate, format="WAV", subtype="PCM_16")


# --- the whole dataset -------------------------------------------------------------------------


def check_dirs(input_dir: Path, output_dir: Path) -> None:
    """Refuse an output folder inside the input (a rerun would read its own output)."""
    if not input_dir.is_dir():
        raise InputError(f"input directory {input_dir} not found; give the dataset folder (metadata.csv and wavs/) as --input-dir")
    inside = output_dir.resolve() == input_dir.resolve() or output_dir.resolve().is_relative_to(input_dir.resolve())
    if inside:
        raise InputError(f"output directory {output_dir} is inside the input directory {input_dir}; choose a folder outside it")


def fingerprint(entry: Entry, source: Optional[Path], settings: Settings) -> str:
    """What decides a clip's result: its audio file's identity, its text and speaker, the settings."""
    stat = source.stat() if source else None
    ident = [str(source), stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0, entry.text, entry.speaker, asdict(settings)]
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def run_preprocess(request: PreprocessRequest) -> dict[str, Any]:
    """Process the dataset; return the report. Raises :class:`InputError` for bad input or too little audio."""
    try:
        import piper.phonemize_espeak  # noqa: F401
        import soxr  # noqa: F401
    except ImportError as err:
        raise DependencyError(f"piper-preprocess needs piper-tts and soxr ({err}); pip install 'demod-voice[preprocess]'") from None
    check_espeak_voice(request.settings.espeak_voice)
    check_dirs(request.input_dir, request.output_dir)
    entries, layout = read_metadata(request.input_dir, request.layout)
    check_audio_folder(request.input_dir)
    wavs = request.output_dir / "wavs"
    try:
        wavs.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(f"cannot create {wavs}", err) from None
    previous = _load_state(request.output_dir)
    results, todo, seen = [], [], set()
    index = audio_index(request.input_dir)
    for entry in entries:
        if entry.problem:
            results.append(ClipResult(entry.clip_id, entry.line, "dropped", entry.problem))
            continue
        problem = entry_problem(entry)
        if problem:
            results.append(ClipResult(entry.clip_id, entry.line, "dropped", problem, speaker=entry.speaker))
            continue
        if entry.clip_id in seen:
            results.append(ClipResult(entry.clip_id, entry.line, "dropped", "duplicate id", speaker=entry.speaker))
            continue
        seen.add(entry.clip_id)
        source = find_audio(request.input_dir, entry.clip_id, index)
        key = fingerprint(entry, source, request.settings)
        old = previous.get(entry.clip_id)
        if old and old.fingerprint == key and (old.status == "dropped" or (wavs / f"{entry.clip_id}.wav").is_file()):
            results.append(old)
        else:
            todo.append((entry, str(source) if source else None, str(wavs / f"{entry.clip_id}.wav"), request.settings, key))
    log.info("%d clip(s) to process, %d unchanged since the last run", len(todo), len(results))
    started = time.perf_counter()
    state = _State(request.output_dir, results)
    unchanged = len(results)
    try:
        _run_parallel(todo, request, state.add)
    except KeyboardInterrupt:  # Ctrl-C said only "interrupted": not that the work done is kept, nor how to go on
        raise Interrupted(f"stopped after {len(state.results) - unchanged} of {len(todo)} clip(s); they are kept: run the same "
                          "command again to process the rest") from None
    finally:
        state.save()  # also when stopped: what finished is kept for the next run
    processing = {"clips": len(todo), "workers": request.workers, "seconds": round(time.perf_counter() - started, 3)}
    results.sort(key=lambda r: r.line)
    report = _report(results, layout, request, processing)
    # a recording no line names was left out without a word (a dataset half transcribed lost the rest unseen)
    report["unlisted"] = unlisted_audio(entries, index)
    try:
        _write_outputs(request, results, report)
    except OSError as err:
        raise os_error(f"cannot write the prepared dataset in {request.output_dir}", err) from None
    return report


class _State:
    """The results so far, saved as the resume state every few seconds while clips finish."""

    def __init__(self, folder: Path, results: list[ClipResult]) -> None:
        self.folder = folder
        self.results = results
        self._saved = time.monotonic()

    def add(self, result: ClipResult) -> None:
        self.results.append(result)
        if time.monotonic() - self._saved >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        self.results.sort(key=lambda r: r.line)
        _save_state(self.folder, self.results)
        self._saved = time.monotonic()


def _run_parallel(todo: list[tuple], request: PreprocessRequest, done: Any) -> None:
    """Process ``todo``, handing each result to ``done`` as it finishes."""
    import multiprocessing

    from tqdm import tqdm

    if not todo:
        return
    if request.workers <= 1:
        with tqdm(total=len(todo), unit="clip", disable=not request.progress, dynamic_ncols=True, file=sys.stderr) as bar:
            for args in todo:
                done(process_clip(*args))
                bar.update(1)
        return
    # Forked workers start in milliseconds with numpy, soxr and the phonemizer already loaded here;
    # the pool is made before the progress bar, whose monitor thread must not be forked.
    import soundfile  # noqa: F401 - loaded once here rather than in every worker

    _phonemize("warm up", todo[0][3].espeak_voice)
    context = multiprocessing.get_context("fork")
    # the workers end with this process (a kill -9 of the command left them running)
    with ProcessPoolExecutor(max_workers=request.workers, mp_context=context, initializer=die_with_parent,
                             initargs=(signal.SIGTERM, os.getpid())) as pool:
        # Small chunks: workers take the next chunk when free, so the run ends at most one chunk apart
        # (clips differ: an mp3 decodes slower than a wav); 16 left a worker idle for 0.1 s at the end.
        results = pool.map(process_clip, *zip(*todo, strict=True), chunksize=max(1, min(4, len(todo) // (8 * request.workers))))
        with tqdm(total=len(todo), unit="clip", disable=not request.progress, dynamic_ncols=True, file=sys.stderr) as bar:
            for result in results:
                done(result)
                bar.update(1)


def _report(results: list[ClipResult], layout: str, request: PreprocessRequest, processed: dict[str, Any]) -> dict[str, Any]:
    kept = [r for r in results if r.status == "kept"]
    hours: dict[str, float] = defaultdict(float)
    for r in kept:
        hours[r.speaker or "default"] += r.seconds / 3600
    total = sum(r.seconds for r in kept)
    return {
        "layout": layout, "sample_rate": request.settings.sample_rate, "espeak_voice": request.settings.espeak_voice,
        "clips": len(results), "kept": len(kept), "dropped": len(results) - len(kept),
        "dropped_by_reason": dict(Counter(r.reason for r in results if r.status == "dropped")),
        "dropped_clips": [{"id": r.clip_id, "line": r.line, "reason": r.reason, "fix": fix(r, request.settings)}
                          for r in results if r.status == "dropped"],
        "seconds": round(total, 2), "hours_per_speaker": {k: round(v, 6) for k, v in sorted(hours.items())},
        "recorded_below_rate": {r.clip_id: r.recorded_rate for r in kept if 0 < r.recorded_rate < request.settings.sample_rate},
        "processed": processed,
    }


FIXES = {
    "header row": "column titles, not a clip: skipped (nothing to do)",
    "wrong column count": "a | too many or too few (one inside the text?): make the line like the others",
    "missing audio": "no {file} is there: add the recording, or delete the line",
    "unreadable audio": "the file is damaged or not audio: export it again as wav or flac",
    "empty transcript": "type what is said after the |",
    "missing transcript": "no {id}.txt beside it in wavs/: write what is said into one",
    "empty transcript file": "write what is said into {id}.txt",
    "unphonemisable text": "espeak-ng found nothing to say in the text: check it, and --language",
    "duplicate id": "an earlier line has this id: give the clip its own id and file name",
    "unsafe id": "an id is its recording's name in wavs/ (clip1 for wavs/clip1.wav), not a path: write the name alone",
    "silent audio": "the recording holds no sound: record it again",
    "invalid samples": "the recording holds samples that are no numbers (NaN or infinity, in a float file): export it again",
    "clipped audio": "the recording is too loud (its peaks are cut off): record it again at a lower level",
    "too short": "under {min:g} s of speech once silence is trimmed: record a longer sentence",
    "too long": "over {max:g} s of speech: split it into sentences (or raise preprocess.max_clip_seconds)",
}
"""What to do about each reason a clip is dropped (printed with it, and in report.json)."""


def fix(result: ClipResult, settings: Settings) -> str:
    """What to do about a dropped clip ("" for a reason that says it itself)."""
    from demod_voice.training.dataset import AUDIO_EXTENSIONS

    text = FIXES.get(result.reason.split(" (")[0], "")
    # an id that names its file (clip1.wav) is looked for as it is: "no wavs/clip1.wav.wav" sent the user to a wrong name
    named = Path(result.clip_id).suffix.lower() in AUDIO_EXTENSIONS
    file = f"wavs/{result.clip_id}" if named else f"wavs/{result.clip_id}.wav (or {', '.join(AUDIO_EXTENSIONS[1:])})"
    return text.format(file=file, id=result.clip_id, min=settings.min_seconds, max=settings.max_seconds)


def _write_outputs(request: PreprocessRequest, results: list[ClipResult], report: dict[str, Any]) -> None:
    from piper.config import PhonemeType, PiperConfig
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    out = request.output_dir
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if not request.quiet:
        _print_report(report)
    if not report["kept"] or report["seconds"] < request.min_total_seconds:
        # An earlier run's metadata.csv would still be trained on: the clips as they were then, lines deleted since included.
        earlier = " (the earlier run's was removed: it listed the clips as they were then)" if (out / "metadata.csv").is_file() else ""
        (out / "metadata.csv").unlink(missing_ok=True)
        if not report["kept"]:  # with --min-total-seconds 0 an empty dataset was "ready for training", which then refused it
            raise InputError(f"no clip was kept: all {report['clips']} were dropped (see above, and report.json): fix them and "
                             f"run the same command again; metadata.csv was not written{earlier}")
        raise InputError(f"the kept clips total {report['seconds']:.1f} s ({report['seconds'] / 60:.1f} min); training needs at "
                         f"least {request.min_total_seconds:.0f} s ({request.min_total_seconds / 60:.1f} min): record more, "
                         f"or lower --min-total-seconds for a quick test; metadata.csv was not written{earlier}")
    kept = [r for r in results if r.status == "kept"]
    # Numbered in the order they first appear, as piper's training numbers them from metadata.csv: sorted names gave
    # the dataset's config.json another numbering than the trained model's, and a voice exported with it swapped speakers.
    speakers = list(dict.fromkeys(r.speaker for r in kept if r.speaker))
    # Written as piper reads it, with csv's quoting: a transcript that starts with a quote ('"Every morning...') was read
    # as a quoted field running into the next lines, pairing audio with another clip's phonemes.
    table = io.StringIO()
    writer = csv.writer(table, delimiter="|", lineterminator="\n")
    for r in kept:
        ids = " ".join(map(str, r.phoneme_ids))
        writer.writerow([r.clip_id, r.speaker, r.text, ids] if speakers else [r.clip_id, r.text, ids])
    config = PiperConfig(
        num_symbols=max(i[0] for i in DEFAULT_PHONEME_ID_MAP.values()) + 1, num_speakers=max(1, len(speakers)),
        sample_rate=request.settings.sample_rate, espeak_voice=request.settings.espeak_voice,
        phoneme_id_map=DEFAULT_PHONEME_ID_MAP, phoneme_type=PhonemeType.ESPEAK,
        speaker_id_map={name: i for i, name in enumerate(speakers)},
    )
    write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "metadata.csv", table.getvalue())


def _print_report(report: dict[str, Any]) -> None:
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(report["dropped_by_reason"].items())) or "none"
    print(f"demod-voice: {report['kept']} of {report['clips']} clips kept ({report['seconds'] / 60:.1f} min); "
          f"dropped: {reasons}", file=sys.stderr)
    for clip in report["dropped_clips"][:SHOWN]:
        where = "" if report["layout"] == TEXT_FILES else f"line {clip['line']} "  # no line: a .txt beside each recording
        print(f"demod-voice:   {where}{clip['id']}: {clip['reason']}{'; ' + clip['fix'] if clip['fix'] else ''}",
              file=sys.stderr)
    if len(report["dropped_clips"]) > SHOWN:
        print(f"demod-voice:   and {len(report['dropped_clips']) - SHOWN} more dropped clip(s): see report.json", file=sys.stderr)
    if report["unlisted"]:
        shown = ", ".join(report["unlisted"][:3]) + (", ..." if len(report["unlisted"]) > 3 else "")
        print(f"demod-voice:   {len(report['unlisted'])} recording(s) in wavs/ have no line in metadata.csv ({shown}; all in "
              "report.json): not used; add a line id|text for each to train on it", file=sys.stderr)
    _print_low_rates(report)
    for speaker, hours in report["hours_per_speaker"].items():
        print(f"demod-voice:   speaker {speaker}: {hours * 60:.1f} min", file=sys.stderr)
    done = report["processed"]
    if done["clips"]:
        print(f"demod-voice:   processed {done['clips']} clip(s) in {done['seconds']:.1f} s with {done['workers']} worker(s) "
              f"({done['clips'] / max(done['seconds'], 1e-9):.0f} clips/s)", file=sys.stderr)


def _print_low_rates(report: dict[str, Any]) -> None:
    """Clips recorded below the dataset's rate (a phone's 8000 Hz, a headset's 16000 Hz) were upsampled without a word: the
    voice learns their muffled sound, and says it at the higher rate."""
    low = report["recorded_below_rate"]
    if not low:
        return
    rates = ", ".join(f"{rate} Hz" for rate in sorted(set(low.values())))
    shown = ", ".join(list(low)[:3]) + (", ..." if len(low) > 3 else "")
    smaller = ("; or prepare them with --sample-rate 16000 for a low-quality voice"
               if report["sample_rate"] > 16000 and min(low.values()) >= 16000 else "")
    print(f"demod-voice:   {len(low)} kept clip(s) were recorded below {report['sample_rate']} Hz ({rates}: {shown}; all in "
          f"report.json): they are upsampled, and the voice learns their muffled sound; record at {report['sample_rate']} Hz "
          f"or more{smaller}", file=sys.stderr)


def _load_state(folder: Path) -> dict[str, ClipResult]:
    path = folder / STATE
    try:
        return {r["clip_id"]: ClipResult(**r) for r in json.loads(path.read_text(encoding="utf-8"))}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _save_state(folder: Path, results: list[ClipResult]) -> None:
    # Duplicates are decided afresh on every run; only each id's own result is worth keeping.
    # vars(), not asdict(): asdict deep-copies every phoneme id list (40 ms of serial time on 200 clips).
    try:
        write_text_atomic(folder / STATE, json.dumps([vars(r) for r in results if r.fingerprint]))
    except OSError as err:
        raise os_error(f"cannot save the resume state in {folder}", err) from None
