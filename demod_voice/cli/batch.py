"""``batch`` and ``piper-preprocess``: arguments to typed requests for :mod:`demod_voice.batch`
and :mod:`demod_voice.training.preprocess`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from demod_voice.cli.common import load_settings, log_level, show_progress
from demod_voice.cli.lexicon import add_reading_flags
from demod_voice.logs import PROG, line, say


def _add_piper_preprocess(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("piper-preprocess", parents=[common], help="prepare a recorded dataset for Piper training",
                       description="Turn a dataset (metadata.csv + wavs/) into what piper-tts's trainer reads: resampled, "
                                   "trimmed, normalised audio, phoneme ids, a voice config and a report of every dropped clip.")
    p.add_argument("--input-dir", required=True, metavar="DIR", help="dataset folder with metadata.csv and wavs/ (or wavs/ with a .txt "
                                                                "transcript beside each recording)")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="where the prepared dataset goes (outside the input)")
    p.add_argument("--language", default="en-us", metavar="VOICE", help="espeak-ng voice for phonemes (default: en-us)")
    p.add_argument("--sample-rate", type=int, choices=(16000, 22050), help="16000 for low-quality voices (default: 22050)")
    p.add_argument("--layout", choices=("auto", "ljspeech", "multi"), default="auto",
                   help="three columns mean id|text|normalized (ljspeech) or id|speaker|text (multi); auto guesses")
    p.add_argument("--workers", type=int, metavar="N", help="processes (default: one per CPU core)")
    p.add_argument("--min-total-seconds", type=float, metavar="S", help="refuse datasets with less speech (default: 300)")
    p.set_defaults(func=_cmd_piper_preprocess)


def _cmd_piper_preprocess(args: argparse.Namespace) -> int:
    import os

    from demod_voice.training.preprocess import PreprocessRequest, Settings, run_preprocess

    config = load_settings(args, {"preprocess.sample_rate": args.sample_rate, "preprocess.workers": args.workers,
                                  "preprocess.min_total_seconds": args.min_total_seconds})
    p = config.preprocess
    output_dir = Path(args.output_dir).absolute()
    if not output_dir.parent.is_dir():
        from demod_voice.errors import InputError

        raise InputError(f"the parent of the output directory, {output_dir.parent}, does not exist")
    request = PreprocessRequest(
        input_dir=Path(args.input_dir).absolute(),
        output_dir=output_dir,
        settings=Settings(p.sample_rate, args.language, p.min_clip_seconds, p.max_clip_seconds),
        layout=args.layout,
        workers=p.workers or os.cpu_count() or 1,
        min_total_seconds=p.min_total_seconds,
        progress=show_progress(args),
        quiet=bool(getattr(args, "quiet", False)),
    )
    report = run_preprocess(request)
    if not getattr(args, "quiet", False):
        low = " --quality low" if report["sample_rate"] == 16000 else ""
        print(f"{PROG}: ready for training: {PROG} piper-train --dataset {output_dir} --output-dir VOICE_DIR{low} "
              "[--base CHECKPOINT] (see docs/training.md, 'Train your own Piper voice')", file=sys.stderr)
    return 0


# --- batch -------------------------------------------------------------------


def _add_batch(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("batch", parents=[common], help="synthesise every row of a CSV file",
                       description="Synthesise the rows of BATCH_FILE (columns: reference, text, output, language, speaker, "
                                   "backend, model, voice; an id column names ID.wav for rows with no output). Every row is checked first; "
                                   "finished rows are skipped on a rerun.")
    p.add_argument("batch_file", metavar="BATCH_FILE",
                   help="CSV file with a header row; - reads it from stdin (relative paths in it start from the current folder)")
    p.add_argument("-o", "--output-dir", metavar="DIR", default=".",
                   help="where outputs go (made if missing); nothing is written outside it unless --allow-outside-output-dir")
    p.add_argument("--model", metavar="VOICE",
                   help="Piper voice for rows with no model column (default: piper.default_voice, as piper-infer)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes per model (default: engine.workers; with --ray: as many as the cluster's CPUs hold)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run the workers as actors on a Ray cluster: auto ($RAY_ADDRESS, else the cluster `ray start` made "
                        "here), HOST:PORT, ray://HOST:PORT, or local (a private Ray on this machine); needs the [ray] extra")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first row that fails")
    p.add_argument("--dry-run", action="store_true", help="check every row, synthesise nothing")
    p.add_argument("--report", metavar="FILE", help="write a JSON-lines report (row, status, output, duration, seconds, error, where)")
    p.add_argument("--allow-outside-output-dir", action="store_true",
                   help="accept absolute outputs outside --output-dir (as the original tool's CSV may have them)")
    add_reading_flags(p)
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from demod_voice.batch import BatchRequest, outcome_error, run_batch

    config = load_settings(args, {"engine.workers": args.workers, "engine.executor": "ray" if args.ray else None,
                                  "engine.ray_address": args.ray})
    on_ray = config.engine.executor == "ray"
    request = BatchRequest(
        csv_path=Path("stdin" if args.batch_file == "-" else args.batch_file).absolute(),
        stdin=args.batch_file == "-",
        output_dir=Path(args.output_dir).absolute(),
        config=config,
        workers=(args.workers or 0) if on_ray else config.engine.workers,
        model=args.model or config.piper.default_voice or None,
        fail_fast=args.fail_fast,
        dry_run=args.dry_run,
        report=_report_path(args.report, Path(args.output_dir).absolute()) if args.report else None,
        progress=show_progress(args),
        log_level=log_level(args),
        on_progress=Console(show_progress(args), bool(getattr(args, "quiet", False))),
        allow_outside=args.allow_outside_output_dir,
        normalize=args.normalize,
        lexicons=tuple(args.lexicon),
    )
    outcome = run_batch(request)
    if args.dry_run:
        return 0
    error = outcome_error(outcome)
    if error is not None:
        raise error
    return 0


LINE_EVERY = 60.0
"""Seconds between the progress lines of a run whose stderr is no terminal (a log file, ``nohup``): no bar there,
and a run of 50,000 rows said nothing for hours."""


class Console:
    """How a batch run looks on a terminal: a bar of rows on stderr, one line per failed row, status lines
    (unless ``quiet``). Where stderr is no terminal, a line of rows made, failures and time left every
    :data:`LINE_EVERY` seconds stands for the bar."""

    def __init__(self, bar: bool, quiet: bool) -> None:
        self.show_bar = bar
        self.quiet = quiet
        self.bar: Any = None
        self.total = self.made = 0
        self.started = self.said = 0.0

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        if event.kind == "status":
            if not self.quiet:
                say(event.message)
        elif event.kind == "start":
            self.bar = tqdm(total=event.total, unit="row", disable=not self.show_bar or not event.total, dynamic_ncols=True,
                            file=sys.stderr)
            self.total, self.made, self.started = event.total, 0, time.monotonic()
            self.said = self.started
        elif event.kind == "row" and self.bar is not None:
            self.bar.update(1)
            self.made += 1
            if event.message:
                tqdm.write(line(f"error: {event.message}"), file=sys.stderr)
                self.bar.set_postfix(failed=event.failed, refresh=False)
            if self.bar.disable and not self.quiet and time.monotonic() - self.said >= LINE_EVERY:
                self.said = time.monotonic()
                say(self._line(self.made, event.failed))
        elif event.kind == "end":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            for repeated in filter(None, event.message.split("\n")):  # an error many rows met, said once with their lines
                say(f"error: {repeated}")

    def _line(self, made: int, failed: int) -> str:
        """``1,234 of 50,000 rows (2%), 3 failed; 4.3 rows/s, about 3 h 12 min left`` (rows made or failed so far)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = (self.total - made) * elapsed / max(made, 1)
        minutes = round(left / 60)
        when = f"about {minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"about {minutes} min" if minutes else "under a minute"
        rate = f"{made / elapsed:.1f} rows/s" if made >= elapsed else f"{60 * made / elapsed:.1f} rows/min"
        return f"{made:,} of {self.total:,} rows ({100 * made // max(self.total, 1)}%), {failed} failed; {rate}, {when} left"


def _report_path(value: str, output_dir: Path) -> Path:
    """The report may go inside an output folder that the batch is yet to make (the README's example does)."""
    from demod_voice.paths import check_output_path

    path = Path(value).expanduser().absolute()
    if path.parent.is_relative_to(output_dir) and not path.parent.is_dir():
        return path
    return check_output_path(path, example="report.jsonl", flag="--report")
