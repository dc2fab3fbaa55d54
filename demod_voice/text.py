"""Reading the text to speak."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from .errors import InputError


def load_text(value: str, stdin: Optional[TextIO] = None) -> str:
    """Return the text given on the command line, or read from stdin when ``value`` is ``-``.

    Raises :class:`InputError` for text that is empty or only white space, or stdin that is not UTF-8.
    """
    if value == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            value = stream.read()
        except UnicodeDecodeError as err:
            raise InputError(f"the text on stdin is not valid UTF-8 ({err.reason} at byte {err.start}); convert it with iconv") from None
    if not value.strip():
        raise InputError("the text is empty; give the words to speak, or '-' to read them from stdin")
    return value.strip()
