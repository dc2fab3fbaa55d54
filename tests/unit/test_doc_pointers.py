"""Where the program sends a reader for more, the page and the heading must be there."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from demod_voice.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "demod_voice"
DOC_NAME = re.compile(r"docs/[\w-]+\.md")
HEADING_HINT = re.compile(r"(docs/[\w-]+\.md), '([^']+)'")


def _help_texts(parser: argparse.ArgumentParser):
    yield parser.description or ""
    yield parser.epilog or ""
    for action in parser._actions:
        yield action.help or ""
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _help_texts(sub)


def _headings(page: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")}


def test_help_sends_no_one_to_the_readme():
    """The README holds the set-up and a tour; details (languages, Wyoming's exposure) live in docs/*.md."""
    texts = [t for t in _help_texts(build_parser()) if "README" in t]
    assert texts == []


def test_every_page_and_heading_named_in_the_source_exists():
    """Help texts and messages that name a docs page (and a heading in it) point at something real."""
    named, hinted = set(), set()
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        named.update(DOC_NAME.findall(text))
        hinted.update(HEADING_HINT.findall(text))
    assert "docs/training.md" in named
    assert [name for name in sorted(named) if not (ROOT / name).is_file()] == []
    assert [(page, h) for page, h in sorted(hinted) if h not in _headings(ROOT / page)] == []


def test_messages_name_no_readme_section():
    """'see the README' sent the user to a page with no such section (Wyoming, training, language codes)."""
    offenders = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in SOURCE.rglob("*.py")
        for line in path.read_text().splitlines()
        if re.search(r"see (the )?README", line)
    ]
    assert offenders == []


def test_models_download_help_names_every_model_it_takes_by_name():
    """``models download openvoice_v2`` works (and ``health`` tells users to run it), but the help named only Piper
    voices and xtts_v2."""
    from demod_voice.backends.openvoice.plugin import NAMES as CONVERTER_NAMES
    from demod_voice.models.registry import XTTS_NAMES

    models = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["models"]
    download = next(a for a in models._actions if isinstance(a, argparse._SubParsersAction))._choices_actions
    said = next(action.help for action in download if action.dest == "download")
    assert XTTS_NAMES[0] in said and CONVERTER_NAMES[0] in said, said
