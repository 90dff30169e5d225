"""What `zoo.comparisons.plan` checks before any cell runs, and local model folders as backbones.

A misspelt data set, task, mode or option would otherwise be found only when its cell runs,
minutes into a table; here each is one `RecipeError` naming the cell and the name (with the
registry's did-you-mean), so a spec either plans whole or runs nothing. A backbone written as a
path (``./my-model``: a folder saved by zoo, or any folder ``zoo.load(path)`` accepts) is read
here without loading its weights: its registered spec says its modality. Once planned, `check_cells`
checks every cell as ``zoo run`` checks its recipe (data files, columns, labels, splits, model options),
each data set read once, so a spec whose data would fail a cell also runs nothing.
"""

from __future__ import annotations

import hashlib
import json
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


class _Unavailable(Exception):
    """A named data set whose data root is missing here: its cells run and fail as rows (`run_compare` warns)."""


class DataReads:
    """`zoo.data.load_dataset` that reads each (data, data root, data options) once: the cells of a
    spec share their data sets, so a 30-cell table on SST-2 reads it once while its cells are checked."""

    def __init__(self) -> None:
        self.read: dict[str, Any] = {}

    def __call__(self, name: str, root: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """The data set ``name`` read with ``options`` (from memory after its first read)."""
        from zoo.data import load_dataset

        key = json.dumps([name, None if root is None else os.fspath(root), options], sort_keys=True, default=repr)
        if key not in self.read:
            if _root_missing(name, root):
                raise _Unavailable(name)
            self.read[key] = load_dataset(name, root, **options)
        return self.read[key]


def _root_missing(name: str, root: str | os.PathLike[str] | None) -> bool:
    """True for a registered data set that needs a data root when this machine has none (as given)."""
    from zoo.data import DataError, data_root, dataset_reader

    if os.path.exists(name) or os.sep in name:
        return False
    try:
        if not dataset_reader(name)[0].needs_data_root:
            return False
        data_root(root)
    except DataError:
        return True
    except ZooError:
        return False  # an unknown name: load_dataset says so, with its did-you-mean
    return False


def cell_label(cell: Any) -> str:
    """A cell as its messages name it: ``[ID: ]backbone · task / data / mode`` (a data file by its name)."""
    recipe = cell.recipe
    data = Path(recipe["data"]).name if os.sep in recipe["data"] else recipe["data"]
    mode = recipe.get("protocol") or recipe.get("mode") or "default mode"
    named = f"{cell.cell_id}: " if cell.cell_id else ""
    return f"{named}{cell.backbone} · {recipe['task']} / {data} / {mode}"


def check_cells(cells: list[Any], where: str, device: bool = True) -> None:
    """Every cell that will run checked as ``zoo run`` checks its recipe before any work
    (`zoo.checks.check_recipe`: data files, columns, labels, kinds, splits, options; and its model
    options against the backbone's factory, not built), each data set read once. A mistake is one
    RecipeError (exit 2) naming ``where`` (the spec), the cell and the mistake; a cell whose named data
    set has no data root here passes (it fails as a row, as `run_compare` warns). ``device``: check each
    cell's device on this machine (not for cells that run on a Ray cluster's machines)."""
    from zoo.checks import check_recipe
    from zoo.plugins import get_plugin_set
    from zoo.recipes import validate

    registry, reads, seen = get_plugin_set().registry, DataReads(), set()
    for cell in cells:
        key = json.dumps([cell.backbone, {k: v for k, v in cell.recipe.items() if k != "seed"}], sort_keys=True)
        if cell.skip or key in seen:  # the seeds of a cell share their check
            continue
        seen.add(key)
        label = f"{where}, cell {cell_label(cell)}"
        try:
            recipe = validate(cell.recipe if device else {**cell.recipe, "device": "auto"}, label)
            modality = registry.resolve_backbone(cell.registered)[0].modality
            # a trained backbone's folder is written by its parent cell: its registered spec tells its modality
            stand_in = None if cell.parent is None else SimpleNamespace(modality=modality)
            check_recipe(recipe, stand_in, label, read_data=reads)
            check_model_options(cell, recipe.model_options, registry)
        except _Unavailable:
            continue
        except ZooError as exc:
            message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
            raise (RecipeError(message) if exc.exit_code == 2 else ZooError(message)) from None


def check_model_options(cell: Any, options: dict[str, Any], registry: Any) -> None:
    """The cell's ``model_options`` are keywords of its backbone's factory (as `zoo.load` checks them),
    told without building it: for a registered backbone, a trained one or a folder zoo saved (a folder
    another library wrote is loaded by its plugin, which checks its own)."""
    from zoo.errors import OptionError
    from zoo.plugins import import_object
    from zoo.signatures import check_keywords

    model = cell.recipe["model"]
    if not options or (cell.parent is None and model != cell.registered and not (Path(model) / "zoo.json").is_file()):
        return
    spec = registry.resolve_backbone(cell.registered)[0]
    factory = import_object(spec.factory, f"backbone {spec.name!r} (plugin {spec.plugin!r})")
    check_keywords(factory, options, f"backbone {spec.name!r}", "model option", OptionError, skip=2)
