"""The server's policy for conversion rows (``source``): a row names an uploaded recording, never a path."""

from __future__ import annotations

import pytest

from demod_voice.batch.rows import RemoteRules, Row, check_remote_row, check_remote_rows, clones, read_rows
from demod_voice.errors import InputError

RULES = RemoteRules(max_input_chars=100, references={"ref.wav": "refs/0.wav"}, voice_exists=lambda name: name == "bob",
                    piper_path=lambda name: f"voices/{name}.onnx", sources={"take 1.wav": "srcs/0.wav", "take2.mp3": "srcs/1.wav"})


def test_a_conversion_row_is_rewritten_to_the_jobs_files():
    row = check_remote_row(Row(2, {"source": "take 1.wav", "reference": "ref.wav", "output": "a.wav"}), RULES)
    assert (row["source"], row["reference"], row["text"]) == ("srcs/0.wav", "refs/0.wav", "")
    assert check_remote_row(Row(2, {"source": "take2.mp3", "voice": "bob", "output": "b/c.flac"}), RULES)["source"] == "srcs/1.wav"
    assert check_remote_row(Row(2, {"text": "Hi.", "output": "t.wav", "voice": "bob"}), RULES)["source"] == ""  # text rows unchanged
    assert clones({"source": "take2.mp3", "voice": "bob"}) and not clones({"text": "Hi.", "voice": "bob"})  # the enroll scope


@pytest.mark.parametrize(("values", "words"), [
    ({"source": "/etc/passwd", "reference": "ref.wav", "output": "a.wav"}, "'/etc/passwd' was not uploaded"),
    ({"source": "srcs/0.wav", "reference": "ref.wav", "output": "a.wav"}, "'srcs/0.wav' was not uploaded"),
    ({"source": "../take 1.wav", "reference": "ref.wav", "output": "a.wav"}, "was not uploaded"),
    ({"source": "ref.wav", "reference": "ref.wav", "output": "a.wav"}, "'ref.wav' was not uploaded"),
    ({"source": "take 1.wav", "reference": "ref.wav", "output": "a.wav", "text": "Hello"}, "leave 'text' empty"),
    ({"source": "take 1.wav", "output": "a.wav"}, "one of the two"),
    ({"source": "take 1.wav", "reference": "ref.wav", "voice": "bob", "output": "a.wav"}, "one of the two"),
    ({"source": "take 1.wav", "voice": "alice", "output": "a.wav"}, "no enrolled voice 'alice'"),
    ({"source": "take 1.wav", "reference": "/srv/ref.wav", "output": "a.wav"}, "was not uploaded"),
    ({"source": "take 1.wav", "voice": "bob", "model": "tiny", "output": "a.wav"}, "takes no 'model'"),
    ({"source": "take 1.wav", "voice": "bob", "backend": "piper", "output": "a.wav"}, "does not convert"),
    ({"source": "take 1.wav", "voice": "bob", "output": "../a.wav"}, "inside the job"),
])
def test_a_conversion_row_naming_what_the_job_does_not_hold_is_refused(values, words):
    with pytest.raises(InputError) as caught:
        check_remote_row(Row(2, values), RULES)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_checked_csv_keeps_the_source_column(tmp_path):
    sheet = tmp_path / "rows.csv"
    sheet.write_text("source,reference,output\ntake 1.wav,ref.wav,a.wav\ntake2.mp3,ref.wav,b.wav\n")
    written = tmp_path / "input.csv"
    written.write_text(check_remote_rows(read_rows(sheet), RULES))
    rows = read_rows(written)
    assert [(r.values["source"], r.values["reference"], r.values["text"]) for r in rows] == [("srcs/0.wav", "refs/0.wav", ""),
                                                                                            ("srcs/1.wav", "refs/0.wav", "")]


def test_a_quote_never_closed_is_named_with_its_line(tmp_path):
    """It was read as one cell to the end of the file, and reported as "the output is empty"."""
    sheet = tmp_path / "rows.csv"
    sheet.write_text('text,output\nFine.,a.wav\n"Hello there.,b.wav\nSecond line.,c.wav\n')
    with pytest.raises(InputError, match="the quote opened on line 3 is never closed"):
        read_rows(sheet)
    sheet.write_text('text,output\n"Hello, ""there"".",a.wav\n"two\nlines",b.wav\n')  # quotes closed, one cell on two lines
    assert [row.values["output"] for row in read_rows(sheet)] == ["a.wav", "b.wav"]


def test_an_output_inside_another_rows_output_is_refused():
    """``x.wav`` and ``x.wav/y.wav`` both passed the row checks; then one row failed with 'Is a directory'."""
    rows = [Row(2, {"text": "One.", "output": "x.wav", "model": "tiny"}), Row(3, {"text": "Two.", "output": "x.wav/y.wav", "model": "tiny"})]
    with pytest.raises(InputError, match="line 3: output 'x.wav/y.wav' is inside line 2's output, a file"):
        check_remote_rows(rows, RULES)
    with pytest.raises(InputError, match="line 3: output 'x.wav' is a folder that line 2 writes into"):
        check_remote_rows([Row(2, rows[1].values), Row(3, rows[0].values)], RULES)
    check_remote_rows([Row(2, {**rows[0].values, "output": "a/x.wav"}), Row(3, {**rows[1].values, "output": "a/y.wav"})], RULES)
