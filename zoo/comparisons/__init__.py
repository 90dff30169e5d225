"""``zoo compare``: one table of backbones x tasks x modes x seeds, across modalities, with provenance.

An application of the public API, layered above it: `plan` turns a compare spec into cells
(parents first), `run` executes them as ``zoo run`` processes on this machine and reuses
finished ones, `table` aggregates the records into the table (Markdown, CSV, JSON, plots,
merging) and `report` writes the self-contained ``report.html``. The package is named
``comparisons`` because ``zoo.compare`` is the public function that runs one.
"""

from __future__ import annotations

import os
from typing import Any

from zoo.comparisons.plan import Cell, CompareSpec, load_spec, plan, spec_from_dict
from zoo.comparisons.report import merge
from zoo.comparisons.run import run_compare

__all__ = ["Cell", "CompareSpec", "compare", "load_spec", "merge", "plan", "run_compare", "spec_from_dict"]


def compare(spec: str | os.PathLike | dict[str, Any], progress: Any = None, jobs: int = 1,
            **overrides: Any) -> dict[str, Any]:
    """Run a comparison, as ``zoo compare`` does, and return its table.

    ``spec`` is a compare spec file (YAML) or a dict of its keys (``backbones``, ``cells``,
    ``seeds``, ``defaults``, ``output_dir``, ``data_root``); ``overrides`` replace keys of
    the file. The table's ``rows`` hold one entry per (backbone, cell) with metrics as mean
    and std over seeds, and provenance; ``table.md``, ``table.csv``, ``table.json`` and
    plots are written to the output directory. ``progress`` receives one line per cell;
    ``jobs`` cells run at once (each in its own process).
    """
    loaded = spec_from_dict({**spec, **overrides}) if isinstance(spec, dict) else load_spec(spec, overrides)
    return run_compare(loaded, progress=progress or (lambda line: None), jobs=jobs)
