"""What `zoo.comparisons.plan` checks before any cell runs, and local model folders as backbones.

A misspelt data set, task, mode or option would otherwise be found only when its cell runs,
minutes into a table; here each is one `RecipeError` naming the cell and the name (with the
registry's did-you-mean), so a spec either plans whole or runs nothing. A backbone written as a
path (``./my-model``: a folder saved by zoo, or any folder ``zoo.load(path)`` accepts) is read
here without loading its weights: its registered spec says its modality.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from zoo.errors import ZooError
from zoo.recipes import RecipeError
from zoo.signatures import nearest_key_hint

PATH_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")


@dataclass(frozen=True)
class LocalBackbone:
    """A local model folder named in a spec: where it is, the name its rows show, what it is built from."""

    path: Path
    shown: str
    registered: str  # the registered backbone whose factory builds it (its modality, license, family)
    modality: str
    stamp: str  # changes when the folder's files do: a re-saved model runs its cells again


def is_local(entry: str, base: Path, registry: Any) -> bool:
    """True when a spec's backbone entry is a path: it starts like one (``./``, ``/``, ``~``), or it
    names an existing file or folder (beside the spec) and no registered backbone."""
    if entry.startswith(PATH_PREFIXES):
        return True
    if any(c in entry for c in "*?[") or not (base / entry).exists():
        return False
    try:
        registry.resolve_backbone(entry)
    except ZooError:
        return True
    return False


def local_backbone(entry: str, base: Path, registry: Any, where: str) -> LocalBackbone:
    """The local folder ``entry`` (relative to ``base``, the spec's folder), read without its weights."""
    from zoo.api import claim_path
    from zoo.validation import SAVED_SCHEMA, read_json_file

    path = (base / os.path.expanduser(entry)).resolve()
    if not path.exists():
        raise RecipeError(
            f"{where}: backbone {entry!r} is no file or folder (looked for {path}); "
            "a local backbone's path is relative to the spec file"
        )
    try:
        claim = claim_path(path)
        if claim is None:  # saved by zoo: zoo.json names the registered spec it was built from
            spec = read_json_file(path / "zoo.json", SAVED_SCHEMA, "a saved backbone's zoo.json")["spec"]
            registered, modality = spec["name"], spec["modality"]
        else:
            found = registry.resolve_backbone(claim.backbone)[0]
            registered, modality = found.name, found.modality
    except ZooError as exc:
        raise RecipeError(f"{where}: backbone {entry!r}: {exc}") from None
    return LocalBackbone(path, path.name, registered, modality, _stamp(path))


def _stamp(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        status = file.stat()
        digest.update(f"{file.relative_to(path.parent)}:{status.st_size}:{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def check_cell(recipe: dict[str, Any], modality: str, registry: Any, where: str) -> None:
    """The cell's data set, its data options, its task, mode and task options exist and fit, or a
    RecipeError naming the cell and the name (did-you-mean where the registry has one)."""
    from zoo.checks import check_protocol, check_task_options
    from zoo.data import dataset_reader
    from zoo.tasks import get_task

    data = recipe["data"]
    if not (os.path.exists(data) or os.sep in data):  # a path is read by the generic readers when it runs
        try:
            spec, reader = dataset_reader(data)
        except ZooError as exc:
            raise RecipeError(f"{where}: {exc}") from None
        from zoo.data.base import check_options

        try:
            check_options(reader, dict(recipe.get("data_options") or {}), f"data set {spec.name!r}")
        except ZooError as exc:
            raise RecipeError(f"{where}: data_options: {exc}") from None
    try:
        spec, task_class = get_task(recipe["task"])
    except ZooError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    task_class = task_class.for_backbone(SimpleNamespace(modality=modality))  # reads only the modality
    mode = recipe.get("mode")
    if mode is not None and mode not in task_class.modes:
        hint = nearest_key_hint(mode, task_class.modes, f"its modes: {', '.join(task_class.modes)}")
        raise RecipeError(f"{where}: task {spec.name!r} has no mode {mode!r}; {hint}")
    try:
        check_task_options(spec.name, task_class, dict(recipe.get("task_options") or {}))  # as zoo run checks them
        if recipe.get("protocol") is not None:
            check_protocol(recipe["protocol"], spec.name, mode)
    except ZooError as exc:
        raise RecipeError(f"{where}: {exc}") from None
