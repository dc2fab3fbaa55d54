"""Pronunciation lexicons over HTTP: ``GET /v1/lexicons``, ``GET /v1/lexicons/{name}``, ``PUT /v1/lexicons/{name}``.

A lexicon is what ``demod-voice lexicon`` edits (the same files). Who may do what: any ``speak`` key
reads the server's lexicons and its own; writing the server's (any name but ``key.ID``) needs
``admin``; a key writes its own lexicon, ``key.<its id>`` (``GET /v1/lexicons`` says which), with
``enroll``. ``PUT`` takes JSON (``{"entries": [{"word", "phonemes", "say", "match_case"}]}`` or
``{WORD: PHONEMES}``), YAML, or TSV (``Content-Type: text/tab-separated-values``) and replaces the
lexicon whole; an empty entry list deletes it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from demod_voice.errors import InputError
from demod_voice.serve.auth import Caller
from demod_voice.serve.errors import ApiError
from demod_voice.serve.http.deps import Context, Speaker, require
from demod_voice.serve.http.guard import LEXICON_BYTES
from demod_voice.serve.lexicons import may_read, store
from demod_voice.speech_text import scopes
from demod_voice.speech_text.lexicon import Lexicon, check_name, from_data, parse, to_data

router = APIRouter(dependencies=[Depends(require("speak"))])

MAX_BODY = LEXICON_BYTES
"""Bytes of one PUT body."""


def _own(caller: Caller) -> str:
    return scopes.key_lexicon(caller.owner) if caller.owner else ""


def _check_name(name: str) -> str:
    try:
        return check_name(name)
    except InputError as err:
        raise ApiError(400, str(err), code="invalid_name") from None


@router.get("/v1/lexicons")
async def list_lexicons(ctx: Context, caller: Speaker) -> dict:
    """The lexicons the caller may read, and the name of its key's own."""
    names = [n for n in store(ctx).names() if may_read(caller, n)]
    return {"object": "list", "data": names, "own": _own(caller) or None, "server": list(getattr(ctx.settings, "lexicons", None) or [])}


@router.get("/v1/lexicons/{name}")
async def get_lexicon(name: str, ctx: Context, caller: Speaker) -> dict:
    """One lexicon's entries."""
    _check_name(name)
    found = store(ctx).load(name) if may_read(caller, name) else None
    if found is None:
        raise ApiError(404, f"there is no lexicon '{name}' (GET /v1/lexicons lists them)", code="not_found")
    return {"name": name, "entries": to_data(found)}


@router.put("/v1/lexicons/{name}")
async def put_lexicon(name: str, request: Request, ctx: Context, caller: Speaker) -> dict:
    """Replace lexicon ``name`` with the body's entries (admin for server lexicons, enroll for the key's own)."""
    _check_name(name)
    own = name == _own(caller)
    if name.startswith("key.") and not own and not caller.may("admin"):
        raise ApiError(403, "a key may write only its own lexicon (GET /v1/lexicons names it)", "permission_error")
    needed = "enroll" if own else "admin"
    if not caller.may(needed):
        raise ApiError(403, f"this API key may not do this: it needs the '{needed}' scope", "permission_error", "missing_scope")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, f"a lexicon may be at most {MAX_BODY // 1024} KiB; split it", code="too_large")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, f"a lexicon may be at most {MAX_BODY // 1024} KiB; split it", code="too_large")
    lexicon = _parse_body(body, request.headers.get("content-type", ""), name)
    lexicons = store(ctx)
    if not lexicon.entries:
        path = lexicons.path(name)
        if path is not None:
            path.unlink()
        return {"name": name, "entries": []}
    lexicons.save(name, lexicon)
    return {"name": name, "entries": to_data(lexicon)}


class _Repeated(Exception):
    """A JSON object gives one key twice with different values."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; :class:`_Repeated` when a key is given twice with different values."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise _Repeated(key)
        out[key] = value
    return out


def _parse_body(body: bytes, content_type: str, name: str) -> Lexicon:
    try:
        text = body.decode("utf-8-sig")  # a file saved with a byte order mark (curl --data-binary @names.tsv)
    except UnicodeDecodeError:
        raise ApiError(400, "the lexicon is not UTF-8 text; send it as UTF-8", code="invalid_lexicon") from None
    try:
        if "tab-separated" in content_type or content_type.startswith("text/plain"):
            return parse(text, "tsv", f"lexicon {name}")
        if "json" in content_type:
            try:
                data: Any = json.loads(text, object_pairs_hook=_once_each) if text.strip() else {}
            except _Repeated:  # a key given twice (json keeps the last silently): the YAML reader names both lines
                return parse(text, "yaml", f"lexicon {name}")
            except json.JSONDecodeError as err:
                raise InputError(f"lexicon {name}: not valid JSON (line {err.lineno}, column {err.colno})") from None
            except RecursionError:
                raise InputError(f"lexicon {name}: nested too deeply to be a lexicon") from None
            return from_data(data, f"lexicon {name}")
        return parse(text, "yaml", f"lexicon {name}")
    except InputError as err:
        raise ApiError(400, str(err), code="invalid_lexicon") from None
