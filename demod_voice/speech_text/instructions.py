"""OpenAI's ``instructions`` (a style prompt for its gpt-4o voices), mapped where our engines can follow:
the speaking rate. Everything else (tone, emotion, accent, whispering, pitch) is ignored, and said so
at ``-v``: Piper and XTTS take no prompt.
"""

from __future__ import annotations

import re

_RATES = (
    (re.compile(r"\b(very|extremely|really)\s+(slow(ly)?)\b", re.IGNORECASE), 0.7),
    (re.compile(r"\b(very|extremely|really)\s+(fast|quick(ly)?|rapid(ly)?)\b", re.IGNORECASE), 1.35),
    (re.compile(r"\b(slow(ly|er)?|unhurried|leisurely|calm(ly)?\s+pace)\b", re.IGNORECASE), 0.85),
    (re.compile(r"\b(fast(er)?|quick(ly|er)?|rapid(ly)?|brisk(ly)?|hurried(ly)?)\b", re.IGNORECASE), 1.2),
)


def rate_from_instructions(instructions: str | None) -> float:
    """The speaking rate ``instructions`` ask for (1.0 when they say nothing about pace)."""
    for pattern, rate in _RATES:
        if instructions and pattern.search(instructions):
            return rate
    return 1.0
