from __future__ import annotations

import io
import time

import pytest

from demod_voice.audio.text import SentenceStream, load_text, split_sentences
from demod_voice.errors import InputError


def words(pieces):
    return " ".join(pieces).split()


@pytest.mark.parametrize("limit", [20, 60, 250])
def test_split_respects_the_limit_and_drops_nothing(limit):
    text = ("A first sentence. " + "word " * 120 + "ends, with clauses, here. " + "x" * 70 + ". Last!")
    pieces = split_sentences(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join(words(pieces)) == "".join(text.split())


def test_sentences_are_kept_whole_when_they_fit():
    assert split_sentences("Hello there.  How are you?\nFine!", 250) == ["Hello there.", "How are you?", "Fine!"]
    assert split_sentences("你好。我很好！谢谢", 82) == ["你好。", "我很好！", "谢谢"]


def test_a_title_an_initial_or_a_lowercase_word_after_a_full_stop_ends_no_sentence():
    """A book's takes broke at "Mr." and "J.", and before "on" after "p.m.": each piece got a sentence's pause."""
    text = "They went to see Mr. Smith at 3 p.m. on Monday. By J. R. R. Tolkien. “Stop!” he cried. Then; after: it."
    assert split_sentences(text, 250) == ["They went to see Mr. Smith at 3 p.m. on Monday.", "By J. R. R. Tolkien.",
                                          "“Stop!” he cried.", "Then;", "after:", "it."]


def test_load_text_from_stdin_and_empty():
    assert load_text("-", io.StringIO("  spoken words \n")) == "spoken words"
    with pytest.raises(InputError, match="empty"):
        load_text("-", io.StringIO("\n"))


def test_bytes_on_stdin_that_are_not_utf8_are_named_so_whatever_the_locale():
    """In a C locale Python reads stdin with surrogateescape: bad bytes went on as "a lone surrogate (not valid Unicode)"."""
    stdin = io.TextIOWrapper(io.BytesIO(b"Hello \xff\xfe world."), encoding="utf-8", errors="surrogateescape")
    with pytest.raises(InputError, match=r"not valid UTF-8 \(invalid start byte at byte 6\); convert it with iconv"):
        load_text("-", stdin)
    assert load_text("-", io.TextIOWrapper(io.BytesIO("Héllo.".encode()), encoding="ascii", errors="surrogateescape")) == "Héllo."


@pytest.mark.parametrize("text", ["...", "🙂🙂🙂", "?! —"])
def test_text_without_a_word_is_refused(text):
    """``xtts-zero-shot me.wav "..."`` made sound of it and exited 0."""
    with pytest.raises(InputError, match="holds no words, only punctuation or symbols"):
        load_text(text)


@pytest.mark.parametrize("text", ["こんにちは", "42", "Ça va ?"])
def test_text_of_any_script_or_digits_is_kept(text):
    assert load_text(text) == text


def test_text_arriving_in_pieces_ends_no_sentence_at_a_title_or_an_initial():
    """A stream (Wyoming's, piper-infer's piped stdin) gave "Dr." alone, spoken "Doctor." with a sentence's fall and
    pause, and "J." and "R." the same; text read whole (split_sentences) kept them with the name."""
    stream = SentenceStream()
    assert stream.add("Dr. Smith and J. R. Tolkien met. Then") == ["Dr. Smith and J. R. Tolkien met."]
    assert stream.add(" ask Mr.") == [] and stream.add(" Jones.\n") == ["Then ask Mr. Jones."]
    assert stream.add("Ask Mr.") == [] and stream.add("\n\n") == ["Ask Mr."]  # a blank line ends it all the same


def test_text_arriving_in_pieces_ends_no_sentence_before_a_lowercase_word_and_waits_for_nothing():
    """A stream gave "at 5 p.m." and "on Monday." as two sentences, and '"Really?"' and "she asked.", each with a
    sentence's fall and pause, where text read whole (split_sentences) keeps them one. What follows a mark is weighed
    when it has come with it; a mark with nothing after it yet still ends its sentence at once (no caller waits)."""
    text = 'We meet at 5 p.m. on Monday. "Really?" she asked. Yes. then no! Fine. '
    whole = split_sentences(text, 250)
    assert whole == ["We meet at 5 p.m. on Monday.", '"Really?" she asked.', "Yes. then no!", "Fine."]
    stream = SentenceStream()
    assert stream.add(text) == whole and stream.finish() == ""
    tokens = [word if i == 0 else f" {word}" for i, word in enumerate(text.split())]  # an LLM's: the space goes with the word
    said = [(i, sentence) for i, token in enumerate(tokens) for sentence in stream.add(token)]
    assert said == [(7, whole[0]), (10, whole[1]), (13, whole[2])] and stream.finish() == "Fine."  # each at its next word
    assert stream.add("Done. ") == ["Done."]  # nothing after it yet: given now, not held for what comes
    assert stream.add("at 5 p.m.\n") == ["at 5 p.m."] and stream.add("on time.\n") == ["on time."]


def test_initials_arriving_a_few_characters_at_a_time_are_weighed_once_each():
    """Every piece weighed every end mark held again, each against all the text before it: a Wyoming client that sent
    4 KB of initials ("A. A. A. ...", no sentence end among them) three characters per synthesize-chunk kept the
    server's event loop busy for as long as this took (97 s here). Each mark is now weighed once, by the few characters
    before it, and a title or an initial still ends no sentence."""
    stream = SentenceStream()
    started = time.perf_counter()
    said = [sentence for _ in range(1365) for sentence in stream.add("A. ", 4096)]
    took = time.perf_counter() - started
    assert said == [] and took < 1.0, took
    assert stream.add("Bob. Next", 4096) == ["A. " * 1365 + "Bob."] and stream.finish() == "Next"
    assert stream.add("Ask Dr.") == [] and stream.add(" ") == [] and stream.add("\n") == [] and stream.add("\nOn") == ["Ask Dr."]
    assert stream.add(" xCapt. Yes. ") == ["On xCapt.", "Yes."]  # "xCapt." is no title: the mark is weighed with what comes before


def test_an_abbreviation_before_a_number_ends_no_sentence():
    """A book's take ended "he arrived at No." (said "no", with a sentence's fall) and the next began "10 Downing Street";
    "Vol. 2", "Fig. 3", "pp. 12-15" broke the same way. A number after them is theirs; a word is a sentence's."""
    text = ("After a long and tiring journey across the whole country, he arrived at No. 10 Downing Street. See Vol. 2, "
            "Fig. 3 and pp. 12-15. The answer was No. Then he left. He paid 2s. 6d. for it.")
    assert split_sentences(text, 250) == [
        "After a long and tiring journey across the whole country, he arrived at No. 10 Downing Street.",
        "See Vol. 2, Fig. 3 and pp. 12-15.", "The answer was No.", "Then he left.", "He paid 2s. 6d. for it."]


def test_text_arriving_in_pieces_ends_no_sentence_at_an_abbreviation_before_a_number():
    """A stream (Wyoming's, piper-infer's piped stdin) still ended a sentence "he lives at No." (said "no", with a
    sentence's fall) and began the next "10 Downing Street", which text read whole has kept together since 3b296c0."""
    text = "He lives at No. 10 Downing Street. See Vol. 2, Fig. 3 and pp. 12-15. It cost 2s. 6d. Turn to p. 7 now. "
    whole = split_sentences(text, 250)
    assert whole == ["He lives at No. 10 Downing Street.", "See Vol. 2, Fig. 3 and pp. 12-15.", "It cost 2s. 6d.",
                     "Turn to p. 7 now."]
    stream = SentenceStream()
    assert stream.add(text) == whole and stream.finish() == ""
    tokens = [word if i == 0 else f" {word}" for i, word in enumerate(text.split())]  # an LLM's: the space goes with the word
    assert [sentence for token in tokens for sentence in stream.add(token)] == whole[:-1] and stream.finish() == whole[-1]
    assert stream.add("The answer was No. Then he left. ") == ["The answer was No.", "Then he left."]  # a word: a sentence's end


def test_a_time_zone_after_pm_ends_no_sentence():
    """"The game starts at 7:30 p.m. ET on ESPN." was cut at "p.m.": the next sentence began "ET", which espeak read as
    the word "et", after a sentence's fall and pause."""
    text = "The game starts at 7:30 p.m. ET on ESPN. Doors open at 9 a.m. (PST) daily. Up at 6 a.m. Then home. "
    whole = ["The game starts at 7:30 p.m. ET on ESPN.", "Doors open at 9 a.m. (PST) daily.", "Up at 6 a.m.", "Then home."]
    assert split_sentences(text, 250) == whole
    stream = SentenceStream()
    tokens = [word if i == 0 else f" {word}" for i, word in enumerate(text.split())]
    assert [sentence for token in tokens for sentence in stream.add(token)] == whole[:-1] and stream.finish() == whole[-1]
