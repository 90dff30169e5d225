"""``zoo compare``: one table of backbones x tasks x modes x seeds, across modalities, with provenance.

An application of the public API, layered above it: `plan` turns a compare spec into cells
(parents first), `run` executes them as ``zoo run`` processes on this machine and reuses
finished ones, `table` aggregates the records into the table (Markdown, CSV, JSON, plots,
merging) and `report` writes the self-contained ``report.html``. The package is named
``comparisons`` because ``zoo.compare`` is the public function that runs one.
"""

from zoo.comparisons.plan import Cell, CompareSpec, load_spec, plan, spec_from_dict
from zoo.comparisons.run import run_compare
from zoo.comparisons.table import merge

__all__ = ["Cell", "CompareSpec", "load_spec", "merge", "plan", "run_compare", "spec_from_dict"]
