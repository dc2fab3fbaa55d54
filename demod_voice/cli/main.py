"""The command line: parse, configure logging, turn arguments into typed requests, report errors once.

Each subcommand is a pair: ``_add_<name>`` declares it, ``_cmd_<name>`` turns the parsed
arguments into a request for the module that does the work. No engine is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Optional

from demod_voice import __version__
from demod_voice.cli.batch import _add_batch, _add_piper_preprocess
from demod_voice.cli.book import _add_book
from demod_voice.cli.common import log_level
from demod_voice.cli.convert import _add_convert
from demod_voice.cli.lexicon import _add_lexicon
from demod_voice.cli.serve import _add_serve
from demod_voice.cli.synth import _add_piper_infer, _add_xtts_zero_shot
from demod_voice.cli.train import _add_piper_export, _add_piper_train
from demod_voice.errors import DemodVoiceError, Interrupted, PipeClosed
from demod_voice.logs import PROG, configure_logging

log = logging.getLogger("demod_voice")

def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS defaults let the same options appear before and after the subcommand
    # without the subparser resetting what was given before it.
    group = parser.add_argument_group("global options")
    device = group.add_mutually_exclusive_group()
    device.add_argument("--gpu", dest="device", action="store_const", const="gpu", default=argparse.SUPPRESS,
                        help="run models on the GPU (falls back to CPU with a warning)")
    device.add_argument("--cpu", dest="device", action="store_const", const="cpu", default=argparse.SUPPRESS,
                        help="run models on the CPU (overrides the config file)")
    group.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help="config file (default: $XDG_CONFIG_HOME/demod-voice/config.yaml, or $DEMOD_VOICE_CONFIG)")
    group.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="say more (-vv for debug output and tracebacks)")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only print errors")
    group.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                       help="show progress bars even when stderr is not a terminal")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Voice cloning and text-to-speech: XTTS-v2 and Piper behind one command line.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 bad input, 4 missing dependency, 130 interrupted (Ctrl-C), "
               "129 its terminal closed (SIGHUP), 141 stdout closed by its reader, 143 terminated (SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common)
    from demod_voice.cli.manage import MANAGE_COMMANDS

    for add in (_add_xtts_zero_shot, _add_piper_infer, _add_piper_preprocess, _add_piper_train, _add_piper_export, _add_batch, _add_book,
                _add_convert, *MANAGE_COMMANDS, _add_lexicon, _add_serve):
        add(sub, common)
    return parser


EXIT_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away."""
EXIT_TERMINATED = 143
"""128 + SIGTERM."""
EXIT_HANGUP = 129
"""128 + SIGHUP: the terminal (or ssh session, tmux window) the command ran in closed."""

STOPS = {signal.SIGTERM: ("terminated (SIGTERM)", EXIT_TERMINATED),
         signal.SIGHUP: ("hung up (SIGHUP: its terminal or ssh session closed)", EXIT_HANGUP)}
"""Signals that stop a command as Ctrl-C does, with the words that replace "interrupted" and the exit code."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where Ctrl-C would be, so that a stopped run cleans up exactly as after Ctrl-C."""


class _SigtermState:
    fired: Optional[int] = None
    """The signal that stopped the command, if one did."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[_SigtermState]:
    """While the command runs, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (a second SIGTERM kills
    outright; a second SIGHUP is ignored: a closing terminal's shell and the terminal itself may both send one).
    SIGHUP ignored when the command started (``nohup``) stays ignored. A closed ssh session ended a batch at once (the
    default action of SIGHUP): no report, no last line saying how to go on, the rows being written left half-written."""
    state = _SigtermState()

    def handler(signum: int, frame: object) -> None:
        state.fired = signum
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if signum == signal.SIGHUP:
            _leave_closed_terminal()
        raise Terminated()

    previous: dict[int, object] = {}
    try:
        for number in STOPS:
            if signal.getsignal(number) != signal.SIG_IGN:
                previous[number] = signal.signal(number, handler)
    except ValueError:  # not the main thread (an embedding program): leave signals to it
        yield state
        return
    try:
        yield state
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)


def _leave_closed_terminal() -> None:
    """Point stdout and stderr at /dev/null where they are a terminal that has closed (it answers every write with EIO):
    the batch's summary line, printed to the closed ssh session, failed the stop as "internal error: OSError" (exit 1),
    while a log file (``2> run.log``) keeps its last lines."""
    for fd in (1, 2):
        try:
            os.write(fd, b"")  # nothing, for a live terminal, a pipe or a file
        except OSError as err:
            if err.errno == errno.EIO:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)


def _pipe_closed() -> int:
    """The reader of stdout left (``| head``): stop quietly; later writes (and the flush at exit) go nowhere."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE


def _stopped(err: BaseException, signum: Optional[int]) -> int:
    """Ctrl-C (130), SIGTERM (143) or SIGHUP (129): one line; the engine has already removed unfinished outputs."""
    message = str(err) if isinstance(err, Interrupted) else "interrupted"
    if signum in STOPS:
        words, code = STOPS[signum]
        log.error("%s", message.replace("interrupted", words, 1))
        return code
    log.error("%s", message)
    return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = log_level(args)
    configure_logging(level)
    with _sigterm_raises() as term:
        try:
            return args.func(args)
        except (PipeClosed, BrokenPipeError):
            return _pipe_closed()
        except (Interrupted, KeyboardInterrupt) as err:
            return _stopped(err, term.fired)
        except DemodVoiceError as err:
            log.debug("traceback:", exc_info=True)
            log.error("%s", err)
            return err.exit_code
        except Exception as err:  # noqa: BLE001 - the last line of defence: a bug is one line, not a traceback
            log.debug("traceback:", exc_info=True)
            log.error("internal error: %s: %s; rerun with -vv and report it", type(err).__name__, err)
            return 1
