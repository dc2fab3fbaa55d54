"""Above ``backends/`` no code branches on a backend's name: front doors dispatch through the registry
(a request side's attributes such as ``clones``, ``row_models``, ``take_chars``), so a plugin's
backend is treated as a built-in one is. An AST walk finds every comparison with a backend name
written as a string (``kind == "xtts"``, ``backend in ("piper", "tinygrad")``,
``value.startswith("piper|")``, ``match kind: case "xtts"``)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from demod_voice.backends import registry
from demod_voice.batch.rows import RemoteRules, Row, check_remote_row
from demod_voice.errors import InputError

PACKAGE = Path(__file__).resolve().parents[2] / "demod_voice"
NAMES = frozenset({*registry.BUILTIN, *registry.BACKENDS})
"""Every built-in backend's name (request sides and engine-only ones)."""
STRING_TESTS = frozenset({"startswith", "endswith", "partition", "split", "removeprefix"})


def _names_a_backend(node: ast.AST) -> bool:
    """A string constant that is a backend name, or starts with one as a picker value does (``piper|...``),
    or a tuple/list/set holding one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip().lower()
        return text in NAMES or any(text.startswith(f"{name}|") for name in NAMES)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_backend(element) for element in node.elts)
    return False


def name_checks(source: str) -> list[int]:
    """Line numbers of comparisons with a backend name in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if any(_names_a_backend(operand) for operand in (node.left, *node.comparators)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in STRING_TESTS:
            if node.func.attr in ("startswith", "endswith", "removeprefix") and any(_names_a_backend(arg) for arg in node.args):
                lines.append(node.lineno)
        elif isinstance(node, ast.match_case) and _names_a_backend(getattr(node.pattern, "value", None) or ast.Pass()):
            lines.append(node.pattern.lineno)
    return sorted(lines)


def test_no_backend_name_is_compared_above_backends():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "backends":
            continue
        found += [f"demod_voice/{relative}:{line}" for line in name_checks(path.read_text(encoding="utf-8"))]
    assert not found, ("backend names compared as strings above backends/ (dispatch through the registry, a RequestSide "
                       "attribute or method, instead): " + ", ".join(found))


def test_the_walk_sees_each_form_of_name_check():
    source = '''
if kind == "xtts": pass
if "piper" != kind: pass
if backend.lower() in ("piper", "tinygrad"): pass
if value.startswith("piper|"): pass
match kind:
    case "openvoice": pass
if kind == "alias": pass
label = "xtts"
choices = ("piper", "xtts")
'''
    assert name_checks(source) == [2, 3, 4, 5, 7]


def test_a_remote_row_names_a_model_only_for_a_backend_whose_rows_take_voice_files():
    """The server's row policy asks the request side (``row_models``), not the backend's name."""
    rules = RemoteRules(max_input_chars=100, references={}, voice_exists=lambda name: False,
                        piper_path=lambda name: f"voices/{name}.onnx")
    for backend in ("", "piper", "tinygrad", "Tinygrad"):
        row = check_remote_row(Row(2, {"text": "Hello.", "output": "a.wav", "model": "tiny", "backend": backend}), rules)
        assert row["model"] == "voices/tiny.onnx"
    assert not registry.request_side("xtts").row_models
    with pytest.raises(InputError, match="model column"):
        check_remote_row(Row(2, {"text": "Hello.", "output": "a.wav", "model": "tiny", "backend": "xtts"}), rules)


def test_a_remote_row_without_a_voice_is_refused_only_where_the_job_has_no_default_voice():
    rules = RemoteRules(max_input_chars=100, references={}, voice_exists=lambda name: False,
                        piper_path=lambda name: f"voices/{name}.onnx")
    with pytest.raises(InputError, match="needs a voice"):
        check_remote_row(Row(2, {"text": "Hello.", "output": "a.wav"}), rules)
    defaulted = dataclasses.replace(rules, default_model="voices/joe.onnx")
    assert check_remote_row(Row(2, {"text": "Hello.", "output": "a.wav"}), defaulted)["model"] == ""
