"""No import circles in demod_voice, counting every import: at module top, inside functions and under
``TYPE_CHECKING`` (a deferred import hides a circle, it does not remove it). import-linter's contracts
(``lint-imports``, pyproject.toml) keep the layers; this walks the source itself, so it also sees
circles inside one layer, such as the engine's pool <-> service that once was."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "demod_voice"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(path: Path, modules: set[str]) -> set[str]:
    """Every demod_voice module ``path`` imports, wherever the import statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a.b import c``: the module a.b.c when c is one, else a.b
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: own_imports(path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = stack[stack.index(node):]
            del stack[stack.index(node):]
            on_stack.difference_update(group)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_in(group: list[str], graph: dict[str, set[str]]) -> str:
    """One concrete circle through the group, for the message."""
    members = set(group)
    start = group[0]
    trail, node, seen = [start], start, {start}
    while True:
        node = sorted(n for n in graph[node] if n in members)[0] if not any(n == start for n in graph[node]) else start
        trail.append(node)
        if node == start or node in seen:
            return " -> ".join(trail)
        seen.add(node)


def test_no_import_cycles_even_counting_deferred_imports():
    graph = import_graph()
    assert "demod_voice.engine.pool" in graph and graph["demod_voice.engine.service"]  # the walk sees the package
    found = cycles(graph)
    assert not found, "import circles (deferred imports count):\n" + "\n".join(path_in(group, graph) for group in found)


def test_the_walk_counts_deferred_and_type_checking_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from demod_voice.engine import pool\n"
                      "def f():\n    from demod_voice.engine.service import EngineService\n    import demod_voice.config\n",
                      encoding="utf-8")
    modules = set(import_graph())
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        seen = own_imports(source, modules | {"m"})
    finally:
        PACKAGE = saved
    assert seen == {"demod_voice.engine.pool", "demod_voice.engine.service", "demod_voice.config"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
