"""The book's verdict on a take: what the recogniser heard against the text and its spoken form."""

from __future__ import annotations

from demod_voice.book.verify import judge
from demod_voice.speech_text.normalize import normalize

TEXT = "Dr. Smith arrived on 12/05/2026 at 9:05 pm."
HEARD = "Dr. Smith arrived on December 5th, 2026 at 9.05pm."  # what Whisper tiny.en wrote for the take, spoken right


def test_a_take_heard_in_the_recognisers_own_way_of_writing_it_passes():
    """Neither the book's words nor the spoken ones matched Whisper's way of writing the date and time (WER 0.36): the
    take was remade twice and still reported as failing verification. The heard text is now compared spoken too."""
    spoken = normalize(TEXT, "en")
    assert judge(TEXT, HEARD, 3.5, 0.35, spoken).problem.startswith("word error rate")  # the two old comparisons
    verdict = judge(TEXT, HEARD, 3.5, 0.35, spoken, "en")
    assert verdict.ok and verdict.wer == 0.0, verdict


def test_a_take_that_says_something_else_still_fails():
    spoken = normalize(TEXT, "en")
    verdict = judge(TEXT, "Doctor Smith left on March 3rd, 1999 at 4.10am.", 3.5, 0.35, spoken, "en")
    assert not verdict.ok and verdict.problem.startswith("word error rate")


def test_accents_are_folded_as_a_recogniser_writes_them():
    """An English recogniser writes "Zoe" and "cafe": a take saying "Zoë's naïve café" right failed at WER 0.75."""
    verdict = judge("Zoë said naïve café.", "Zoe said naive cafe.", 1.5, 0.35)
    assert verdict.ok and verdict.wer == 0.0, verdict
