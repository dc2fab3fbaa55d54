"""Word timings of a Piper job from the durations its graph already outputs (frames per phoneme id).

VITS decides how many frames each phoneme id lasts before it makes any audio (``w_ceil``, the
output :func:`~demod_voice.backends.piper.graph.expose_durations` adds), and each frame is ``hop``
samples of audio. So where each phoneme sits in the sentence's audio is known exactly, not guessed
from the sound. What is left is which phonemes make which word of the job's text:

* **Phoneme words.** piper turns a sentence's phonemes into ids as BOS, pad, then each phoneme's
  ids followed by a pad, then EOS. espeak separates words by a space phoneme and keeps
  punctuation as phonemes of its own. A phoneme word is a run of phonemes between spaces,
  punctuation, BOS and EOS; the pad after a phoneme belongs to it (VITS's blank token carries the
  end of the sound before it). Spaces, punctuation (a comma's pause) and BOS/EOS belong to no word.
* **Text words to phoneme words**, in three ways, the first that applies (named in the job's value
  as ``timing``):

  1. ``counts``: as many phoneme words as text words: one to one, in order.
  2. ``phonemes``: espeak joins some words ("in the" is one phoneme word ``ɪnðə``, "I am" is
     ``aɪɐm``) and expands others ("$3.50" is five, "1984" three): each text word is phonemized
     alone and its phonemes are aligned with the sentence's (difflib, stress marks left out),
     so a word inside a joined group starts where its own phonemes start. Used when at least
     half of the words' phonemes find their place; a word whose phonemes found none is placed
     between its neighbours by its length in characters.
  3. ``characters``: otherwise (or for a job of more than :data:`MOST_ALIGNED_WORDS` words, where
     aligning costs more than it is worth): each word's share of the text's letters, laid over
     the job's phonemes in order (pauses between sentences fall between words, not inside them).

Times are seconds into the job's audio as written: sentence starts include the pauses put between
sentences. Nothing here imports an engine; the engine gives the ids, durations and a phonemizer.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

STRESS = frozenset("ˈˌ")
"""espeak's stress marks: phonemes of their own (they get frames), never compared when aligning."""
PUNCTUATION = frozenset(",.;:!?¡¿—…\"«»“”()[]")
"""Phonemes that are punctuation (a pause), never part of a word."""
MIN_ALIGNED = 0.5
"""At least this share of the text words' phonemes must find their place for ``phonemes`` timing."""
MOST_ALIGNED_WORDS = 1000
"""Jobs with more words are timed by ``characters`` (difflib's cost grows with the product of both lengths)."""


@dataclass(frozen=True)
class Sentence:
    """One sentence as the voice spoke it."""

    ids: Sequence[int]
    """Its phoneme ids (BOS, pads and EOS included)."""
    durations: Sequence[float]
    """Frames of audio per id (the graph's durations output, length scale applied)."""
    start: int
    """Sample where the sentence starts in the job's audio."""
    hop: int
    """Samples of audio per frame."""


@dataclass
class _Phone:
    char: str
    start: int
    end: int
    word: int


def word_times(text: str, sentences: Sequence[Sentence], id_map: Mapping[str, Sequence[int]], rate: int,
               phonemize: Optional[Callable[[str], str]] = None) -> tuple[list[list], str]:
    """``([[start, end, word], ...], timing)``: each word of ``text`` that has a letter or digit, with its start and
    end in seconds into the job's audio, and which of the three ways timed them (module docstring);
    ``([], "")`` when nothing was spoken. ``phonemize(word)`` gives a word's phonemes as one string."""
    tokens = [token for token in text.split() if any(ch.isalnum() for ch in token)]
    phones = _phones(sentences, id_map)
    if not tokens or not phones:
        return [], ""
    words = _phone_words(phones)
    spans: Optional[list[tuple[int, int]]] = None
    timing = "counts"
    if len(words) == len(tokens):
        spans = words
    elif phonemize is not None and len(tokens) <= MOST_ALIGNED_WORDS:
        spans, timing = _by_phonemes(tokens, phones, words, phonemize), "phonemes"
    if spans is None:
        spans, timing = _by_characters(tokens, phones), "characters"
    spans = _rising(spans)
    return [[round(start / rate, 3), round(end / rate, 3), token] for (start, end), token in zip(spans, tokens, strict=True)], timing


def spoken_seconds(sentences: Sequence[Sentence], pause: int, rate: int) -> float:
    """How long the job's audio is by the durations: every sentence's frames times its hop, and the pauses between."""
    frames = sum(max(int(round(sum(s.durations))), 1) * s.hop for s in sentences)
    return (frames + pause * max(0, len(sentences) - 1)) / rate


def _phones(sentences: Sequence[Sentence], id_map: Mapping[str, Sequence[int]]) -> list[_Phone]:
    """Every phoneme id that belongs to a word, with its sample span (its following pads included) and its phoneme word."""
    pads = set(id_map.get("_", ()))
    names = {ids[0]: name for name, ids in id_map.items() if len(ids) == 1}
    apart = {i for name in (" ", "^", "$") for i in id_map.get(name, ())}
    apart |= {i for name, ids in id_map.items() if name in PUNCTUATION for i in ids}
    out: list[_Phone] = []
    word = -1
    for sentence in sentences:
        inside, frame = False, 0.0
        for phone_id, width in zip(sentence.ids, sentence.durations, strict=False):
            begin = sentence.start + int(round(frame)) * sentence.hop
            frame += float(width)
            end = sentence.start + int(round(frame)) * sentence.hop
            if phone_id in pads:
                if inside:
                    out[-1].end = end
                continue
            if phone_id in apart:
                inside = False
                continue
            if not inside:
                word, inside = word + 1, True
            out.append(_Phone(names.get(phone_id, ""), begin, end, word))
    return out


def _phone_words(phones: list[_Phone]) -> list[tuple[int, int]]:
    """(start, end) in samples of each phoneme word."""
    spans: dict[int, list[int]] = {}
    for phone in phones:
        span = spans.setdefault(phone.word, [phone.start, phone.end])
        span[1] = phone.end
    return [(start, end) for start, end in spans.values()]


def _comparable(phonemes: str) -> list[str]:
    return [ch for ch in phonemes if ch not in STRESS and ch not in PUNCTUATION and not ch.isspace()]


def _by_phonemes(tokens: list[str], phones: list[_Phone], words: list[tuple[int, int]],
                 phonemize: Callable[[str], str]) -> Optional[list[tuple[int, int]]]:
    """Each token's span from its own phonemes aligned with the spoken ones; ``None`` when too few align."""
    ours, owner = [], []
    for number, token in enumerate(tokens):
        chars = _comparable(phonemize(token))
        ours += chars
        owner += [number] * len(chars)
    theirs = [index for index, phone in enumerate(phones) if phone.char and phone.char not in STRESS]
    if not ours or not theirs:
        return None
    first: list[Optional[int]] = [None] * len(tokens)
    last: list[Optional[int]] = [None] * len(tokens)
    matched = 0
    place = {index: k for k, index in enumerate(theirs)}
    blocks = difflib.SequenceMatcher(None, ours, [phones[i].char for i in theirs], autojunk=False).get_matching_blocks()
    for block in blocks:
        for k in range(block.size):
            number, index = owner[block.a + k], theirs[block.b + k]
            first[number] = index if first[number] is None else first[number]
            last[number] = index
            matched += 1
    if matched < MIN_ALIGNED * len(ours):
        return None
    known: list[Optional[tuple[int, int]]] = []
    for start, end in zip(first, last, strict=True):
        if start is None or end is None:
            known.append(None)
            continue
        begin, finish = phones[start].start, phones[end].end
        # A word that begins (ends) its phoneme word takes the phoneme word's edge: its stress mark, its last pad.
        if place[start] == 0 or phones[theirs[place[start] - 1]].word != phones[start].word:
            begin = words[phones[start].word][0]
        if place[end] == len(theirs) - 1 or phones[theirs[place[end] + 1]].word != phones[end].word:
            finish = words[phones[end].word][1]
        known.append((begin, finish))
    return _fill(known, [len(t) for t in tokens], phones[0].start, phones[-1].end)


def _fill(known: list[Optional[tuple[int, int]]], lengths: list[int], begin: int, end: int) -> list[tuple[int, int]]:
    """Unknown spans shared out between their known neighbours by their length in characters."""
    out: list[tuple[int, int]] = []
    number = 0
    while number < len(known):
        span = known[number]
        if span is not None:
            out.append(span)
            number += 1
            continue
        stop = next((k for k in range(number, len(known)) if known[k] is not None), len(known))
        low = out[-1][1] if out else begin
        high = max(low, known[stop][0] if stop < len(known) else end)
        total = sum(lengths[number:stop]) or 1
        position = float(low)
        for k in range(number, stop):
            step = (high - low) * lengths[k] / total
            out.append((int(round(position)), int(round(position + step))))
            position += step
        number = stop
    return out


def _by_characters(tokens: list[str], phones: list[_Phone]) -> list[tuple[int, int]]:
    """Each token's share of the letters laid over the phonemes in order."""
    lengths = [sum(ch.isalnum() for ch in token) or 1 for token in tokens]
    total, count = sum(lengths), len(phones)
    spans, before = [], 0
    for length in lengths:
        low = min(count - 1, before * count // total)
        high = max(low, min(count - 1, (before + length) * count // total - 1))
        spans.append((phones[low].start, phones[high].end))
        before += length
    return spans


def _rising(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Starts never fall, each word ends no later than the next starts and no earlier than it starts itself."""
    out: list[list[int]] = []
    for start, end in spans:
        if out:
            start = max(start, out[-1][0])
            out[-1][1] = min(out[-1][1], start)
        out.append([start, max(start, end)])
    return [(start, end) for start, end in out]
