"""How the server reads a request's text: normalisation, and the lexicons of each scope merged
(``serve.lexicons`` < the voice's < the caller's key's < the request's own), for every front door."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

from demod_voice.config import Config, cache_root
from demod_voice.errors import ConfigError, InputError
from demod_voice.logs import printable
from demod_voice.serve.auth import Caller
from demod_voice.speech_text import scopes
from demod_voice.speech_text.instructions import pause_from_instructions, rate_from_instructions
from demod_voice.speech_text.lexicon import Lexicon, LexiconStore, check_name
from demod_voice.speech_text.prepare import TextOptions

log = logging.getLogger(__name__)

SPOKEN_GROWTH = 12
"""What a request's text may grow to when read, times ``serve.limits.max_input_chars``: numbers spelled out make text up
to ~8x as long ("£1,777,777.77", "¾"); a lexicon's respellings had no bound (a worker spoke one request for its whole
deadline)."""


def store(ctx: Any) -> LexiconStore:
    """The lexicons the server keeps (the cache folder's ``lexicons/``, shared with ``demod-voice lexicon``)."""
    return scopes.store(ctx.cache)


def reading_for(ctx: Any, voice_id: str, caller: Optional[Caller] = None, normalize: bool = True, lexicon: Any = None,
                instructions: Optional[str] = None) -> TextOptions:
    """The text options of one request to ``voice_id`` (``name`` or ``name:speaker``) from ``caller``."""
    rate, pause = rate_from_instructions(instructions), pause_from_instructions(instructions)
    if instructions:
        followed = [f"speaking rate x{rate}"] * (rate != 1.0) + [f"{pause} s after each sentence"] * (pause > 0)
        log.info("instructions: %s; the rest is ignored (Piper and XTTS take no style prompt): %s",
                 ", ".join(followed) or "nothing this server can follow", printable(instructions[:80]))  # a client's words
    return scopes.reading(store(ctx), normalize, server=getattr(ctx.settings, "lexicons", None) or (),
                          voice=voice_id.split(":", 1)[0] or None, key_id=caller.owner if caller and caller.owner else None,
                          own=request_own(ctx, lexicon, caller), rate=rate, sentence_pause=pause,
                          max_spoken=SPOKEN_GROWTH * ctx.settings.limits.max_input_chars)


def may_read(caller: Optional[Caller], name: str) -> bool:
    """Whether ``caller`` may read the stored lexicon ``name``: the server's and the voices' any caller, a key's own
    (``key.ID``) only that key, or an admin."""
    own = scopes.key_lexicon(caller.owner) if caller and caller.owner else ""
    return not name.startswith("key.") or name == own or bool(caller and caller.may("admin"))


def request_own(ctx: Any, value: Any, caller: Optional[Caller]) -> Lexicon:
    """A request's own ``lexicon``: its entries, TSV text, or (one word, no tab: as the CLI's ``--lexicon``) the name of
    a stored lexicon the caller may read."""
    if not (isinstance(value, str) and value.strip() and "\t" not in value and "\n" not in value.strip()):
        return scopes.request_lexicon(value)
    name = value.strip()
    try:
        found = store(ctx).load(check_name(name)) if may_read(caller, name) else None
    except InputError:
        found = None
    if found is None:
        raise InputError(f"the request's lexicon '{name[:60]}' is neither TSV (a line of WORD, a tab, PHONEMES per word) nor "
                         "a stored lexicon this key may read: GET /v1/lexicons lists those")
    return found


def read_by(ctx: Any, speech: Any, caller: Optional[Caller] = None) -> Any:
    """``speech`` (a resolved voice) reading its texts with the server's lexicons and normalisation (the Wyoming and
    page front doors: no per-request options)."""
    return dataclasses.replace(speech, reading=reading_for(ctx, speech.voice_id, caller))


def check_configured(config: Config) -> None:
    """Refuse to start with a ``serve.lexicons`` entry that does not exist or does not parse (every request would fail)."""
    try:
        scopes.server_lexicons(scopes.store(cache_root(config)), config.serve.lexicons or ())
    except InputError as err:
        raise ConfigError(f"serve.lexicons: {err}") from None
