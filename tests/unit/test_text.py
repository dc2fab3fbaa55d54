from __future__ import annotations

import io

import pytest

from demod_voice.audio.text import load_text, split_sentences
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
