"""Which lexicons a request reads, by scope: server (``default`` and ``serve.lexicons``) < voice
(``voice.NAME``) < API key (``key.ID``) < the request's own entries. Narrower wins.

Lexicons live as files in the cache folder's ``lexicons/`` (the CLI and the server share them);
``serve.lexicons`` may also name files by path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import InputError
from demod_voice.speech_text.lexicon import EMPTY, Lexicon, LexiconStore, check_name, from_data, merge, parse, read_file
from demod_voice.speech_text.prepare import TextOptions

DEFAULT = "default"
"""The lexicon every front door reads (``lexicon add`` writes here unless told otherwise)."""
MAX_REQUEST_ENTRIES = 200
"""Entries one request's own ``lexicon`` may hold."""


def store(cache: Path) -> LexiconStore:
    """The lexicon folder under the cache folder."""
    return LexiconStore(Path(cache) / "lexicons")


def voice_lexicon(voice: str) -> str:
    """The name of a voice's own lexicon: ``voice.`` + the voice's name (a path's file stem)."""
    stem = Path(voice).name
    stem = stem[: -len(".onnx")] if stem.endswith(".onnx") else stem
    return f"voice.{stem}"


def _voice_layer(lexicons: LexiconStore, voice: str) -> Optional[Lexicon]:
    """A voice's own lexicon; none for a voice whose name no lexicon can have (a Piper file 'My Voice.onnx', 'Zoë.onnx',
    or a mistyped --voice 'my voice'): no such lexicon can be stored, and the voice itself was refused with
    "'voice.My Voice' is not a lexicon name" before it was even looked for."""
    name = voice_lexicon(voice)
    try:
        check_name(name)
    except InputError:
        return None
    return lexicons.load(name)


def key_lexicon(key_id: str) -> str:
    """The name of an API key's own lexicon."""
    return f"key.{key_id}"


def named_or_file(lexicons: LexiconStore, name: str) -> Lexicon:
    """A stored lexicon by name, or a lexicon file by path; :class:`InputError` when neither exists."""
    path = Path(name).expanduser()
    if path.suffix in (".tsv", ".yaml", ".yml") and path.is_file():
        return read_file(path)
    if path.suffix in (".tsv", ".yaml", ".yml") or "/" in name:  # meant as a file ("is not a lexicon name" said otherwise)
        what = "is a folder, not a lexicon file" if path.is_dir() else "not found"
        raise InputError(f"lexicon file {name} {what}: give a .tsv or .yaml file, or a stored lexicon's name "
                         "('demod-voice lexicon list')")
    found = lexicons.load(check_name(name))
    if found is None:
        raise InputError(f"there is no lexicon '{name}': list them with 'demod-voice lexicon list', or give a .tsv/.yaml file")
    return found


def server_lexicons(lexicons: LexiconStore, configured: Iterable[str]) -> Lexicon:
    """``default`` (when it exists) and then each ``serve.lexicons`` entry."""
    found = [lexicons.load(DEFAULT)]
    found += [named_or_file(lexicons, str(name)) for name in configured if str(name) != DEFAULT]
    return merge(*found)


def request_lexicon(value: Any) -> Lexicon:
    """A request's own entries: ``{WORD: PHONEMES or {phonemes, say, match_case}}`` or a list of entries or TSV text."""
    if value is None or value == "" or value == {} or value == []:
        return EMPTY
    lexicon = parse(value, "tsv", "the request's lexicon") if isinstance(value, str) else from_data(value, "the request's lexicon")
    if len(lexicon.entries) > MAX_REQUEST_ENTRIES:
        raise InputError(f"the request's lexicon has more than {MAX_REQUEST_ENTRIES} entries; store it with PUT /v1/lexicons/NAME")
    return lexicon


def reading(lexicons: LexiconStore, normalize: bool = True, server: Iterable[str] = (), voice: Optional[str] = None,
            key_id: Optional[str] = None, own: Lexicon = EMPTY, extra: Iterable[str] = (), rate: float = 1.0,
            sentence_pause: float = 0.0, max_spoken: int = 0) -> TextOptions:
    """How a request's text is read: its lexicons merged by scope (server < voice < key < ``extra`` < ``own``)."""
    layers = [server_lexicons(lexicons, server)]
    if voice:
        layers.append(_voice_layer(lexicons, voice))
    if key_id:
        layers.append(lexicons.load(key_lexicon(key_id)))
    layers += [named_or_file(lexicons, name) for name in extra]
    layers.append(own)
    return TextOptions(normalize=normalize, lexicon=merge(*layers), rate=rate, sentence_pause=sentence_pause,
                       max_spoken=max_spoken)
