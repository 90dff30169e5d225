"""Error bars and significance marks for a comparison table, from its runs' per-item outputs.

Each finished row gets ``interval``: the 95% percentile-bootstrap interval of its headline metric over
the test items (the mean over seeds where there are several, each seed's items resampled). In each
column the best row gets ``best``; every other row gets ``significance``, a paired bootstrap of its
difference from the best row over the same test items (seed by seed), and ``not_significant`` when
that difference's interval holds zero. Rows are paired only when their runs scored the same items:
the same split, data fingerprint and number of items (and the same labels, where there are labels);
otherwise the row says why it is not compared. A row whose runs kept no per-item outputs (a run from
before they were kept, a task that returns only metrics) keeps whatever interval it had and is not
compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.comparisons.table import column_of

LOWER_IS_BETTER = ("median_rank", "loss", "perplexity")


def _items_of(row: dict[str, Any], out: Path) -> tuple[dict[int, Any], str | None]:
    """Each seed's (outputs, metadata) for the row's headline split, or why there are none."""
    from zoo.tasks.uncertainty import load_items

    split = row["metric"].split(" ", 1)[0]
    seeds = row.get("run_seeds") or row.get("seeds") or []
    runs = row.get("runs") or []
    if len(seeds) != len(runs) or not runs:
        return {}, "its runs are not listed seed by seed"
    found = {}
    for seed, run in zip(seeds, runs, strict=True):
        path = out / run / "items" / f"{split}.safetensors"
        if not path.is_file():
            return {}, f"no per-item outputs in {run} (a run from before they were kept, or a task without them)"
        try:
            found[seed] = load_items(path)
        except Exception as exc:  # noqa: BLE001 - a damaged file costs the row its marks, not the table
            return {}, f"{path} is unreadable ({type(exc).__name__})"
    return found, None


def _interval(row: dict[str, Any], items: dict[int, Any]) -> dict[str, Any] | None:
    from zoo.tasks.uncertainty import ItemsError, bootstrap_interval, item_metrics

    metric = row["metric"].split(" ", 1)[1]
    outputs = [items[seed][0] for seed in sorted(items)]
    try:
        found = bootstrap_interval(outputs, item_metrics, metric)
    except (ItemsError, KeyError):
        return {"method": None, "note": f"{metric} cannot be recomputed from the per-item outputs"}
    if abs(found.pop("value") - row["mean"]) > 1e-6:  # not zoo's definition of the metric: no interval
        return {"method": None, "note": f"{metric} recomputed from the per-item outputs differs from the recorded one"}
    return found


def _same_items(a: tuple[Any, dict[str, str]], b: tuple[Any, dict[str, str]]) -> bool:
    keys = ("split", "data_fingerprint", "items")
    return all(a[1].get(k) == b[1].get(k) for k in keys) and bool(a[1].get("data_fingerprint"))


def _compare(row: dict[str, Any], rows_items: dict[int, Any], best: dict[str, Any], best_items: dict[int, Any]):
    """The paired bootstrap of ``row`` - ``best`` over the seeds both scored on the same items."""
    from zoo.tasks.uncertainty import ItemsError, item_metrics, paired_bootstrap

    metric = row["metric"].split(" ", 1)[1]
    seeds = [s for s in sorted(rows_items) if s in best_items and _same_items(rows_items[s], best_items[s])]
    if not seeds:
        return {"against": best["backbone"], "note": "not compared: no seed of both rows scored the same test items"}
    try:
        found = paired_bootstrap(
            [rows_items[s][0] for s in seeds], [best_items[s][0] for s in seeds], item_metrics, metric
        )
    except (ItemsError, KeyError) as exc:
        return {"against": best["backbone"], "note": f"not compared: {exc}"}
    return {"against": best["backbone"], **found}


def add_uncertainty(table: dict[str, Any], out: Path) -> dict[str, Any]:
    """Give ``table``'s finished rows their intervals and each column its best row and significance
    marks, reading the per-item outputs of the runs (``row["runs"]``, relative to ``out``)."""
    loaded: dict[int, dict[int, Any]] = {}
    columns: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in table["rows"]:
        for key in ("best", "not_significant", "significance"):
            row.pop(key, None)
        if row["status"] != "ok" or not row.get("metric"):
            continue
        items, why = _items_of(row, out)
        if items:
            loaded[id(row)] = items
            row["interval"] = _interval(row, items)
        elif "interval" not in row:  # a merged row whose runs are elsewhere keeps the interval it had
            row["interval"] = {"method": None, "note": why}
        columns.setdefault((column_of(row), row["metric"]), []).append(row)
    for (_, metric), rows in columns.items():
        if len(rows) < 2:
            continue
        lower = metric.endswith(LOWER_IS_BETTER)
        best = (min if lower else max)(rows, key=lambda r: r["mean"])
        best["best"] = True
        for row in rows:
            if row is best:
                continue
            if id(row) not in loaded or id(best) not in loaded:
                row["significance"] = {"against": best["backbone"], "note": "not compared: no per-item outputs"}
                continue
            row["significance"] = _compare(row, loaded[id(row)], best, loaded[id(best)])
            if row["significance"].get("significant") is False:
                row["not_significant"] = True
    return table
