"""Outputs checked up front (:func:`demod_voice.paths.check_output_path`)."""

from __future__ import annotations

import pytest

from demod_voice.errors import InputError
from demod_voice.paths import check_output_path


def test_an_output_name_its_temporary_file_cannot_have_is_refused_before_any_work(tmp_path):
    """A name of 238 to 255 bytes is one the filesystem takes, but the file is written as '.NAME.XXXXXXXX.partial' first:
    'piper-infer voice.onnx TEXT -o NAME' loaded the voice, spoke, then failed 'File name too long'."""
    fits = tmp_path / ("a" * 233 + ".wav")
    assert check_output_path(fits) == fits
    with pytest.raises(InputError) as refused:
        check_output_path(tmp_path / ("a" * 246 + ".wav"))
    assert "longer than 237 bytes" in str(refused.value) and "shorten it" in str(refused.value)
