"""``lexicon add|list|remove|test``, and the ``--no-normalize`` / ``--lexicon`` flags of the commands that speak."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from demod_voice.audio.writer import check_output
from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput
from demod_voice.cli.common import load_settings, log_level, show_progress
from demod_voice.config import cache_root
from demod_voice.engine.service import run_one
from demod_voice.errors import InputError, ModelMissing
from demod_voice.logs import PROG
from demod_voice.speech_text import scopes
from demod_voice.speech_text.lexicon import entry, split_words, to_tsv
from demod_voice.speech_text.prepare import TextOptions
from demod_voice.speech_text.script import Override


def add_reading_flags(p: argparse.ArgumentParser) -> None:
    """The flags that say how a speaking command reads its text."""
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="leave numbers, money, dates, abbreviations and URLs to the engine instead of spelling them out")
    p.add_argument("--lexicon", action="append", default=[], metavar="NAME|FILE",
                   help="a pronunciation lexicon (a stored name or a .tsv/.yaml file), over 'default' and the voice's own; repeatable")


def reading_from_args(args: argparse.Namespace, cache: Path, voice: str = "") -> TextOptions:
    """``--no-normalize`` and ``--lexicon`` as text options: default < the voice's lexicon < each ``--lexicon``."""
    return scopes.reading(scopes.store(cache), getattr(args, "normalize", True), voice=voice or None,
                          extra=getattr(args, "lexicon", []) or [])


def _add_lexicon(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lexicon", parents=[common], help="pronunciation lexicons: add, list, remove, test a word",
                       description="Say how words are pronounced: IPA phonemes for Piper voices, a respelling for XTTS. "
                                   "Entries go to the 'default' lexicon, read by every command and the server, unless "
                                   "--lexicon NAME or --voice VOICE says otherwise. See docs/pronunciation.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="add or replace a word's pronunciation")
    add.add_argument("word", metavar="WORD")
    add.add_argument("--phonemes", "--ipa", default="", metavar="IPA", help="espeak-ng IPA, for Piper voices (e.g. ŋwˈiən)")
    add.add_argument("--say", default="", metavar="TEXT", help="a respelling, for XTTS (and Piper when no phonemes are given)")
    add.add_argument("--match-case", action="store_true", help="match only this exact case (US, not us)")
    listing = actions.add_parser("list", parents=[common], help="list lexicons, or one lexicon's entries")
    remove = actions.add_parser("remove", parents=[common], help="remove a word")
    remove.add_argument("word", metavar="WORD")
    test = actions.add_parser("test", parents=[common], help="speak WORD as written, then as the lexicon says")
    test.add_argument("word", metavar="WORD")
    test.add_argument("-m", "--model", metavar="VOICE", help="a Piper voice (name or .onnx) to speak with (default: piper.default_voice)")
    test.add_argument("-o", "--output", default="lexicon-test.wav", help="output file (default: lexicon-test.wav)")
    for action in (add, listing, remove, test):
        where = action.add_mutually_exclusive_group()
        where.add_argument("--lexicon", metavar="NAME", help="the lexicon to use (default: default)")
        where.add_argument("--voice", metavar="VOICE", help="the voice's own lexicon (voice.VOICE)")
    p.set_defaults(func=_cmd_lexicon)


def _cmd_lexicon(args: argparse.Namespace) -> int:
    config = load_settings(args)
    cache = cache_root(config)
    lexicons = scopes.store(cache)
    name = scopes.voice_lexicon(args.voice) if args.voice else (args.lexicon or scopes.DEFAULT)
    if args.action == "add":
        if args.voice:
            _check_voice(args.voice, config, cache)
        path = lexicons.add(name, entry(args.word, args.phonemes, args.say, args.match_case, where="lexicon add"))
        print(f"{args.word.strip()}: added to lexicon {name} ({path})")
    elif args.action == "remove":
        if not lexicons.remove(name, args.word):
            raise InputError(f"'{args.word}' is not in lexicon {name}; see 'demod-voice lexicon list --lexicon {name}'")
        print(f"{args.word.strip()}: removed from lexicon {name}")
    elif args.action == "list" and not (args.lexicon or args.voice):
        for stored in lexicons.names():
            found = lexicons.load(stored)
            print(f"{stored:<32} {len(found.entries) if found else 0} entries")
    elif args.action == "list":
        print(to_tsv(scopes.named_or_file(lexicons, name)), end="")
    else:
        _test(args, config, cache, name)
    return 0


def _check_voice(voice: str, config: Any, cache: Path) -> None:
    """``--voice`` names a voice file that exists or a voice installed here (a typo made a lexicon nothing reads, and
    ``../evil`` was kept as ``voice.evil``); a name not installed yet is warned about (its lexicon waits for it)."""
    from demod_voice.backends.plugin import Scope
    from demod_voice.voices.profiles import NAME, profiles_dir

    if "/" in voice:
        if not Path(voice).expanduser().is_file():
            raise InputError(f"voice file {voice} not found; give an .onnx voice that exists, or an installed voice's name")
        return
    voice = voice[: -len(".onnx")] if voice.endswith(".onnx") else voice  # the lexicon is named by the stem
    if not NAME.match(voice):
        raise InputError(f"'{voice}' is not a voice name (letters, digits, '_', '.' or '-'); see 'demod-voice models list'")
    scope = Scope(config, cache, profiles_dir(cache))

    def found(side: Any) -> bool:
        try:
            return side.find(scope, voice) is not None
        except ModelMissing:  # a damaged profile of that name: the voice is there
            return True

    if not any(found(side) for side in registry.request_sides()):
        print(f"{PROG}: warning: no voice '{voice}' is installed here (demod-voice models list, voices list); its lexicon "
              "is kept for when one is", file=sys.stderr)


def _test(args: argparse.Namespace, config: Any, cache: Path, name: str) -> None:
    """One job: the word as written (an SSML <sub>, which no lexicon touches), a pause, the word as the lexicon says."""
    word = args.word.strip()
    lexicon = scopes.named_or_file(scopes.store(cache), name)
    if not any(isinstance(part, Override) for part in split_words(word, lexicon)):
        print(f"{PROG}: '{word}' is not in lexicon {name}: both readings are the same; add it with "
              f"'demod-voice lexicon add {word} --phonemes IPA' (or --say TEXT)", file=sys.stderr)
    text = f"<speak><sub alias={quoteattr(word)}>{escape(word)}</sub><break time=\"700ms\"/>{escape(word)}</speak>"
    values = {"model": args.model or config.piper.default_voice}
    request = RowInput(values, text, Path(check_output(args.output)), Path.cwd(), config, cache, progress=show_progress(args),
                       reading=TextOptions(normalize=False, lexicon=lexicon, ssml=True))
    job = registry.request_side(config.piper.backend).row_job(request)
    print(f"as written, then with lexicon {name}: {job.text}")
    run_one(job, config.engine, log_level(args))
