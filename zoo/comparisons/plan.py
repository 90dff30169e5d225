"""What a comparison runs: the compare spec, its cells, and the order they run in.

A spec names backbones (registry patterns), cells (task, data, mode and recipe keys) and
seeds; every backbone x cell x seed is one `Cell`. A backbone may also be the model that
another cell of the same spec trains, written ``{trained: CELL_ID}``: the cell with that
``id`` (restricted by its own ``backbones`` to one backbone) runs first, and its saved
backbone is then evaluated like any other, as a row of its own named
``"BACKBONE + LABEL"`` (``label``, default the id), with provenance naming its parent. A backbone
may also be a local model folder (``./my-model``, relative to the spec file; see
`zoo.comparisons.checks`), shown by its folder's name. Every cell's names are checked before any runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.comparisons.checks import check_cell, is_local, local_backbone
from zoo.errors import ZooError
from zoo.recipe_paths import resolve_paths
from zoo.recipes import RecipeError, validate
from zoo.records import library_versions

SPEC_KEYS = {"name", "output_dir", "backbones", "cells", "seeds", "defaults", "data_root", "references"}
CELL_KEYS = {"id", "label", "backbones", "resources"}  # a cell's own keys; the rest are recipe keys
# what a cell asks of a Ray cluster (the local executor shares this machine by --jobs instead); Ray's defaults
RESOURCES = {"num_cpus": 1, "num_gpus": 0}
TRAINED = "trained"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CompareSpec:
    """What to compare: backbone patterns x cells x seeds; ``defaults`` are recipe keys for every cell."""

    name: str
    backbones: list[Any]  # registry names or patterns, or {trained: CELL_ID}
    cells: list[dict[str, Any]]
    seeds: list[int] = field(default_factory=lambda: [0])
    defaults: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "results"
    data_root: str | None = None
    base_dir: str | None = None  # where local backbone paths start: the spec file's folder (None: here)
    references: list[Any] = field(default_factory=list)  # published result files shown beside (references.py)
    source: str | None = None  # the spec file, as given (None for a dict spec)


def load_spec(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> CompareSpec:
    """The compare spec in YAML file ``path``, with ``overrides`` (e.g. output_dir) applied; a YAML
    error or a key given twice is a RecipeError naming the line."""
    from zoo.recipe_overrides import read_yaml_mapping

    path = Path(path)
    loaded = read_yaml_mapping(path, "compare spec", "keys (backbones, tasks, ...) to values")
    values = {"name": path.stem, **loaded, **(overrides or {})}
    return spec_from_dict(values, path, base_dir=str(path.resolve().parent))


def spec_from_dict(
    values: dict[str, Any], where: str | Path = "compare spec", base_dir: str | None = None
) -> CompareSpec:
    """A `CompareSpec` from its keys, checked: unknown keys and empty lists are errors naming ``where``;
    ``base_dir`` is where local backbone paths start (the spec file's folder; default the current one)."""
    unknown = sorted(set(values) - SPEC_KEYS)
    if unknown:
        raise RecipeError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a compare spec has {', '.join(sorted(SPEC_KEYS))}"
        )
    for key in ("backbones", "cells"):
        if not values.get(key) or not isinstance(values[key], list):
            raise RecipeError(f"{where}: {key} must be a non-empty list")
    if not isinstance(values.get("name", "compare"), str):
        raise RecipeError(f"{where}: name must be text, got {values['name']!r}")
    source = str(where) if isinstance(where, Path) else None
    return CompareSpec(**{"name": "compare", **values, "base_dir": base_dir, "source": source})


def spec_where(spec: CompareSpec) -> str:
    """How messages name ``spec``: by its name, and its file where it came from one."""
    return f"compare spec {spec.name!r}" + (f" ({spec.source})" if spec.source else "")


@dataclass
class Cell:
    """One backbone x cell x seed: the recipe ``zoo run`` gets, and the row it lands in."""

    backbone: str  # the row's name: a registered backbone, or "PARENT + LABEL" for a trained one
    recipe: dict[str, Any]
    skip: str | None = None  # why the backbone cannot do this task
    cell_id: str | None = None  # the spec cell's id, when other cells use what it trains
    parent: Cell | None = None  # the cell whose trained backbone this one evaluates
    resources: dict[str, float] = field(default_factory=lambda: dict(RESOURCES))  # what a Ray task asks for
    registered: str = ""  # the registered backbone it is built from (the backbone itself, unless trained or local)
    stamp: str | None = None  # a local folder's files: changed files make a new key

    def __post_init__(self) -> None:
        self.registered = self.registered or self.backbone

    @property
    def key(self) -> str:
        identity: dict[str, Any] = {"backbone": self.backbone, "recipe": self.recipe, "versions": library_versions()}
        if self.stamp is not None:
            identity["stamp"] = self.stamp
        content = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    @property
    def depth(self) -> int:
        """0 for a cell on a registered backbone; one more than its parent's otherwise."""
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def row(self) -> str:
        """The table row this cell lands in (seeds, data roots and a trained backbone's folder vary within one)."""
        return row_of(self.backbone, self.recipe)

    def trained_backbone(self, out: Path) -> Path:
        """Where this cell's run saves the backbone it trains."""
        return out / "cells" / self.key / "run" / "model" / "backbone"


def row_of(backbone: str, recipe: dict[str, Any]) -> str:
    """The table row of a cell or a cell's record: its backbone and its recipe but for the seed, the data
    root and the model's folder (a trained backbone's differs per seed)."""
    kept = {k: v for k, v in recipe.items() if k not in ("seed", "data_root", "model")}
    return json.dumps([backbone, kept], sort_keys=True)


def check_resources(values: Any, where: str) -> dict[str, float]:
    """A cell's ``resources`` with Ray's defaults filled in: ``num_cpus`` > 0, ``num_gpus`` a whole number."""
    if not isinstance(values, dict) or set(values) - set(RESOURCES):
        raise RecipeError(f"{where}: resources is a mapping of {', '.join(RESOURCES)}, got {values!r}")
    merged = {**RESOURCES, **values}
    cpus, gpus = merged["num_cpus"], merged["num_gpus"]
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0:
        raise RecipeError(f"{where}: resources.num_cpus must be a number above 0, got {cpus!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise RecipeError(
            f"{where}: resources.num_gpus must be a whole number (a GPU is given whole to one cell), got {gpus!r}"
        )
    return merged


@dataclass(frozen=True)
class _Source:
    """A backbone of a spec cell: the row's name, what ``zoo run`` loads, and what it is built from."""

    shown: str
    model: str
    registered: str
    modality: str
    parent: Cell | None = None
    stamp: str | None = None


class _Planner:
    def __init__(self, spec: CompareSpec):
        from zoo.plugins import get_plugin_set

        self.spec, self.registry = spec, get_plugin_set().registry
        self.where = spec_where(spec)
        self.by_id: dict[str, int] = {}
        for index, raw in enumerate(spec.cells):
            if not isinstance(raw, dict):
                raise RecipeError(f"{self.where}, cell {index + 1}: a cell is a mapping of recipe keys")
            cell_id = raw.get("id")
            if cell_id is None:
                if raw.get("label") is not None:  # a label names what an id'd cell trains; alone it would do nothing
                    raise RecipeError(
                        f"{self.where}, cell {index + 1}: label {raw['label']!r} names the rows of what this cell "
                        "trains ({trained: ID}), but the cell has no id; give it one (id: NAME) or drop label"
                    )
                continue
            if not isinstance(cell_id, str) or not _ID.match(cell_id):
                raise RecipeError(f"{self.where}, cell {index + 1}: id {cell_id!r} must be a plain name")
            if cell_id in self.by_id:
                raise RecipeError(f"{self.where}: two cells have id {cell_id!r}")
            self.by_id[cell_id] = index
        self.done: dict[tuple[int, int], list[Cell]] = {}
        self.visiting: list[int] = []
        self.local_names: dict[str, Path] = {}  # a folder name shown for one path; another with it shows its entry

    def names(self, entries: list[Any], seed: int, where: str) -> list[_Source]:
        """The backbone each entry stands for: registered names (patterns expanded), local folders, and
        the cells whose trained backbones ``{trained: ID}`` names."""
        found: list[_Source] = []
        base = Path(self.spec.base_dir or ".")
        for entry in entries:
            if isinstance(entry, dict):
                if set(entry) != {TRAINED}:
                    raise RecipeError(
                        f"{where}: a backbone is a name, a pattern, a folder or {{trained: CELL_ID}}, got {entry!r}"
                    )
                found.append(self.parent(entry[TRAINED], seed, where))
                continue
            if not isinstance(entry, str):
                raise RecipeError(f"{where}: backbone {entry!r} must be a name, a pattern or a folder")
            if is_local(entry, base, self.registry):
                local = local_backbone(entry, base, self.registry, where)
                shown = self.local_names.setdefault(local.shown, local.path) == local.path and local.shown
                found.append(
                    _Source(shown or entry, str(local.path), local.registered, local.modality, None, local.stamp)
                )
                continue
            if any(c in entry for c in "*?["):
                matched = [s.name for s in self.registry.list_backbones(entry)]
            else:
                try:
                    matched = [self.registry.resolve_backbone(entry)[0].name]
                except ZooError as exc:
                    raise RecipeError(f"{where}: {exc}") from None
            if not matched:
                raise RecipeError(f"{where}: no backbone matches {entry!r} (see zoo list)")
            for name in matched:
                found.append(_Source(name, name, name, self.registry.resolve_backbone(name)[0].modality))
        return list({(source.shown, id(source.parent)): source for source in found}.values())

    def parent(self, cell_id: Any, seed: int, where: str) -> _Source:
        if cell_id not in self.by_id:
            known = ", ".join(sorted(self.by_id)) or "none has an id"
            raise RecipeError(f"{where}: {{trained: {cell_id}}} names no cell; the cells' ids: {known}")
        index = self.by_id[cell_id]
        parents = [c for c in self.cells_of(index, seed) if not c.skip]
        if len(parents) != 1:
            raise RecipeError(
                f"{where}: cell {cell_id!r} trains {len(parents)} backbones; give it one "
                "(backbones: [NAME]) to use what it trains as a backbone"
            )
        parent = parents[0]
        if (parent.recipe.get("mode") or "") in ("linear-probe", "zero-shot"):
            raise RecipeError(
                f"{where}: cell {cell_id!r} runs mode {parent.recipe['mode']}, which trains no backbone to evaluate"
            )
        label = self.spec.cells[index].get("label") or cell_id
        modality = self.registry.resolve_backbone(parent.registered)[0].modality
        shown = f"{parent.backbone} + {label}"
        return _Source(
            shown, str(parent.trained_backbone(Path(self.spec.output_dir))), parent.registered, modality, parent
        )

    def cells_of(self, index: int, seed: int) -> list[Cell]:
        if (index, seed) in self.done:
            return self.done[(index, seed)]
        if index in self.visiting:
            loop = [self.spec.cells[i].get("id", f"#{i + 1}") for i in self.visiting[self.visiting.index(index) :]]
            raise RecipeError(
                f"{self.where}: cells {' -> '.join(map(str, [*loop, loop[0]]))} depend on each other's "
                "trained backbones"
            )
        self.visiting.append(index)
        raw = self.spec.cells[index]
        where = f"{self.where}, cell {raw.get('id', index + 1)}"
        values = {k: v for k, v in {**self.spec.defaults, **raw}.items() if k not in CELL_KEYS}
        # a cell's files are relative to the spec (as a recipe's to its file), stored absolute: its cell runs elsewhere
        values = resolve_paths(values, Path(self.spec.base_dir or "."))
        data_root = os.path.abspath(self.spec.data_root) if self.spec.data_root else None  # as given: from here
        resources = check_resources(
            {**(self.spec.defaults.get("resources") or {}), **(raw.get("resources") or {})}, where
        )
        cells = []
        for source in self.names(raw.get("backbones") or self.spec.backbones, seed, where):
            recipe = {**values, "model": source.model, "seed": seed, "data_root": data_root}
            validate(recipe, where)
            check_cell(recipe, source.modality, self.registry, where)
            task = self.registry.get("task", recipe["task"])
            skip = (
                None
                if source.modality in task.modalities
                else f"{task.name} needs {_a(' or '.join(task.modalities))} backbone; "
                f"{source.shown} is {_a(source.modality)} backbone"
            )
            cell = Cell(source.shown, recipe, skip, raw.get("id"), source.parent, resources, source.registered)
            cell.stamp = source.stamp
            cells.append(cell)
        self.visiting.pop()
        self.done[(index, seed)] = cells
        return cells


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def plan(spec: CompareSpec) -> list[Cell]:
    """Every (backbone, cell, seed), parents before the cells that use what they train; cells a
    backbone cannot do are marked skipped with the reason. A missing parent id, a cycle, or a parent
    that trains no single backbone is a RecipeError naming the cells."""
    planner = _Planner(spec)
    cells = [cell for index in range(len(spec.cells)) for seed in spec.seeds for cell in planner.cells_of(index, seed)]
    unique = list({id(cell): cell for cell in cells}.values())
    return sorted(unique, key=lambda cell: cell.depth)


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` (1-based) of ``count``: a stable deal of whole rows, each with the
    parents of its cells (and the rows of those parents' own), round-robin in plan order."""
    if not (isinstance(index, int) and isinstance(count, int) and 1 <= index <= count):
        raise RecipeError(f"shard {index}/{count}: give I/N with 1 <= I <= N, e.g. --shard 1/4")
    group: dict[str, str] = {}  # union-find over rows: a row and its parents' rows go together

    def find(row: str) -> str:
        while group.setdefault(row, row) != row:
            row = group[row]
        return row

    for cell in cells:
        if cell.parent is not None:
            group[find(cell.row)] = find(cell.parent.row)
    order = list(dict.fromkeys(find(cell.row) for cell in cells))
    chosen = set(order[index - 1 :: count])
    return [cell for cell in cells if find(cell.row) in chosen]
