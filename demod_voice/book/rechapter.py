"""An audiobook's chapter marks, tags and cover carried over to its converted audio: ``convert book.m4b -o book-me.m4b``.
Conversion keeps a recording's timing to the sample (docs/conversion.md), so each chapter mark of the source falls at the
same time in the conversion; the converted audio is read one chapter at a time, so memory holds one chapter."""

from __future__ import annotations

from pathlib import Path

from demod_voice.book import mux


def write_like(audio: Path, source: Path, output: Path) -> int:
    """Write ``audio`` (the conversion of ``source``) as an ``.m4b`` at ``output`` with ``source``'s chapter marks
    (titles and times), tags and cover; a source without chapters is one chapter. Returns how many chapters."""
    import soundfile

    marks, tags = mux.read_marks(source)
    with soundfile.SoundFile(str(audio)) as converted:
        rate, total = converted.samplerate, converted.frames
        starts = sorted({min(total, max(0, round(start * rate))) for start, _ in marks[1:]} | {0})
        starts = [s for s in starts if s < total] or [0]
        titles = [_title_at(marks, start / rate, tags.title or source.stem) for start in starts]
        lengths = [end - start for start, end in zip(starts, [*starts[1:], total], strict=True)]
        chapters = (converted.read(length, dtype="float32", always_2d=True).mean(axis=1) for length in lengths)
        mux.write_m4b(output, lengths, chapters, titles, rate, tags)
    return len(lengths)


def _title_at(marks: list[tuple[float, str]], seconds: float, default: str) -> str:
    """The title of the last mark that starts at or before ``seconds`` (the first mark's for what comes before it)."""
    titles = [title for start, title in marks if start <= seconds + 1e-3] or [title for _, title in marks[:1]]
    return (titles[-1] if titles else "") or default
