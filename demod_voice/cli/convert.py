"""``convert``: recordings re-spoken in another voice (their words, timing and intonation kept).

Same pattern as the other cli modules: ``_add_convert`` declares, ``_cmd_convert`` turns the
arguments into a call of the registry's converter (:func:`demod_voice.backends.registry.converter`);
the engine runs one job per source.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from demod_voice.audio.chunks import AudioChunk
from demod_voice.audio.writer import Sink, check_output, open_sink
from demod_voice.backends import registry
from demod_voice.backends.plugin import Scope
from demod_voice.cli.common import load_settings, log_level, show_progress
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import STDOUT, SynthesisJob
from demod_voice.engine.service import EngineRun
from demod_voice.errors import InputError
from demod_voice.paths import check_output_path, not_an_input
from demod_voice.voices.profiles import profiles_dir

CONVERT_FLAGS = ("tau", "seed", "window_seconds", "overlap_seconds", "model_dir")


def _add_convert(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("convert", parents=[common], help="re-speak recordings in another voice (voice conversion, OpenVoice v2)",
                       description="Convert each SOURCE recording into the voice of a saved profile (--voice) or of reference "
                                   "recordings (--reference): the words, timing and intonation stay the source's.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="recordings to convert (wav, flac, ogg, mp3, m4a/aac...; any sample rate)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--voice", metavar="PROFILE", help="a saved voice profile ('voices add') to convert into")
    target.add_argument("--reference", nargs="+", metavar="REF", help="reference recordings of the voice to convert into")
    p.add_argument("-o", "--output", default="converted.wav",
                   help="output file (.wav .flac .ogg .mp3, or .m4b: an audiobook with the source's chapter marks); a "
                        "folder (ending in /, or one that exists: FOLDER/NAME.wav for each source); or - for raw 16-bit PCM "
                        "at 22.05 kHz on stdout (default: converted.wav)")
    p.add_argument("--model-dir", metavar="DIR", help="an OpenVoice converter folder (default: the released OpenVoice v2, downloaded once)")
    p.add_argument("--tau", type=float, help="content encoder noise (default 0.3; 0: the same output every run)")
    p.add_argument("--seed", type=int, help="random seed of that noise (default 0)")
    p.add_argument("--window-seconds", type=float, help="longer sources are converted in windows of this length (default 30)")
    p.add_argument("--overlap-seconds", type=float, help="seconds windows overlap and cross-fade in (default 2)")
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.voice and Path(args.voice).expanduser().is_file():
        # it said "there is no voice profile 'bob.wav': ... voices add bob.wav REFERENCE...", or for refs/bob.wav that it
        # "cannot name a voice": neither said that a recording is given with --reference
        raise InputError(f"--voice takes a saved voice's name and '{args.voice}' is a file: convert into a recording with "
                         f"--reference {args.voice}, or save it as a voice first (demod-voice voices add NAME {args.voice})")
    config = load_settings(args, {f"convert.{key}": getattr(args, key) for key in CONVERT_FLAGS})
    if Path(args.output).suffix.lower() == ".m4b":
        return _convert_audiobook(args, config)
    return _convert(args, config, args.output)


def _convert_audiobook(args: argparse.Namespace, config: Config) -> int:
    """An audiobook converted into an ``.m4b`` that keeps its chapter marks, tags and cover: the conversion is made into
    a hidden folder beside the output (a book's audio is large), then muxed with the source's marks. An ``.m4b`` output
    was refused ("cannot tell the audio format"), and a ``.flac`` one had no chapters, title or cover."""
    from demod_voice.book.rechapter import write_like

    if len(args.sources) != 1:
        raise InputError(f"an .m4b output is one audiobook: give one source, not {len(args.sources)}")
    output = check_output_path(Path(args.output), "book.m4b")
    not_an_input(str(output), [*args.sources, *(args.reference or ())])
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as work:
        converted = Path(work) / "converted.flac"
        _convert(args, config, str(converted))
        write_like(converted, Path(args.sources[0]), output)
    return 0


def _convert(args: argparse.Namespace, config: Config, output: str) -> int:
    cache = cache_root(config)
    folder = Path(output)
    made = into_folder(args.sources, output) and not folder.exists()
    bar = _Bar(args.sources, show_progress(args))
    try:
        jobs = registry.converter().conversion_jobs(Scope(config, cache, profiles_dir(cache)), list(args.sources),
                                                    list(outputs_for(args.sources, output)), list(args.reference or ()),
                                                    args.voice, show_progress(args))
        results = EngineRun(config.engine, workers=1, log_level=log_level(args), sink_factory=bar.sink).run(jobs)
    except BaseException:
        if made and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a refused or interrupted run leaves no empty folder of its own behind
        raise
    finally:
        bar.close()
    failed = [result for result in results if result.error is not None]
    if failed:
        raise failed[0].error
    return 0


def into_folder(sources: list[str], output: str) -> bool:
    """Whether each source goes to ``FOLDER/NAME.wav``: several sources, or a folder named as one (an existing folder,
    or a name ending in ``/``). ``convert takes/*.wav -o converted/`` was refused ("cannot tell the audio format of
    'converted/'") when the pattern matched one take, and done when it matched two."""
    return output != STDOUT and (len(sources) > 1 or output.endswith(("/", os.sep)) or Path(output).is_dir())


def outputs_for(sources: list[str], output: str) -> tuple[str, ...]:
    """One checked output per source: the file (one source), ``-`` (all to stdout, one after another),
    or ``FOLDER/NAME.wav`` for each source (:func:`into_folder`)."""
    if not into_folder(sources, output):
        return tuple(check_output(output) for _ in sources)
    folder = Path(output)
    if folder.suffix and not folder.is_dir() and not output.endswith(("/", os.sep)):
        raise InputError(f"{len(sources)} sources need a folder for --output (or - for stdout), not the file name '{output}'")
    names = [Path(source).stem for source in sources]
    if len(set(names)) != len(names):
        raise InputError("two sources have the same file name; their outputs would overwrite each other: convert them in two runs")
    folder.mkdir(parents=True, exist_ok=True)
    return tuple(check_output(str(folder / f"{name}.wav")) for name in names)


class _Bar:
    """Seconds of the sources converted, as their audio is written: an hour's interview converted for many minutes
    without a sign of life (the bar of other commands' long runs). Its total is the sources' length when their headers
    tell it (an ``.m4a`` may not: then a count)."""

    def __init__(self, sources: list[str], enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.done = 0.0
        self.sources = sources

    def sink(self, job: SynthesisJob) -> Sink:
        sink = open_sink(job.output)
        if not self.enabled:
            return sink
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=_seconds(self.sources), unit="s", desc="converting", dynamic_ncols=True, file=sys.stderr)
        return _Counted(sink, self)

    def advance(self, seconds: float) -> None:
        before, self.done = int(self.done), self.done + seconds
        if int(self.done) > before:
            self.bar.update(int(self.done) - before)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Counted:
    """A job's sink that moves the bar on by the seconds of each chunk it writes."""

    def __init__(self, sink: Sink, bar: _Bar) -> None:
        self.inner = sink
        self.bar = bar

    def write(self, chunk: AudioChunk) -> None:
        self.inner.write(chunk)
        self.bar.advance(len(chunk.samples) / chunk.sample_rate)

    def commit(self) -> float:
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()

    @property
    def retryable(self) -> bool:
        return self.inner.retryable


def _seconds(sources: list[str]) -> Any:
    """The sources' whole seconds together by their headers; ``None`` when one of them does not tell."""
    import soundfile

    try:
        return int(sum(soundfile.info(source).duration for source in sources))
    except (RuntimeError, soundfile.LibsndfileError, OSError):
        return None
