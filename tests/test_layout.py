"""The package's layout: no import cycles, and no backend importing another backend.

Imports are read from the source (every ``import`` statement, those inside functions
included), so a cycle that only a lazy import hides is found as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "medner"
BACKENDS = ("medner.backends.encoder", "medner.backends.llm", "medner.backends.hosted")
"""Each of these imports nothing of the others (``medner.backends.prompted`` is shared)."""
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The medner modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from package import module`` imports the module; else the package itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a non-module name
                target = target.rpartition(".")[0]
            if target.startswith("medner") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return "; ".join(edges)


def test_the_import_graph_is_read() -> None:
    graph = import_graph()
    assert "medner.backends.encoder.members" in graph["medner.backends.encoder.model"]
    assert "medner.backends.encoder.model" in graph["medner.backends.encoder.ensemble"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_import_cycle_inside_a_backend(backend: str) -> None:
    graph = import_graph()
    own = {name: {t for t in targets if t.startswith(backend)}
           for name, targets in graph.items() if name.startswith(backend)}
    found = cycles(own)
    assert not found, [describe(c, own) for c in found]


def test_no_import_cycle_in_medner() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, [describe(c, graph) for c in found]


def test_no_backend_imports_another() -> None:
    graph = import_graph()
    crossing = [f"{name} -> {target}" for name, targets in sorted(graph.items())
                for target in sorted(targets)
                for backend in BACKENDS if name.startswith(backend + ".") or name == backend
                for other in BACKENDS if other != backend
                if target == other or target.startswith(other + ".")]
    assert not crossing, crossing


def test_a_function_over_80_lines_says_why_it_is_one_piece() -> None:
    """Anywhere in src/medner: a longer function has a ``# One piece: ...`` comment right
    above its ``def`` (or its decorators)."""
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                above = lines[max(0, first - 4):first - 1]
                if length > MAX_FUNCTION_LINES and not any(
                        line.strip().startswith("# One piece:") for line in above):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                       f"({length} lines)")
    assert not unexplained, unexplained
