"""The core is layered: each module of ``zoo/`` imports only modules below it, so no two import each other,
directly or around a circle (imports inside functions count: they are dependencies all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "zoo"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports() -> dict[str, set[str]]:
    """Each module of zoo/ and the modules of zoo/ it imports (anywhere in its code)."""
    known = modules()

    def owner(name: str) -> str:
        while name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.split(".")[0] == "zoo" and owner(target) != name:
                    graph[name].add(owner(target))
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of more than one module that import each other, directly or around a circle."""
    import networkx  # torch depends on it

    found = networkx.strongly_connected_components(networkx.DiGraph([(a, b) for a in graph for b in graph[a]]))
    return [sorted(group) for group in found if len(group) > 1]


def test_no_import_circle_among_the_modules_of_zoo():
    graph = imports()
    assert {"zoo.api", "zoo.plugins", "zoo.comparisons.plan", "zoo.data.readers"} <= set(graph)
    assert not circles(graph), circles(graph)


def test_the_layers_point_downward():
    graph = imports()
    # data and tasks reach the plugin set and import_object below them, never the API above
    for lower in ("zoo.data", "zoo.tasks", "zoo.plugins", "zoo.saving", "zoo.registry"):
        assert not graph[lower] & {"zoo", "zoo.api", "zoo.comparisons", "zoo.cli"}, (lower, graph[lower])
    # the comparison is an application of the API: nothing under it imports it, and it imports no CLI
    users = {name for name, targets in graph.items() if any(t.startswith("zoo.comparisons") for t in targets)}
    assert users <= {"zoo", "zoo.cli"} | {name for name in graph if name.startswith("zoo.comparisons")}, users


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
