"""The command line: parse, configure logging, turn arguments into typed requests, report errors once.

Each subcommand is a pair: ``_add_<name>`` declares it, ``_cmd_<name>`` turns the parsed
arguments into a request for the module that does the work. No engine is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
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
               "141 stdout closed by its reader, 143 terminated (SIGTERM).",
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a stopped run cleans up exactly as after Ctrl-C."""


class _SigtermState:
    fired = False


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[_SigtermState]:
    """While the command runs, SIGTERM raises :class:`Terminated` in the main thread (a second one kills outright)."""
    state = _SigtermState()

    def handler(signum: int, frame: object) -> None:
        state.fired = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program): leave signals to it
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pipe_closed() -> int:
    """The reader of stdout left (``| head``): stop quietly; later writes (and the flush at exit) go nowhere."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE


def _stopped(err: BaseException, terminated: bool) -> int:
    """Ctrl-C (130) or SIGTERM (143): one line; the engine has already removed unfinished outputs."""
    message = str(err) if isinstance(err, Interrupted) else "interrupted"
    if terminated:
        log.error("%s", message.replace("interrupted", "terminated (SIGTERM)", 1))
        return EXIT_TERMINATED
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
