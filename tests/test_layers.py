"""The core is layered (`zoo.layers.LAYERS`): each module of ``zoo/`` imports only modules on its own
layer or below, no two modules import each other around a circle, and the plugins import only the
plugin API (``zoo.__all__`` and ``zoo.testing``). Imports inside functions count: they are dependencies
all the same; ``if TYPE_CHECKING:`` imports do not run, so they do not."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import zoo
from zoo.layers import LAYERS, layer_of

from conftest import REPO

PACKAGE = REPO / "zoo"
PLUGIN_CODE = [REPO / "plugins", REPO / "examples"]


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(path: Path) -> list[str]:
    """Dotted names ``path`` imports (``from a import b`` gives ``a.b``; relative imports are not used)."""
    names = []
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    known = modules(package)

    def owner(name: str) -> str:
        while name not in known:
            name = name.rpartition(".")[0]
        return name

    return {
        name: {owner(t) for t in imported(path) if t.split(".")[0] == "zoo" and owner(t) != name}
        for name, path in known.items()
    }


def upward(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for each import of a module on a higher layer, and each module the table does not list."""
    found = []
    for name, targets in sorted(graph.items()):
        for module in (name, *sorted(targets)):
            try:
                layer_of(module)
            except KeyError:
                found.append(f"{module} is on no layer of zoo.layers.LAYERS")
        found += [
            f"{name} ({LAYERS[layer_of(name)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
            for t in sorted(targets)
            if _listed(name, t) and layer_of(t) > layer_of(name)
        ]
    return sorted(set(found))


def _listed(*names: str) -> bool:
    try:
        [layer_of(name) for name in names]
    except KeyError:
        return False
    return True


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of more than one module that import each other, directly or around a circle."""
    import networkx  # torch depends on it

    found = networkx.strongly_connected_components(networkx.DiGraph([(a, b) for a in graph for b in graph[a]]))
    return [sorted(group) for group in found if len(group) > 1]


def outside_the_plugin_api(path: Path) -> list[str]:
    """What a plugin file takes from zoo beyond ``zoo.__all__`` and ``zoo.testing``."""
    tree = ast.parse(path.read_text())
    found = [
        name
        for name in imported(path)
        if name.split(".")[0] == "zoo"
        and name != "zoo"
        and not name.startswith("zoo.testing")
        and name.removeprefix("zoo.") not in zoo.__all__
    ]
    found += [
        f"zoo.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "zoo"
        and node.attr not in zoo.__all__
    ]
    return found


def test_no_import_circle_among_the_modules_of_zoo():
    graph = imports()
    assert {"zoo.api", "zoo.plugins", "zoo.comparisons.plan", "zoo.data.readers"} <= set(graph)
    assert not circles(graph), circles(graph)


def test_every_module_imports_only_its_own_layer_and_below():
    assert upward(imports()) == []


def test_an_upward_import_fails_the_layer_check(tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tasks" / "shortcut.py").write_text("from zoo.api import load\n")
    (copy / "unlisted.py").write_text("")
    assert upward(imports(copy)) == [
        "zoo.tasks.shortcut (tasks) -> zoo.api (api)",
        "zoo.unlisted is on no layer of zoo.layers.LAYERS",
    ]


def test_plugins_use_only_the_plugin_api():
    files = [path for root in PLUGIN_CODE for path in root.rglob("*.py")]
    assert len(files) > 10
    found = {str(path.relative_to(REPO)): names for path in files if (names := outside_the_plugin_api(path))}
    assert found == {}


def test_the_plugin_api_check_catches_a_private_import(tmp_path):
    plugin = tmp_path / "model.py"
    plugin.write_text("import zoo\nfrom zoo.saving import read_state_dict\nfrom zoo import load\nzoo.api.load('x')\n")
    assert outside_the_plugin_api(plugin) == ["zoo.saving.read_state_dict", "zoo.api"]


def test_the_plugin_api_is_importable_from_zoo():
    for name in zoo.__all__:
        assert getattr(zoo, name) is not None, name


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
