"""Batch files as spreadsheets export them: what ``read_rows`` takes and what it refuses, in one line that says what to do."""

from __future__ import annotations

import pytest

from demod_voice.batch.rows import read_rows
from demod_voice.errors import InputError


def test_empty_nameless_columns_at_the_end_of_a_spreadsheet_export_are_ignored(tmp_path):
    # LibreOffice and Excel end every line in empty columns once a cell out there was touched
    sheet = tmp_path / "lines.csv"
    sheet.write_bytes("\ufeffText,Output,,\r\nHello.,a.wav,,\r\n,,,\r\nBye.,b.wav,,\r\n".encode())
    rows = read_rows(sheet)
    assert [(row.line, row.values) for row in rows] == [(2, {"text": "Hello.", "output": "a.wav"}),
                                                       (4, {"text": "Bye.", "output": "b.wav"})]


def test_a_nameless_column_that_holds_a_value_is_refused_with_its_place(tmp_path):
    sheet = tmp_path / "lines.csv"
    sheet.write_text("text,output,\nHello.,a.wav,\nBye.,b.wav,keep me\n")
    with pytest.raises(InputError) as caught:
        read_rows(sheet)
    message = str(caught.value)
    assert "column 3 has no name in the header, but line 3 has a value in it" in message
    assert "name it" in message and "delete the column" in message and "\n" not in message


def test_a_header_of_commas_alone_is_an_empty_file(tmp_path):
    sheet = tmp_path / "lines.csv"
    sheet.write_text(",,\nHello.,a.wav,\n")
    with pytest.raises(InputError, match="is empty; the first line must be a header"):
        read_rows(sheet)


def test_a_sheets_own_columns_are_refused_saying_what_to_do(tmp_path):
    sheet = tmp_path / "lines.csv"
    sheet.write_text("id,text,output,notes\n1,Hello.,a.wav,take two\n")
    with pytest.raises(InputError) as caught:
        read_rows(sheet)
    assert "unknown column(s) notes (delete or rename them); columns are reference, text, output" in str(caught.value)
    sheet.write_text("Text,File\nHello.,a.wav\n")
    with pytest.raises(InputError, match=r"unknown column\(s\) file \(rename 'file' to 'output'\)"):
        read_rows(sheet)


def test_a_rows_id_names_its_output_where_it_has_none(tmp_path):
    """A sheet of 50,000 lines keys its rows by an id column: it was refused ("unknown column(s) id"), and with the column
    deleted the rows had no names to find their audio by. Now ``id`` names ``ID.wav`` where a row has no output."""
    sheet = tmp_path / "lines.csv"
    sheet.write_bytes("\ufeffID,Text\r\n0001,Hello.\r\nch2/0002,Bye.\r\nintro.mp3,Hi.\r\n".encode())
    assert [(row.line, row.values["output"]) for row in read_rows(sheet)] == [(2, "0001.wav"), (3, "ch2/0002.wav"), (4, "intro.mp3")]
    sheet.write_text("id,text,output\n1,Hello.,\n2,Bye.,bye.flac\n")  # an output of its own wins
    assert [row.values["output"] for row in read_rows(sheet)] == ["1.wav", "bye.flac"]


def test_a_batch_file_on_a_closed_stdin_says_to_pipe_it_in(tmp_path, monkeypatch):
    """``demod-voice batch - <&-`` (a service or cron line with no input) ended with 'internal error: AttributeError:
    'NoneType' object has no attribute 'buffer''."""
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(InputError, match=r"^batch file on stdin: stdin is closed; pipe the CSV in \(.*\) or give its file name$"):
        read_rows(tmp_path / "stdin", stdin=True)


@pytest.mark.parametrize("mark", [";", "\t"])
def test_a_sheet_saved_where_the_decimal_mark_is_a_comma_is_read(tmp_path, mark):
    """Excel in German, French or Dutch saves "CSV UTF-8" with semicolons (its list separator): the file was refused
    with advice to save it comma-separated, which such an Excel cannot do. Quotes, CRLF and a quoted newline as ever."""
    sheet = tmp_path / "lines.csv"
    sheet.write_bytes(f'\ufeffText{mark}Output\r\n"Hallo; Welt, 3,5 %."{mark}a.wav\r\n{mark}\r\n"Zwei\r\nZeilen."{mark}b.wav\r\n'.encode())
    rows = read_rows(sheet)
    assert [(row.line, row.values) for row in rows] == [(2, {"text": "Hallo; Welt, 3,5 %.", "output": "a.wav"}),
                                                       (4, {"text": "Zwei\nZeilen.", "output": "b.wav"})]
    shifted = tmp_path / "shifted.csv"  # an unquoted separator in a text still moves the columns after it, and is said
    shifted.write_text(f"text{mark}output\nHallo{mark} Welt.{mark}a.wav\n")
    assert [row.extra for row in read_rows(shifted)] == [("a.wav",)]


@pytest.mark.parametrize("start", [b"PK\x03\x04\x14\x00\x06\x00\x08\x00", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00"])
def test_a_workbook_given_for_the_csv_says_to_save_it_as_csv(tmp_path, start):
    """``batch lines.xlsx`` (the sheet itself, not its CSV) said "not UTF-8 (line 1, byte 10); save it as UTF-8"."""
    book = tmp_path / "lines.xlsx"
    book.write_bytes(start + bytes(range(256)))
    with pytest.raises(InputError, match=r"is a spreadsheet workbook \(\.xlsx, \.ods, \.xls\), not CSV: save the sheet as CSV UTF-8"):
        read_rows(book)


def test_a_quoted_comma_in_a_semicolon_header_leaves_it_semicolon_separated(tmp_path):
    """``Text;Output;"Notiz, intern"`` (a German Excel's header with a column name holding a comma) was read as
    comma-separated: the whole line became one unknown column, ``text;output;"notiz``, and the rows were never read."""
    sheet = tmp_path / "lines.csv"
    sheet.write_text('"Text, gesprochen";Output\n"Hallo, Welt.";a.wav\n')
    with pytest.raises(InputError, match=r"unknown column\(s\) text, gesprochen \(delete or rename them\)"):
        read_rows(sheet)
    sheet.write_text('Text;"Output";"Notiz, intern"\n"Hallo, Welt.";a.wav;\n')
    with pytest.raises(InputError, match=r"unknown column\(s\) notiz, intern \(delete or rename them\)"):
        read_rows(sheet)
    sheet.write_text('"Text";"Output"\n"Hallo, Welt.";a.wav\n')
    assert [row.values for row in read_rows(sheet)] == [{"text": "Hallo, Welt.", "output": "a.wav"}]


def test_a_list_of_lines_with_no_header_says_to_put_one_first(tmp_path):
    """A ``.txt`` of one text a line was refused as "unknown column(s) hello there. (delete or rename them)": its first line
    was taken for a header of one column, and deleting it would have lost a row and said the same of the next."""
    sheet = tmp_path / "lines.txt"
    sheet.write_text("Hello, there.\nThe second line.\n")
    with pytest.raises(InputError) as caught:
        read_rows(sheet)
    message = str(caught.value)
    assert "has no header: its first line ('Hello, there.') names none of the columns; put a header line first, such as " \
           "'id,text' (each row is made as ID.wav)" in message and "\n" not in message, message


def test_a_separator_line_for_excel_above_the_header_is_read_as_the_separator(tmp_path):
    """``sep=;`` on the first line (written by scripts so that Excel opens a sheet right in every locale, and kept by
    Excel when it saves one) was taken for the header: "unknown column(s) sep=;"."""
    sheet = tmp_path / "lines.csv"
    sheet.write_bytes('\ufeffsep=;\r\nText;Output\r\n"Hallo, Welt.";a.wav\r\n"Zwei\r\nZeilen.";b.wav\r\nDrei.;c.wav\r\n'.encode())
    rows = read_rows(sheet)
    assert [(row.line, row.values) for row in rows] == [(3, {"text": "Hallo, Welt.", "output": "a.wav"}),
                                                       (4, {"text": "Zwei\nZeilen.", "output": "b.wav"}),
                                                       (6, {"text": "Drei.", "output": "c.wav"})]
    sheet.write_text('sep=,\ntext,output\n"Open,a.wav\n')
    with pytest.raises(InputError, match="the quote opened on line 3 is never closed"):
        read_rows(sheet)
