"""Batch rows: how a batch file is read, and what a row may hold and name, one policy for every front
door that takes rows (the ``batch`` command, the server's batch jobs, the web page).

Rows come from a user's own CSV (``batch``, the command line: local paths are theirs to name)
or from a remote client (the server's batch jobs and the web page: nothing a row names may
reach outside its job). Both meet the same text and output checks here, so a row refused by one
is refused by the other with the same words, and a row that passes is never refused later with
"(listed above)" where only a log could say why.

- ``text`` is the text itself, always: ``-`` means standard input only as a command-line argument,
  never in a row (a server's stdin is not its clients' to read). No NUL, no lone surrogates (not
  Unicode: nothing downstream can encode them), at most ``max_input_chars`` for remote rows.
- ``output`` names a file (not ``.``, not a folder) ending in an audio format the writer knows;
  remote rows: relative, inside the job, no ``..``, no ``~``.
- remote rows may name a ``reference`` only among the files uploaded with them (cloning: the
  ``enroll`` scope, see :func:`clones`), a ``voice`` only among enrolled profiles, a ``model`` only
  among the Piper voices the server offers.
- ``source`` (a conversion row: that recording re-spoken in the ``reference``'s or ``voice``'s voice,
  no ``text``): a remote row names one of the source recordings uploaded with it, never a path on the
  server; converting clones a voice, so it needs the ``enroll`` scope too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Optional

from demod_voice.backends import registry
from demod_voice.errors import InputError
from demod_voice.speech_text.prepare import text_problem
from demod_voice.voices.profiles import NAME

COLUMNS = ("reference", "text", "output", "language", "speaker", "backend", "model", "voice", "source", "id")
"""The columns a batch file may have (``text`` and ``output`` required; ``source`` may stand for ``text``, ``id`` for
``output``: a row's own id, a spreadsheet's first column, names its file ``ID.wav`` where it has no output)."""
OUTPUT_COLUMNS = ("reference", "text", "output", "language", "speaker", "backend", "model", "voice", "source")
"""The columns a checked remote CSV is written with (``reference`` and ``source`` name only files uploaded with the job)."""
FILE_COLUMNS = ("file", "filename", "file name", "file_name", "wav", "audio", "path")
"""Headers people give the output's column: refused (``file`` could as well be an input), saying to rename it."""
WORKBOOKS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
"""How a workbook begins: a zip (.xlsx, .ods, .numbers) or an OLE file (Excel's .xls before 2007)."""
SEP_HINT = re.compile(r'"?sep=([,;\t|])"?', re.IGNORECASE)
"""Excel's separator line (``sep=;``), above a sheet's header."""
MAX_PROBLEMS_SHOWN = 5
MAX_OUTPUT_BYTES = 1024
"""Bytes of a row's output path (Linux's paths end at 4,096 with the output folder's: one past them was an internal
error that stopped the whole check)."""


@dataclass
class Row:
    """One CSV row and the line it starts on."""

    line: int
    """1-based line of the row's first field."""
    values: dict[str, str]
    """Column -> stripped value."""
    extra: tuple[str, ...] = ()
    """Fields past the header's columns (an unquoted comma in a text: the row is refused, see :func:`check_shape`)."""


def check_shape(row: Row) -> None:
    """:class:`InputError` for a row with more fields than the header: its text held a comma and was not quoted, so
    every column after it moved (the text cut short, the output taken from the text's end)."""
    extra = [field for field in row.extra if field.strip()]
    if extra:
        raise InputError(f"the row has {len(row.extra)} field(s) more than the header's columns (the last: "
                         f"'{extra[-1].strip()[:40]}'): put a text that holds a comma in double quotes, as in "
                         '"Hello, world.",hello.wav')


def read_rows(path: Path, stdin: bool = False) -> list[Row]:
    """Parse the CSV (``stdin``: read from standard input, ``path`` only naming it); raise :class:`InputError` for an
    unreadable file, a missing header or unknown columns."""
    shown = "on stdin" if stdin else str(path)
    if stdin and sys.stdin is None:  # started with no input at all (a service, a cron line, '<&-')
        raise InputError("batch file on stdin: stdin is closed; pipe the CSV in (make-rows | demod-voice batch - ...) or give "
                         "its file name")
    try:
        data = sys.stdin.buffer.read() if stdin else path.read_bytes()
        # Excel's "Unicode Text" (tabs, UTF-16 with a byte-order mark, which says so; before Excel 2016 its only export
        # that keeps an é) was refused as "UTF-16, not UTF-8", as the book reader once refused Notepad's
        if data.startswith(WORKBOOKS):  # was "not UTF-8 (line 1, byte 10); save it as UTF-8"
            raise InputError(f"batch file {shown} is a spreadsheet workbook (.xlsx, .ods, .xls), not CSV: save the sheet as "
                             "CSV UTF-8 (File, Save As) and give that file")
        encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
        text = data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")  # as a text-mode read gives it
    except FileNotFoundError:
        raise InputError(f"batch file {path} not found; check the path (relative paths start from the current folder)") from None
    except UnicodeDecodeError as err:
        raise InputError(_not_utf8(shown, err)) from None
    except OSError as err:
        raise InputError(f"cannot read batch file {shown}: {err.strerror or err}") from None
    try:
        return _parse(text, shown)
    except csv.Error as err:
        if "field larger than field limit" in str(err):  # a cell of 131,072 characters: a long text, or a quote never closed
            raise InputError(f"batch file {shown} has a cell longer than {csv.field_size_limit():,} characters: split that text "
                             "over several rows, or close the quote left open before it") from None
        raise InputError(f"batch file {shown} is not readable CSV ({err}); check its quotes") from None


def _not_utf8(path: str, err: UnicodeDecodeError) -> str:
    """Where the file stops being UTF-8 (a line, not only a byte, in a file of thousands of lines), or UTF-16 (a
    spreadsheet's "Unicode text" export, cut short or damaged)."""
    data = err.object
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # its byte-order mark says UTF-16; a line count of b"\n" would be wrong
        return f"batch file {path} is not valid UTF-16 (byte {err.start}); save it as CSV UTF-8"
    line = data.count(b"\n", 0, err.start) + 1
    return f"batch file {path} is not UTF-8 (line {line}, byte {err.start}); save it as UTF-8"


def _delimiter(text: str) -> str:
    """The header line's separator: a comma, or where the header holds none, a semicolon (a spreadsheet's CSV where the
    decimal mark is a comma: Excel in German, French, Dutch... writes ``text;output`` even as "CSV UTF-8", and the
    advice to save it comma-separated was one it could not follow) or a tab. Quoted names do not count: a comma in
    ``text;output;"notes, misc"`` made the whole line one unknown column."""
    header = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])
    if "," not in header:
        for mark in ";\t":
            if mark in header:
                return mark
    return ","


def _separated(text: str) -> tuple[str, str, int]:
    """The sheet below its separator line, if it has one, the separator, and the lines above the header (0 or 1).
    ``sep=;`` on a line of its own is the separator Excel is to use (scripts write it so that a sheet opens right in
    every locale, and Excel keeps it): it was taken for the header, "unknown column(s) sep=;"."""
    hint = SEP_HINT.fullmatch(text.split("\n", 1)[0].strip())
    if hint:
        return text.partition("\n")[2], hint.group(1), 1
    return text, _delimiter(text), 0


def _parse(text: str, path: str) -> list[Row]:
    text, delimiter, above = _separated(text)
    unclosed = _unclosed_quote(text, delimiter)
    if unclosed is not None:  # the rest of the file was read as one cell: "the output is empty" named the wrong fault
        raise InputError(f"batch file {path}: the quote opened on line {unclosed + above} is never closed; close it (a quote inside "
                         'a quoted text is written twice: "")')
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]  # "Text,Output" as a spreadsheet writes it
    if not any(header):
        raise InputError(f"batch file {path} is empty; the first line must be a header such as 'reference,text,output'")
    # A spreadsheet's export often ends its lines in empty columns with no name ("text,output,,"): ignored while
    # they stay empty (they were refused as "unknown column(s) , ")
    nameless = {f"(column {i + 1})": i + 1 for i, h in enumerate(header) if not h}
    header = [h or f"(column {i + 1})" for i, h in enumerate(header)]
    unknown = [h for h in header if h not in COLUMNS and h not in nameless]
    missing = [c for c in ("text", "output") if c not in header and not (c == "text" and "source" in header)
               and not (c == "output" and "id" in header)]
    twice = sorted({h for h in header if header.count(h) > 1})
    if not any(h in COLUMNS for h in header):  # a list of lines (lines.txt, one text a line) was "unknown column(s) hello there."
        first = text.split("\n", 1)[0].strip()
        raise InputError(f"batch file {path} has no header: its first line ('{first[:40]}') names none of the columns; put a header "
                         "line first, such as 'id,text' (each row is made as ID.wav) or 'text,output' (a text to be read as one "
                         "recording is demod-voice book's)")
    if unknown or missing or twice:
        # a spreadsheet's own columns (notes, a file name) are the usual unknown ones: say what to do with them
        named = next((h for h in unknown if h in FILE_COLUMNS), None)
        what = f"rename '{named}' to 'output'" if named else "delete or rename them"
        problem = (f"unknown column(s) {', '.join(unknown)} ({what})" if unknown else f"missing column(s) {', '.join(missing)}"
                   if missing else f"column(s) {', '.join(twice)} appear twice")
        raise InputError(f"batch file {path}: {problem}; columns are {', '.join(COLUMNS)} (text and output required; an id "
                         "names ID.wav where there is no output)")
    reader.fieldnames = header
    rows, start = [], 2 + above
    for record in reader:
        values = {k: (v if isinstance(v, str) else "").strip() for k, v in record.items() if k is not None}
        for name, number in nameless.items():
            if values.pop(name, ""):
                raise InputError(f"batch file {path}: column {number} has no name in the header, but line {start} has a value "
                                 f"in it; name it ({', '.join(COLUMNS)}) or delete the column")
        if values.get("id") and not values.get("output"):
            values["output"] = _named_by_id(values["id"])
        if any(values.values()):
            rows.append(Row(start, values, tuple(record.get(None) or ())))
        start = reader.line_num + 1 + above
    return rows


def _named_by_id(row_id: str) -> str:
    """The output a row's ``id`` names: ``ID.wav``, or the id itself where it already ends in an audio format."""
    from demod_voice.audio.writer import FORMATS

    return row_id if PurePosixPath(row_id).suffix.lower() in FORMATS else f"{row_id}.wav"


def _unclosed_quote(text: str, delimiter: str) -> Optional[int]:
    """The line of the record whose quote runs to the end of the file, if one does."""
    reader = csv.reader(text.splitlines(keepends=True), strict=True, delimiter=delimiter)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            return start
    return None


def row_text(value: str, max_chars: Optional[int] = None) -> str:
    """A row's text, as written (never read from stdin); :class:`InputError` for what cannot be spoken."""
    text = (value or "").strip()
    if not text:
        raise InputError("the text is empty; give the words to speak")
    if text == "-":
        raise InputError("the text is '-': in a row that is the text itself, not standard input (only a command-line "
                         "argument '-' reads stdin); write the words in the text column")
    problem = text_problem(text)
    if problem:
        raise InputError(f"the text {problem}; send plain UTF-8 text")
    if max_chars is not None and len(text) > max_chars:
        raise InputError(f"the text has {len(text)} characters; at most {max_chars} per row (serve.limits.max_input_chars): "
                         "split it over several rows")
    return text


def output_name(value: str, remote: bool, ids: bool = False) -> str:
    """A row's output as given, once it names an audio file (and, for a remote row, one inside its job); ``ids``: the
    sheet has an ``id`` column (an empty output is then a row with neither)."""
    from demod_voice.audio.writer import FORMATS

    text = (value or "").strip()
    if not text:
        raise InputError("the row has no id and no output; give it an id (it names ID.wav) or an output file name" if ids
                         else "the output is empty; give a file name such as 'line1.wav'")
    if any(ord(ch) < 32 for ch in text) or text_problem(text):
        raise InputError(f"output {text[:80]!r} holds a control character or invalid Unicode")
    size = len(text.encode("utf-8"))
    if size > MAX_OUTPUT_BYTES:
        raise InputError(f"output '{text[:40]}...' is {size:,} bytes long; at most {MAX_OUTPUT_BYTES:,} (fewer folders or shorter names)")
    path = PurePosixPath(text.replace("\\", "/"))
    if not remote and len(text) > 2 and text[0].isalpha() and text[1] == ":" and text[2] in "\\/":
        raise InputError(f"output '{text[:80]}' is a Windows drive path; give it relative to the output folder, such as "
                         "'chapter1\\line1.wav'")
    if remote and (path.is_absolute() or ".." in path.parts or text.startswith("~") or (len(text) > 1 and text[1] == ":")):
        raise InputError(f"output '{text[:80]}' must be a relative path inside the job (no '..', not absolute)")
    if text.endswith(("/", "\\")) or path.name in ("", ".", ".."):
        raise InputError(f"output '{text[:80]}' is not a file name; give one such as 'line1.wav'")
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"output '{text[:80]}' must end in {', '.join(FORMATS)}")
    # a sheet made on Windows names out\chapter1\line1.wav: its folders, not one file with backslashes in its name
    return text.replace("\\", "/")


def clones(values: Mapping[str, str]) -> bool:
    """Whether a row clones a voice from recordings (``reference``) or converts a recording into a voice (``source``,
    as ``POST /v1/audio/conversions`` does): both need the ``enroll`` scope."""
    return bool((values.get("reference") or "").strip() or (values.get("source") or "").strip())


@dataclass(frozen=True)
class RemoteRules:
    """What rows from a remote client (the server's batch jobs, the web page) may name."""

    max_input_chars: int
    """Characters of text one row may hold (``serve.limits.max_input_chars``)."""
    references: Mapping[str, str]
    """Uploaded reference files: the name a row gives -> the path the job keeps it at (relative to its CSV)."""
    voice_exists: Callable[[str], bool]
    """Whether an enrolled profile of that name exists."""
    piper_path: Callable[[str], str]
    """The path of a Piper voice the server offers (:class:`InputError` for one it does not)."""
    default_model: Optional[str] = None
    """The job's Piper voice for rows without a ``model`` (already a path)."""
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Uploaded source recordings for conversion rows: the name a row gives -> the path the job keeps it at."""


def check_remote_row(read: Row, rules: RemoteRules) -> dict[str, str]:
    """A remote row, checked and rewritten to name only what its job holds; :class:`InputError` says what is wrong."""
    check_shape(read)
    row = {key: read.values.get(key, "") for key in OUTPUT_COLUMNS}
    if not row["output"]:  # said here, where the sheet's id column is known (the rewritten row has none)
        output_name("", remote=True, ids="id" in read.values)
    if row["source"]:
        return _conversion_row(row, rules)
    row["text"] = row_text(row["text"], rules.max_input_chars)
    _check_names(row, rules)
    if row["model"]:
        if row["reference"] or row["voice"] or not _takes_model_files(row["backend"]):
            raise InputError("the model column is for Piper voices here; XTTS rows use the server's XTTS model")
        row["model"] = rules.piper_path(row["model"])
    elif not (row["reference"] or row["voice"]) and rules.default_model is None:
        raise InputError("a Piper row needs a voice: fill the 'model' column or send the form field 'model'")
    return row


def _check_names(row: dict[str, str], rules: RemoteRules) -> None:
    """The output, references and voice of ``row`` checked against the job; references rewritten to the job's files."""
    row["output"] = output_name(row["output"], remote=True).replace("\\", "/")
    if row["reference"]:
        names = [n.strip() for n in row["reference"].split("|") if n.strip()]
        missing = [n for n in names if n not in rules.references]
        if missing:
            raise InputError(f"reference '{missing[0][:80]}' was not uploaded with the batch (send it as a 'references' file)")
        row["reference"] = "|".join(rules.references[n] for n in names)
    if row["voice"] and (not NAME.fullmatch(row["voice"]) or not rules.voice_exists(row["voice"])):
        raise InputError(f"there is no enrolled voice '{row['voice'][:80]}'")


def _conversion_row(row: dict[str, str], rules: RemoteRules) -> dict[str, str]:
    """A remote conversion row: its ``source`` one of the recordings uploaded with the job (never a server path), no
    text, and a target voice (``reference`` or ``voice``)."""
    name = row["source"]
    if name not in rules.sources:
        raise InputError(f"source '{name[:80]}' was not uploaded with the batch (send the recording as a 'sources' file and "
                         "give its file name in the source column)")
    if row["text"]:
        raise InputError("a conversion row keeps its source's words: leave 'text' empty (or drop 'source' to speak the text)")
    if row["model"]:
        raise InputError("a conversion row takes no 'model': say the voice to convert into with 'reference' or 'voice'")
    backend = row["backend"].strip().lower()
    side = registry.load().sides.get(backend) if backend else None
    if backend and (side is None or not side.converts):
        raise InputError(f"backend '{backend[:40]}' does not convert recordings; leave 'backend' empty in a conversion row")
    _check_names(row, rules)
    if bool(row["reference"]) == bool(row["voice"]):
        raise InputError("a conversion row needs the voice to convert into: 'reference' (recordings uploaded with the batch) "
                         "or 'voice' (an enrolled voice), one of the two")
    row["source"] = rules.sources[name]
    return row


def _takes_model_files(backend: str) -> bool:
    """Whether a row naming ``backend`` may name a voice file in ``model`` (none named: the default, Piper's voices; an
    unknown name is refused when the row is run, with the names there are)."""
    side = registry.load().sides.get(backend.strip().lower()) if backend.strip() else None
    return side is None or side.row_models


class OutputPlaces:
    """The outputs of a batch's rows so far: a row writing one again, or into another's file as if it were a folder
    (``x.wav`` and ``x.wav/y.wav``: both passed the checks, then one row failed with 'Is a directory'), is refused."""

    def __init__(self) -> None:
        self.files: dict[PurePath, int] = {}
        self.folders: dict[PurePath, int] = {}

    def clash(self, path: PurePath, shown: str, line: int) -> str:
        """Why row ``line`` may not write ``path`` (``shown`` as its row wrote it), or "" (then it is taken)."""
        shown = shown[:80]
        if path in self.files:
            return f"output '{shown}' is also written by line {self.files[path]}"
        if path in self.folders:
            return f"output '{shown}' is a folder that line {self.folders[path]} writes into; give it another name"
        inside = next((parent for parent in path.parents if parent in self.files), None)
        if inside is not None:
            return f"output '{shown}' is inside line {self.files[inside]}'s output, a file; give it another folder"
        self.files[path] = line
        for parent in path.parents:
            self.folders.setdefault(parent, line)
        return ""


def remote_verdicts(rows: list[Row], rules: RemoteRules) -> Iterator[tuple[Row, Optional[dict[str, str]], str]]:
    """Each remote row with its rewritten values, or ``None`` and what is wrong with it: its own checks, then an output
    an earlier row writes too (the job's check and the page's table of rows give the same verdicts)."""
    places = OutputPlaces()
    for row in rows:
        try:
            checked = check_remote_row(row, rules)
        except InputError as err:
            yield row, None, str(err)
            continue
        clash = places.clash(PurePosixPath(checked["output"]), checked["output"], row.line)
        yield (row, None, clash) if clash else (row, checked, "")


def check_remote_rows(rows: list[Row], rules: RemoteRules) -> str:
    """Every remote row checked; the CSV the job runs, or one
    :class:`InputError` naming the first problems by line."""
    problems = []
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(OUTPUT_COLUMNS))
    writer.writeheader()
    for row, checked, problem in remote_verdicts(rows, rules):
        if checked is None:
            problems.append(f"line {row.line}: {problem}")
        else:
            writer.writerow(checked)
    if problems:
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise InputError("; ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    return out.getvalue()
