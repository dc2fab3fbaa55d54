"""Emoji in the text to speak, dropped: an assistant's "Sure! 😊 Here you go." was read "sure, smiling face with smiling
eyes, here you go" (espeak-ng names each emoji; "🎉🎉" was "party popper party popper", "✓" "symbol two seven one three").
What a reader says of them is nothing, as most speech engines do; a keycap digit ("1️⃣ Preheat the oven") is its digit.

Symbols that are words stay for the engine to say: ™, ©, ®, arrows (→), the music signs ♭ and ♯, circled digits.
"""

from __future__ import annotations

import re

_KEYCAP = re.compile("([0-9])\ufe0f?\u20e3")
"""A keycap digit, 1️⃣: the digit, its variation selector and the combining keycap."""
_PICTOGRAPHS = ("\U0001f000-\U0001faff"  # pictographs, emoticons, transport, regional indicators (flags), skin tones
                "\u2600-\u266c\u2670-\u26ff"  # miscellaneous symbols (☀ ☎ ★ ♥ ⚠ ⚽), not the music signs ♭ ♮ ♯
                "\u2700-\u2775\u2794-\u27bf"  # dingbats (✂ ✅ ✓ ✨ ❌ ❤ ➡), not the circled digits ❶-➓
                "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"  # ⌚ ⌛ ⌨ ⏩ ⏰ ⏳ ⏸
                "\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u2139\u24c2\u3030\u303d"
                "\u3297\u3299")
_PICTURES = re.compile(f"[ \t]*(?:(?:[#*]\ufe0f?\u20e3|[{_PICTOGRAPHS}])[\ufe0e\ufe0f\u200d\U000e0020-\U000e007f]*)+")
"""A run of emoji, the spaces before it, and what each carries: its presentation selector, a joiner to the next (👨‍👩‍👧),
a flag's tag letters; a keycap # or *."""


def unpictured(text: str) -> str:
    """``text`` without its emoji and the spaces before them; a keycap digit kept as the digit."""
    if text.isascii():
        return text
    return _PICTURES.sub("", _KEYCAP.sub(r"\1", text))
