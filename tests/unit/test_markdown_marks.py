"""Markdown marks dropped from what a Wyoming client asks to be read (speech_text/markdown.py)."""

from __future__ import annotations

import pytest

from demod_voice.speech_text.markdown import unmarked


@pytest.mark.parametrize(("written", "read"), [
    ("**Done.** The light is on.", "Done. The light is on."),
    ("I set a timer for *ten minutes*.", "I set a timer for ten minutes."),
    ("***Very*** important, __not__ this.", "Very important, __not__ this."),
    ("**Heating:** *on*, **lights:** off", "Heating: on, lights: off"),
    ("**bold with *stress* inside**", "bold with stress inside"),
    ("## Next steps\nCall me.", "Next steps\nCall me."),
    ("Your list:\n* milk\n  * eggs\n* bread", "Your list:\nmilk,\n  eggs,\nbread,"),
    ("Lights on:\n- Kitchen\n- **Living room**\n+ Porch.\n1. Garage\n2) Hall: off", "Lights on:\nKitchen,\nLiving room,\nPorch."
     "\n1. Garage,\n2) Hall: off,"),  # a pause after each item, as its comma gives ("milk eggs bread" ran together)
    ("See the [weather report](https://example.com/weather?city=Bern) for details.", "See the weather report for details."),
    ('[**Docs**](<https://example.com/a b> "The docs")', "Docs"),
    ("**Done.", "Done."), ("The light is on.**", "The light is on."),  # a stream's two sentences of one bold run
])
def test_marks_a_voice_would_name_are_dropped(written, read):
    assert unmarked(written) == read


@pytest.mark.parametrize("kept", ["2 * 3 = 6", "2*3*4 is 24", "#1 priority", "a * b * c", "5 ** 2", "rated 4*", "* ",
                                  "a [note] (aside)", "![a cat](cat.png)", "-5 degrees\nand 2023. A year"])
def test_arithmetic_and_lone_marks_are_kept(kept):
    assert unmarked(kept) == kept
