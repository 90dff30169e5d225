"""``zoo compare``: one table of backbones x tasks x modes x seeds, across modalities, with provenance.

An application of the public API, layered above it: `plan` turns a compare spec into cells
(parents first) and deals them into shards; `executors` runs one cell, as a ``zoo run``
process on this machine or as a Ray task; `run` drives them (finished cells reused, parents
first); `table` aggregates the records (Markdown, CSV, JSON, plots) and `report` writes the
self-contained ``report.html`` and merges result folders. The package is named
``comparisons`` because ``zoo.compare`` is the public function that runs one.
"""

from __future__ import annotations

import os
from typing import Any

from zoo.comparisons.plan import Cell, CompareSpec, load_spec, plan, spec_from_dict
from zoo.comparisons.report import merge
from zoo.comparisons.run import run_compare

__all__ = ["Cell", "CompareSpec", "compare", "load_spec", "merge", "plan", "run_compare", "spec_from_dict"]


def compare(
    spec: str | os.PathLike | dict[str, Any],
    progress: Any = None,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    shard: tuple[int, int] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run a comparison, as ``zoo compare`` does, and return its table.

    ``spec`` is a compare spec file (YAML) or a dict of its keys (``backbones``, ``cells``,
    ``seeds``, ``defaults``, ``output_dir``, ``data_root``); ``overrides`` replace keys of
    the file. The table's ``rows`` hold one entry per (backbone, cell) with metrics as mean
    and std over seeds, and provenance; ``table.md``, ``table.csv``, ``table.json`` and
    plots are written to the output directory. ``progress`` receives one line per cell;
    ``jobs`` cells run at once (each in its own process). ``executor="ray"`` runs each cell as a
    Ray task instead (on a Ray started here, or the cluster at ``address``); ``shard=(I, N)`` runs
    shard I of N into ``OUTPUT/shard-I-of-N`` (join the shards with `merge`). Every cell's names and
    options, and its data as ``zoo run`` reads it, are checked before any runs (a `RecipeError`
    naming the cell); a cell that fails while
    running is a row with ``status: failed`` and its ``error`` (`zoo compare` exits 1 for it). Paths
    in a dict spec (local backbone folders, data files) are relative to the current folder.
    """
    loaded = spec_from_dict({**spec, **overrides}) if isinstance(spec, dict) else load_spec(spec, overrides)
    return run_compare(
        loaded, progress=progress or (lambda line: None), jobs=jobs, executor=executor, address=address, shard_of=shard
    )
