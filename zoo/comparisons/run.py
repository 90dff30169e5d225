"""``zoo compare``: one table of backbones x tasks x modes x seeds, across modalities, with provenance.

A compare spec (YAML) names backbones (registry patterns allowed), cells (task,
data, mode and recipe keys) and seeds. Every (backbone, cell, seed) runs through
the same engine as ``zoo run``, each in its own process (so one failure or crash
cannot take the table down, and its peak memory is its own), into
``OUTPUT/cells/ID/``. A cell whose ``cell.json`` already holds a result with the
same recipe hash and library versions is reused, so an interrupted compare
continues where it stopped and a second run with warm caches is quick. The
table is written as ``table.md``, ``table.csv``, ``table.json`` and PNG plots.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from zoo.recipes import RecipeError, validate
from zoo.records import library_versions, write_json
from zoo.validation import CELL_SCHEMA, MEASURE_SCHEMA, RESULTS_SCHEMA, FileError, read_json_file

SPEC_KEYS = {"name", "output_dir", "backbones", "cells", "seeds", "defaults", "data_root"}


@dataclass
class CompareSpec:
    """What to compare: backbone patterns x cells x seeds; ``defaults`` are recipe keys for every cell."""

    name: str
    backbones: list[str]
    cells: list[dict[str, Any]]
    seeds: list[int] = field(default_factory=lambda: [0])
    defaults: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "results"
    data_root: str | None = None


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> CompareSpec:
    """The compare spec in YAML file ``path``, with ``overrides`` (e.g. output_dir) applied."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"compare spec {path} not found")
    return spec_from_dict({"name": path.stem, **(yaml.safe_load(path.read_text()) or {}), **(overrides or {})}, path)


def spec_from_dict(values: dict[str, Any], where: str | Path = "compare spec") -> CompareSpec:
    """A `CompareSpec` from its keys, checked: unknown keys and empty lists are errors naming ``where``."""
    unknown = sorted(set(values) - SPEC_KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; a compare spec has {', '.join(sorted(SPEC_KEYS))}")
    for key in ("backbones", "cells"):
        if not values.get(key) or not isinstance(values[key], list):
            raise RecipeError(f"{where}: {key} must be a non-empty list")
    return CompareSpec(**{"name": "compare", **values})


@dataclass
class Cell:
    backbone: str
    recipe: dict[str, Any]
    skip: str | None = None  # why the backbone cannot do this task

    @property
    def key(self) -> str:
        content = json.dumps({"backbone": self.backbone, "recipe": self.recipe, "versions": library_versions()},
                             sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:16]


def plan(spec: CompareSpec) -> list[Cell]:
    """Every (backbone, cell, seed), in order; cells a backbone cannot do are marked skipped with the reason."""
    from zoo.api import get_plugin_set

    registry = get_plugin_set().registry
    names: list[str] = []
    for pattern in spec.backbones:
        found = [s.name for s in registry.list_backbones(pattern)] if any(c in pattern for c in "*?[") else \
            [registry.resolve_backbone(pattern)[0].name]
        if not found:
            raise RecipeError(f"compare spec {spec.name!r}: no backbone matches {pattern!r} (see zoo list)")
        names += [n for n in found if n not in names]
    cells = []
    for index, raw in enumerate(spec.cells):
        values = {**spec.defaults, **raw}
        for seed in spec.seeds:
            for name in names:
                recipe = {**values, "model": name, "seed": seed, "data_root": spec.data_root}
                validate(recipe, f"compare spec {spec.name!r}, cell {index + 1}")
                task = registry.get("task", recipe["task"])
                modality = registry.resolve_backbone(name)[0].modality
                skip = None if modality in task.modalities else \
                    f"{task.name} needs a {' or '.join(task.modalities)} backbone; {name} is {modality}"
                cells.append(Cell(name, recipe, skip))
    return cells


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory`` (released if the process dies) while one process works on it."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_cell(cell: Cell, directory: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one cell in a fresh `zoo run` process; its result, or its failure, and its peak memory."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    recipe_file = directory / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump({**cell.recipe, "name": "run", "output_dir": str(directory)},
                                          sort_keys=False))
    resume = ["--resume"] if (directory / "run" / "checkpoints" / "last.pt").exists() else []
    started = time.perf_counter()
    with open(directory / "stdout.log", "w") as out, open(directory / "stderr.log", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "zoo", "run", str(recipe_file), *resume],
                                   stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # wait4: the child's own peak memory
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: subprocess must not wait on the pid again
    record: dict[str, Any] = {"backbone": cell.backbone, "recipe": cell.recipe, "key": cell.key,
                              "seconds": round(time.perf_counter() - started, 2),
                              "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    results_file = directory / "run" / "results.json"
    if process.returncode == 0 and results_file.exists():
        try:
            results = read_json_file(results_file, RESULTS_SCHEMA, "a run's results.json")
        except FileError as exc:
            return {**record, "status": "failed", "error": str(exc)}
        record.update(status="ok", metrics=results["metrics"], train=results["train"],
                      provenance=results["provenance"])
    else:
        lines = [line for line in (directory / "stderr.log").read_text().splitlines()
                 if line.startswith("zoo: error:")]
        record.update(status="failed", error=lines[-1][len("zoo: error: "):] if lines else
                      f"exit status {process.returncode}; see {directory / 'stderr.log'}")
    return record


def measure_backbone(name: str, cache: Path) -> dict[str, Any]:
    """Parameters, GFLOPs per sample and inference samples/s of each encoder (cached per versions)."""
    key = hashlib.sha256(json.dumps([name, library_versions(), platform.node()]).encode()).hexdigest()[:16]
    path = cache / f"{name.replace('/', '--')}.json"
    if path.exists():
        try:
            stored = read_json_file(path, MEASURE_SCHEMA, "a cached backbone measurement")
        except FileError:
            stored = {}  # measured again, never trusted
        if stored.get("key") == key:
            return stored
    import zoo
    from zoo.measure import measure_encoders

    try:
        model = zoo.load(name)
        rows = measure_encoders(model, batch=16, seconds=1.0)
        spec = model.spec
        info = {"key": key, "params": model.num_params(), "family": spec.plugin, "modality": spec.modality,
                "license": spec.license, "gflops": {r["input"]: round(r["gflops_per_sample"], 4) for r in rows},
                "inference_per_s": {r["input"]: round(r["samples_per_second"], 1) for r in rows}}
    except Exception as exc:  # noqa: BLE001 - a backbone that does not load fails its cells, not the table
        spec = zoo.get_spec(name)
        info = {"key": key, "params": spec.params, "family": spec.plugin, "modality": spec.modality,
                "license": spec.license, "gflops": {}, "inference_per_s": {}, "error": str(exc).splitlines()[0]}
    cache.mkdir(parents=True, exist_ok=True)
    write_json(path, info)
    return info


def primary(recipe: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, float]:
    """The headline number of a cell: its test split's (else eval split's) primary metric."""
    from zoo.tasks import get_task

    split = recipe.get("test_split") or recipe.get("eval_split", "validation")
    values = metrics.get(split) or next(iter(metrics.values()))
    task = get_task(recipe["task"])
    numbers = [k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    preferred = [k for k in ("text->image R@1", "text->text R@1", task.primary_metric) if k in numbers]
    name = (preferred or numbers)[0]
    return f"{split} {name}", values[name]


def _warn_without_data_root(spec: CompareSpec, cells: list[Cell], progress: Any) -> None:
    """One line up front when the named data sets have no data root, saying what to provide."""
    from zoo.api import get_plugin_set
    from zoo.data import DataError, data_root

    registered = {spec.name: spec for spec in get_plugin_set().registry.datasets()}
    needing = sorted({c.recipe["data"] for c in cells
                      if not c.skip and c.recipe["data"] in registered and registered[c.recipe["data"]].needs_data_root})
    if not needing:
        return
    try:
        data_root(spec.data_root)
    except DataError as exc:
        progress(f"zoo: warning: {exc}. The cells on {', '.join(needing)} will fail; the rest (such as "
                 "scikit-learn digits) still run")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries; [] without CUDA."""
    import torch

    count = torch.cuda.device_count()  # leaves torch's CUDA state uninitialised
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [entry.strip() for entry in listed.split(",")] if listed else [str(i) for i in range(count)]
    return ids[:count]


def cell_environments(jobs: int, base: dict[str, str], cores: int, gpus: list[str]) -> list[dict[str, str] | None]:
    """The environment of each of ``jobs`` concurrent cell processes (None: inherit this process's).

    Each gets ``cores // jobs`` CPU threads unless ``OMP_NUM_THREADS`` is already set, and, with more
    than one GPU visible, one GPU (``CUDA_VISIBLE_DEVICES``), dealt round-robin so that jobs beyond
    the GPU count share them evenly. One GPU, or none, is left as it is.
    """
    if jobs == 1:
        return [None]
    environments = []
    for slot in range(jobs):
        env = dict(base)
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // jobs)))
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        environments.append(env)
    return environments


def run_compare(spec: CompareSpec, progress: Any = print, jobs: int = 1) -> dict[str, Any]:
    """Run (or reuse) every cell, ``jobs`` at a time, then write the tables and plots; returns the table.

    With ``jobs`` > 1 each cell's process gets an equal share of the CPU cores (``OMP_NUM_THREADS``,
    unless already set) and, where several GPUs are visible, a GPU of its own (see `cell_environments`);
    the cells' wall times in the table were then measured side by side.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise RecipeError(f"jobs must be a whole number of at least 1, got {jobs!r}")
    out = Path(spec.output_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    cells = plan(spec)
    _warn_without_data_root(spec, cells, progress)
    environments: queue.SimpleQueue = queue.SimpleQueue()  # a running cell holds one; no two hold the same
    for env in cell_environments(jobs, dict(os.environ), os.cpu_count() or 1, visible_gpus() if jobs > 1 else []):
        environments.put(env)

    def record_of(number: int, cell: Cell) -> dict[str, Any]:
        directory = out / "cells" / cell.key
        previous = directory / "cell.json"
        label = f"[{number}/{len(cells)}] {cell.backbone} {cell.recipe['task']} {cell.recipe['data']} " \
                f"{cell.recipe.get('mode', 'finetune')} seed {cell.recipe['seed']}"
        if cell.skip:
            return {"backbone": cell.backbone, "recipe": cell.recipe, "key": cell.key, "status": "skipped",
                    "error": cell.skip}
        with _locked(directory):  # compares sharing an output directory run each cell once
            if previous.exists():
                try:
                    finished = read_json_file(previous, CELL_SCHEMA, "a compare cell's cell.json")
                except FileError as exc:
                    progress(f"{label}: {exc}; running it again")
                    finished = {}
                if finished.get("status") == "ok" and finished.get("key") == cell.key:
                    progress(f"{label}: reused")
                    return finished
            progress(f"{label}: running")
            env = environments.get()
            try:
                record = _run_cell(cell, directory, env)
            finally:
                environments.put(env)
            write_json(previous, record)
            progress(f"{label}: {record['status']} in {record['seconds']:.0f} s"
                     + (f" ({record['error']})" if record["status"] == "failed" else ""))
            return record

    if jobs == 1:
        records = [record_of(number, cell) for number, cell in enumerate(cells, 1)]
    else:
        pool = ThreadPoolExecutor(jobs)  # threads only wait: each cell runs in its own process
        try:
            records = list(pool.map(record_of, range(1, len(cells) + 1), cells))
        finally:
            pool.shutdown(cancel_futures=True)  # after Ctrl-C, no queued cell starts
    backbones = {c.backbone: measure_backbone(c.backbone, out / "backbones") for c in cells if not c.skip}
    from zoo.comparison_report import build_table, write_outputs

    table = build_table(spec.name, records, backbones)
    write_outputs(table, out)
    return table
