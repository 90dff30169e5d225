"""``--set key=value`` pairs and YAML scalars, read as a recipe means them (``3e-5`` is a number,
``a.b=1`` sets a nested key); `zoo.recipes` validates what they give."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import RecipeError


def parse_pair(pair: str) -> tuple[list[str], Any]:
    """``"data_options.seed=3"`` -> (["data_options", "seed"], 3); the value is read as YAML."""
    import yaml

    key, equals, raw = pair.partition("=")
    if not equals or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {pair!r}: expected key=value, e.g. --set lr=3e-5")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {pair}: the value is not valid YAML ({yaml_problem(exc)})") from None
    if isinstance(value, str) and looks_numeric(value):
        value = float(value)  # YAML 1.1 reads 3e-5 as a string
    return key.split("."), value


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-4", "data_options.seed=3"]`` -> a nested mapping; values are parsed as YAML."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        path, value = parse_pair(pair)
        set_nested(overrides, path, value)
    return overrides


def set_nested(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set ``target[a][b]... = value``, replacing what was there (``task_options={}`` empties it)."""
    *parents, leaf = path
    for parent in parents:
        if not isinstance(target.get(parent), dict):
            target[parent] = {}
        target = target[parent]
    target[leaf] = value


def looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def yaml_problem(exc: Exception) -> str:
    """A YAML error in one line: what is wrong, and its line and column where PyYAML knows them."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def fix_numbers(value: Any) -> Any:
    return float(value) if isinstance(value, str) and looks_numeric(value) and "e" in value.lower() else value


def load_yaml(text: str) -> Any:
    """YAML as `yaml.safe_load` reads it, except that a key given twice in one mapping is an error
    (PyYAML keeps the last silently): ``yaml.YAMLError`` naming the key and both lines."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        """safe_load's loader, refusing a mapping that repeats a key."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a merged mapping's keys may be overridden by the mapping's own
            key = loader.construct_object(key_node, deep=True)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first[key] + 1})", key_node.start_mark
                )
            first[key] = key_node.start_mark.line
        loader.flatten_mapping(node)
        return loader.construct_mapping(node, deep=True)

    UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=UniqueKeys)  # noqa: S506 - a SafeLoader subclass


def read_yaml_mapping(path: Path, what: str, keys: str = "keys to values") -> dict[Any, Any]:
    """The mapping in YAML file ``path`` (a recipe, a compare spec: ``what``); a RecipeError naming the
    file, and the line where there is one, when it is missing, not YAML, repeats a key or is no mapping."""
    import yaml

    if not path.is_file():
        raise RecipeError(f"{what} {path} not found")
    try:
        values = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a {what} is a mapping of {keys}")
    return values
