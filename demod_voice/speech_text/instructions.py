"""OpenAI's ``instructions`` (a style prompt for its gpt-4o voices), mapped where our engines can follow:
the speaking rate, and pauses between sentences. Everything else (tone, emotion, accent, whispering,
pitch) is ignored, and said so at ``-v``: Piper and XTTS take no prompt.
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


_PAUSES = (
    (re.compile(r"\b(long|longer|dramatic|lengthy)\s+paus\w*|\bpaus\w*\s+(long|for\s+a\s+while|dramatically)", re.IGNORECASE), 0.8),
    (re.compile(r"\b(short|brief|small|slight)\s+paus\w*|\bpaus\w*\s+(briefly|shortly|a\s+little|slightly)", re.IGNORECASE), 0.25),
    (re.compile(r"\bpaus(e|es|ing)\b", re.IGNORECASE), 0.5),
)


def pause_from_instructions(instructions: str | None) -> float:
    """Seconds of silence after each sentence that ``instructions`` ask for ("pause between sentences"); 0: none."""
    if instructions and re.search(r"\b(no|without|don't|do not)\s+(\w+\s+)?paus", instructions, re.IGNORECASE):
        return 0.0
    for pattern, seconds in _PAUSES:
        if instructions and pattern.search(instructions):
            return seconds
    return 0.0
