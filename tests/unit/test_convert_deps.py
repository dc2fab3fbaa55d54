"""Every library the voice converter's worker imports is declared: in the package's core dependencies or the ``xtts``
extra (pyproject.toml) and in the Nix package, not only present because coqui-tts happens to pull it in."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

from conftest import ROOT

WORKER = ROOT / "demod_voice" / "backends" / "openvoice"
INSTALLED_FIRST = {"torch"}
"""Installed by hand before the extras, pinned by constraints.txt (a ranged torch requirement pulls a CUDA build)."""


def imported_distributions() -> set[str]:
    modules = set()
    for path in WORKER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m not in ("demod_voice", "__future__")}
    found = packages_distributions()
    return {normal(found[m][0]) for m in third_party}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normal(re.match(r"[A-Za-z0-9_.-]+", req)[0]) for req in requirements}


def test_the_converter_workers_imports_are_declared():
    import tomllib  # Python 3.11+ (the package supports 3.10)

    wanted = imported_distributions()
    assert {"coqui-tts", "soxr", "librosa", "soundfile", "numpy"} <= wanted  # what the worker imports today
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = requirement_names(project["dependencies"]) | requirement_names(project["optional-dependencies"]["xtts"])
    missing = wanted - declared - INSTALLED_FIRST
    assert not missing, f"add {sorted(missing)} to the xtts extra in pyproject.toml"
    nix = (ROOT / "nix" / "package.nix").read_text()
    runtime = set(re.search(r"runtimeDeps = p: with p; \[(.*?)\];", nix, re.DOTALL)[1].split())
    assert not wanted - runtime, f"add {sorted(wanted - runtime)} to runtimeDeps in nix/package.nix"
