"""``book``: arguments to a typed :class:`~demod_voice.book.plan.BookRequest`, and one progress bar."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from demod_voice.book.master import LOUDNESS, SECONDS, TRUE_PEAK, MasterSettings
from demod_voice.book.plan import BookRequest, Progress, dry_run_lines, work_dir
from demod_voice.book.run import outcome_error, run_book
from demod_voice.book.voice import VoiceChoice
from demod_voice.cli.common import load_settings, log_level, show_progress
from demod_voice.cli.lexicon import add_reading_flags, reading_from_args
from demod_voice.config import cache_root
from demod_voice.errors import UsageError
from demod_voice.logs import line

TRACKS = (".mp3", ".opus", ".flac")


def _add_book(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("book", parents=[common], help="read a whole book (.txt, .md, .epub) into a chaptered audiobook",
                       description="Read INPUT (.txt, Markdown or EPUB) with one voice into an .m4b with chapter marks, or one "
                                   "file per chapter; loudness-normalised, optionally captioned and checked by a speech "
                                   "recogniser. Takes are kept beside the output (OUTPUT.takes): a rerun makes only what is "
                                   "missing or changed.")
    p.add_argument("input", metavar="INPUT", help="the book: a .txt, .md or .epub file")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="an .m4b file, or a folder for one file per chapter with --format")
    p.add_argument("--voice", metavar="VOICE", help="a Piper voice (.onnx path or installed name) or a saved XTTS voice")
    p.add_argument("--reference", action="append", default=[], metavar="FILE", help="reference recording to clone (XTTS); repeatable")
    p.add_argument("--backend", metavar="NAME", help="a backend's name ('demod-voice health' lists them; default: from the voice)")
    p.add_argument("-s", "--speaker", help="speaker number or name of a multi-speaker Piper voice")
    p.add_argument("-l", "--language", help="language of an XTTS voice (default: a saved voice's own, else xtts.language)")
    p.add_argument("--xtts-model", metavar="DIR", help="local XTTS checkpoint folder (default: the released XTTS-v2)")
    p.add_argument("--format", choices=("mp3", "opus", "flac"), help="one file per chapter in this format (OUTPUT is a folder)")
    p.add_argument("--captions", choices=("srt", "vtt"), help="also write captions with sentence timings")
    p.add_argument("--verify", action="store_true", help="hear every take with a speech recogniser; remake those that fail")
    p.add_argument("--retakes", type=int, default=2, metavar="N", help="remakes of a failing take (default: 2)")
    p.add_argument("--wer", type=float, default=0.35, metavar="RATE", help="word error rate over which a take fails (default: 0.35)")
    p.add_argument("--loudness", type=float, default=-18.0, metavar="LUFS", help="loudness of every chapter (default: -18)")
    p.add_argument("--true-peak", type=float, default=-1.0, metavar="DBTP", help="true-peak ceiling (default: -1)")
    p.add_argument("--lead-silence", type=float, default=0.5, metavar="S", help="silence before a chapter's first words (default: 0.5)")
    p.add_argument("--tail-silence", type=float, default=1.0, metavar="S", help="silence after its last words (default: 1.0)")
    p.add_argument("--sentence-pause", type=float, default=0.35, metavar="S", help="pause between sentences (default: 0.35)")
    p.add_argument("--paragraph-pause", type=float, default=0.9, metavar="S", help="pause between paragraphs (default: 0.9)")
    p.add_argument("--keep-front-matter", action="store_true", help="also read cover, copyright, contents... (skipped by default)")
    add_reading_flags(p)
    p.add_argument("--dry-run", action="store_true", help="list the chapters, their length and estimated time; make nothing")
    p.add_argument("--work-dir", metavar="DIR", help="folder of takes (default: OUTPUT.takes beside the output)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes per model (default: engine.workers)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS", help="run the workers on a Ray cluster (as for batch)")
    p.set_defaults(func=_cmd_book)


def _cmd_book(args: argparse.Namespace) -> int:
    config = load_settings(args, {"engine.workers": args.workers, "engine.executor": "ray" if args.ray else None,
                                  "engine.ray_address": args.ray, "xtts.model_dir": args.xtts_model})
    output = Path(args.output).expanduser().absolute()
    track = f".{args.format}" if args.format else ""
    if track and output.suffix.lower() in (".m4b", *TRACKS):
        raise UsageError(f"-o {args.output} with --format {args.format}: per-chapter files need a folder as -o "
                         f"(-o {output.stem}/ --format {args.format}), or leave out --format for one .m4b")
    if not track and output.suffix.lower() != ".m4b":
        hint = f" (per-chapter {output.suffix} files: -o FOLDER --format {output.suffix[1:]})" if output.suffix.lower() in TRACKS else ""
        raise UsageError(f"-o must name an .m4b file, or a folder with --format mp3|opus|flac{hint}")
    if args.retakes < 0 or not 0 < args.wer:
        raise UsageError("--retakes must be 0 or more and --wer above 0")
    for flag, value, (low, high) in (("--loudness", args.loudness, LOUDNESS), ("--true-peak", args.true_peak, TRUE_PEAK),
                                     ("--lead-silence", args.lead_silence, SECONDS), ("--tail-silence", args.tail_silence, SECONDS),
                                     ("--sentence-pause", args.sentence_pause, SECONDS),
                                     ("--paragraph-pause", args.paragraph_pause, SECONDS)):
        if not low <= value <= high:  # NaN too
            raise UsageError(f"{flag} must be from {low:g} to {high:g}, got {value:g}")
    quiet = bool(getattr(args, "quiet", False))
    request = BookRequest(
        source=Path(args.input).expanduser().absolute(), output=output, config=config,
        voice=VoiceChoice(args.voice, tuple(args.reference), args.speaker, args.language, args.backend),
        track_format=track, captions=args.captions or "", verify=args.verify, retakes=args.retakes, wer_threshold=args.wer,
        master=MasterSettings(args.loudness, args.true_peak, args.lead_silence, args.tail_silence),
        sentence_pause=args.sentence_pause, paragraph_pause=args.paragraph_pause, keep_front_matter=args.keep_front_matter,
        reading=reading_from_args(args, cache_root(config), args.voice or ""),
        dry_run=args.dry_run, work_dir=Path(args.work_dir).expanduser().absolute() if args.work_dir else None,
        workers=config.engine.workers, log_level=log_level(args))
    bar = _Bar(show_progress(args), quiet)
    try:
        outcome = run_book(request, bar.progress())
    finally:
        bar.close()
    if args.dry_run:
        print("\n".join(dry_run_lines(outcome.book, outcome.notes)))
        return 0
    error = outcome_error(outcome)
    if error is not None:
        raise error
    _summary(outcome, request, quiet)
    return 0


def _summary(outcome: Any, request: BookRequest, quiet: bool) -> None:
    for take in outcome.unverified:
        print(line(f"warning: chapter {take['chapter']} ({take['title'][:40]}) at {take['time']}: take {take['take']} "
                   f"still fails verification ({take['problem']}): {take['text'][:60]!r}"), file=sys.stderr)
    if quiet:
        return
    hours = outcome.audio_seconds / 3600
    checked = f"; {len(outcome.unverified)} take(s) still failing verification" if request.verify else ""
    print(line(f"book: {len(outcome.book.chapters)} chapter(s), {hours * 60:.1f} min of audio, {outcome.made} take(s) made, "
               f"{outcome.reused} reused{checked} in {outcome.seconds:.1f} s; wrote {', '.join(str(p) for p in outcome.outputs[:3])}"
               f"{' ...' if len(outcome.outputs) > 3 else ''}; report: {work_dir(request) / 'report.json'}"), file=sys.stderr)


class _Bar:
    """One bar per stage over the characters of its takes: the ETA follows the measured speed; the
    description names the chapter the last finished take belongs to."""

    def __init__(self, enabled: bool, quiet: bool) -> None:
        self.enabled = enabled
        self.quiet = quiet
        self.bar: Any = None

    def progress(self) -> Progress:
        return Progress(start=self.start, advance=self.advance, say=self.say)

    def start(self, stage: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total, unit="char", unit_scale=True, desc=stage, disable=not self.enabled, dynamic_ncols=True,
                        file=sys.stderr)

    def advance(self, chars: int, chapter: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"chapter {chapter}", refresh=False)
            self.bar.update(chars)

    def say(self, message: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(line(message), file=sys.stderr)
        else:
            print(line(message), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
