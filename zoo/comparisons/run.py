"""Running a comparison: each cell a `zoo run` process (here, or as a Ray task), then the table.

Every (backbone, cell, seed) runs through the same engine as ``zoo run``, each in its own
process (so one failure or crash cannot take the table down, and its peak memory is its
own), into ``OUTPUT/cells/KEY/``; `zoo.comparisons.executors` says where. A cell whose
``cell.json`` already holds a result for the same key (recipe and library versions) is
reused, so an interrupted compare continues where it stopped and a second run is quick.
Cells that evaluate another cell's trained backbone start when it ends; when it fails
they are recorded as skipped with its reason. Each row gets its bootstrap interval and each column its
best row and significance marks (`zoo.comparisons.significance`). The table is written as ``table.md``,
``table.csv``, ``table.json``, PNG plots and ``report.html``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.comparisons.checks import check_cells
from zoo.comparisons.executors import CellInterrupted, make_executor
from zoo.comparisons.plan import Cell, CompareSpec, plan, shard, spec_where
from zoo.comparisons.references import reference_rows, write_mteb_results
from zoo.recipes import RecipeError
from zoo.records import library_versions, write_json
from zoo.validation import CELL_SCHEMA, MEASURE_SCHEMA, FileError, read_json_file


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


def measure_backbone(
    name: str, cache: Path, model_source: str | None = None, registered: str | None = None
) -> dict[str, Any]:
    """Parameters, GFLOPs per sample and inference samples/s of each encoder (cached per versions);
    ``model_source`` is what loads it when that is not ``name`` (a trained backbone's or a local folder),
    ``registered`` the registered backbone it is built from (family and license when it does not load)."""
    source = model_source or name
    key = hashlib.sha256(json.dumps([name, source, library_versions(), platform.node()]).encode()).hexdigest()[:16]
    path = cache / f"{name.replace('/', '--')}.json"
    if path.exists():
        try:
            stored = read_json_file(path, MEASURE_SCHEMA, "a cached backbone measurement")
        except FileError:
            stored = {}  # measured again, never trusted
        if stored.get("key") == key:
            return stored
    from zoo.api import get_spec, load
    from zoo.measure import measure_encoders

    try:
        model = load(source)
        rows = measure_encoders(model, batch=16, seconds=1.0)
        spec = model.spec
        info = {
            "key": key,
            "params": model.num_params(),
            "family": spec.plugin,
            "modality": spec.modality,
            "license": spec.license,
            "gflops": {r["input"]: round(r["gflops_per_sample"], 4) for r in rows},
            "inference_per_s": {r["input"]: round(r["samples_per_second"], 1) for r in rows},
        }
    except Exception as exc:  # noqa: BLE001 - a backbone that does not load fails its cells, not the table
        spec = get_spec(registered or name)
        info = {
            "key": key,
            "params": spec.params,
            "family": spec.plugin,
            "modality": spec.modality,
            "license": spec.license,
            "gflops": {},
            "inference_per_s": {},
            "error": str(exc).splitlines()[0],
        }
    cache.mkdir(parents=True, exist_ok=True)
    write_json(path, info)
    return info


def _warn_without_data_root(spec: CompareSpec, cells: list[Cell], progress: Any) -> None:
    """One line up front when the named data sets have no data root, saying what to provide."""
    from zoo.data import DataError, data_root
    from zoo.plugins import get_plugin_set

    registered = {spec.name: spec for spec in get_plugin_set().registry.datasets()}
    needing = sorted(
        {
            c.recipe["data"]
            for c in cells
            if not c.skip and c.recipe["data"] in registered and registered[c.recipe["data"]].needs_data_root
        }
    )
    if not needing:
        return
    try:
        data_root(spec.data_root)
    except DataError as exc:
        progress(
            f"zoo: warning: {exc}. The cells on {', '.join(needing)} will fail; the rest (such as "
            "scikit-learn digits) still run"
        )


def run_compare(
    spec: CompareSpec,
    progress: Any = print,
    jobs: int = 1,
    bar: bool = False,
    executor: str = "local",
    address: str | None = None,
    shard_of: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every cell, then write the tables, plots and report; returns the table.

    ``progress`` gets one line per cell as it finishes (reused, ok, failed or skipped, with the reason);
    ``bar`` adds a progress bar on a terminal. Cells that use another cell's trained backbone wait for it.
    ``executor`` says where cells run: ``local``, ``jobs`` processes at a time on this machine, each with
    an equal share of the CPU cores (``OMP_NUM_THREADS``, unless already set) and, where several GPUs are
    visible, a GPU of its own; or ``ray``, each a Ray task with its cell's ``resources``, on a Ray started
    here or the cluster at ``address``. ``shard_of=(I, N)`` runs only shard I of N (whole rows, with their
    parents) into ``OUTPUT/shard-I-of-N``, for ``zoo compare --merge`` to join.
    """
    from dataclasses import replace

    from tqdm.auto import tqdm

    if not isinstance(jobs, int) or jobs < 1:
        raise RecipeError(f"jobs must be a whole number of at least 1, got {jobs!r}")
    if shard_of is not None:
        spec = replace(spec, output_dir=str(Path(spec.output_dir) / f"shard-{shard_of[0]}-of-{shard_of[1]}"))
    out = Path(spec.output_dir)
    cells = plan(spec)
    references = reference_rows(spec.references, Path(spec.base_dir or "."))  # checked before any cell runs
    if shard_of is not None:
        cells = shard(cells, *shard_of)
    check_cells(cells, spec_where(spec), device=executor == "local")  # as zoo run checks each, before any cell runs
    (out / "cells").mkdir(parents=True, exist_ok=True)
    _warn_without_data_root(spec, cells, progress)
    runner = make_executor(executor, jobs, address)
    runnable = [cell for cell in cells if not cell.skip]
    counter = tqdm(total=len(runnable), desc=spec.name, unit="cell", disable=not bar or None, leave=False)
    numbers = {id(cell): number for number, cell in enumerate(runnable, 1)}
    records: dict[int, dict[str, Any]] = {}
    stopping = threading.Event()

    def say(cell: Cell, outcome: str) -> None:
        recipe = cell.recipe
        line = (
            f"[{numbers[id(cell)]}/{len(runnable)}] {cell.backbone} {recipe['task']} {recipe['data']} "
            f"{recipe.get('mode') or 'default mode'} seed {recipe['seed']}: {outcome}"
        )
        counter.write(line) if not counter.disable else progress(line)

    def report(cell: Cell, outcome: str) -> None:
        say(cell, outcome)
        counter.update(1)

    def record_of(cell: Cell) -> dict[str, Any]:
        base = {"backbone": cell.backbone, "recipe": cell.recipe, "key": cell.key}
        if cell.skip:
            return {**base, "status": "skipped", "error": cell.skip}
        parent = records.get(id(cell.parent)) if cell.parent is not None else None
        if cell.parent is not None and parent is not None and parent["status"] != "ok":
            reason = f"its parent cell {cell.parent.cell_id!r} {parent['status']}: {parent.get('error')}"
            report(cell, f"skipped ({reason})")
            return {**base, "status": "skipped", "error": reason}
        directory = out / "cells" / cell.key
        previous = directory / "cell.json"
        with _locked(directory):  # compares sharing an output directory run each cell once
            if previous.exists():
                try:
                    finished = read_json_file(previous, CELL_SCHEMA, "a compare cell's cell.json")
                except FileError as exc:
                    say(cell, f"{exc}; running it again")
                    finished = {}
                if finished.get("status") == "ok" and finished.get("key") == cell.key:
                    report(cell, "reused")
                    return finished
            record = runner.run(cell, directory)
            if stopping.is_set():  # interrupted while it ran: whatever it says, it did not finish
                raise CellInterrupted(cell.key)
            if record["status"] == "ok" and cell.parent is not None:  # the trained backbone it evaluates
                record["provenance"]["parent"] = {
                    "cell": cell.parent.cell_id,
                    "key": cell.parent.key,
                    "backbone": cell.parent.backbone,
                    "model": cell.recipe["model"],
                }
            write_json(previous, record)
            took = f" in {record['seconds']:.0f} s" if "seconds" in record else ""
            why = f" ({record['error']})" if record["status"] == "failed" else ""
            report(cell, f"{record['status']}{took}{why}")
            return record

    children: dict[int, list[Cell]] = {}
    for cell in cells:
        if cell.parent is not None:
            children.setdefault(id(cell.parent), []).append(cell)
    pool = ThreadPoolExecutor(max(1, min(runner.slots, len(runnable))))  # threads only wait on the cells
    try:
        # a parent starts first and its cells start as soon as it ends (never a thread waiting on another)
        roots = sorted((cell for cell in cells if cell.parent is None), key=lambda cell: id(cell) not in children)
        running = {pool.submit(record_of, cell): cell for cell in roots}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                cell = running.pop(future)
                records[id(cell)] = future.result()
                running.update({pool.submit(record_of, child): child for child in children.get(id(cell), [])})
    except (KeyboardInterrupt, CellInterrupted):
        stopping.set()
        runner.cancel()  # the cells still running stop unrecorded; every finished cell.json is kept
        done = sum(1 for record in records.values() if record["status"] != "skipped")
        progress(
            f"zoo: interrupted: {done} finished cell(s) kept in {out / 'cells'}; "
            "run the same command again to run the rest"
        )
        raise KeyboardInterrupt from None
    finally:
        pool.shutdown(cancel_futures=True)  # after Ctrl-C, no queued cell starts
        counter.close()
        runner.close()
    sources = {
        c.backbone: (c.recipe["model"] if c.recipe["model"] != c.backbone else None, c.registered) for c in runnable
    }
    backbones = {name: measure_backbone(name, out / "backbones", *source) for name, source in sources.items()}
    from zoo.comparisons.report import write_outputs
    from zoo.comparisons.significance import add_uncertainty
    from zoo.comparisons.table import build_table

    table = add_uncertainty(build_table(spec.name, [records[id(cell)] for cell in cells], backbones), out)
    table["rows"] += references  # after the marks: a published number is not a paired measurement
    write_outputs(table, out)
    write_mteb_results(table["rows"], out)
    return table
