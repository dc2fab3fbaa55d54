"""The command line: parse, configure logging, turn arguments into typed requests, report errors once.

Each subcommand is a pair: ``_add_<name>`` declares it, ``_cmd_<name>`` turns the parsed
arguments into a request for the module that does the work. No engine is imported here.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Optional

from demod_voice import __version__
from demod_voice.cli.batch import _add_batch, _add_piper_preprocess
from demod_voice.cli.common import log_level
from demod_voice.cli.synth import _add_piper_infer, _add_xtts_zero_shot
from demod_voice.errors import DemodVoiceError
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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Voice cloning and text-to-speech: XTTS-v2 and Piper behind one command line.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 bad input, 4 missing dependency, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common)
    from demod_voice.cli.manage import MANAGE_COMMANDS

    for add in (_add_xtts_zero_shot, _add_piper_infer, _add_piper_preprocess, _add_batch, *MANAGE_COMMANDS):
        add(sub, common)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = log_level(args)
    configure_logging(level)
    try:
        return args.func(args)
    except DemodVoiceError as err:
        log.debug("traceback:", exc_info=True)
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


