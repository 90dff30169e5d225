"""The comparison table: aggregation over seeds, chance levels, how numbers read, Markdown and CSV.

Human formats (Markdown here, HTML in `report`) print metrics with three decimals, "± std" only
over two or more seeds, the bootstrap interval and the best / not-significant marks where
`zoo.comparisons.significance` gave them, counts and rates with thousands separators, and every failed or skipped
row with its reason; CSV and JSON keep the raw numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from typing import Any

from zoo.comparisons.plan import row_of

SCHEMA = 1
MISSING = "—"
BEST, SAME = "★", "≈"  # the best row of a column; a row not significantly different from it
TASK_INPUT = {
    "text-classification": "text",
    "image-classification": "image",
    "zero-shot-classification": "image",
    "retrieval": "text",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def primary(recipe: dict[str, Any], metrics: dict[str, Any], test_split: str | None = None) -> tuple[str, float]:
    """The headline number of a cell: its test split's (else eval split's) primary metric.

    ``test_split`` is the split the run scored as its test (a user's file gets one held out by default).
    """
    from zoo.tasks import get_task

    split = recipe.get("test_split") or test_split or recipe.get("eval_split", "validation")
    values = metrics.get(split) or next(iter(metrics.values()))
    headline = get_task(recipe["task"])[1].primary_metric
    if recipe.get("protocol"):  # a protocol names its own headline (MTEB's STS: cosine_spearman)
        from zoo.tasks.protocols import get_protocol

        headline = get_protocol(recipe["protocol"]).primary_metric
    numbers = [k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    preferred = [k for k in ("text->image R@1", "text->text R@1", headline) if k in numbers]
    name = (preferred or numbers)[0]
    return f"{split} {name}", values[name]


def build_table(name: str, records: list[dict[str, Any]], backbones: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One row per (backbone, cell) with metrics as mean and std over seeds, and the provenance of each."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(row_of(record["backbone"], record["recipe"]), []).append(record)
    rows = []
    for members in groups.values():
        first = members[0]
        recipe, info = first["recipe"], backbones.get(first["backbone"], {})
        done = [m for m in members if m["status"] == "ok"]
        kind = TASK_INPUT.get(recipe["task"], "text")
        row: dict[str, Any] = {
            "backbone": first["backbone"],
            "family": info.get("family"),
            "modality": info.get("modality"),
            "params": info.get("params"),
            "gflops_per_sample": info.get("gflops", {}).get(kind),
            "task": recipe["task"],
            "data": recipe["data"],
            "mode": recipe.get("mode") or protocol_mode(recipe.get("protocol")),
            "protocol": recipe.get("protocol"),
            "seeds": sorted(m["recipe"]["seed"] for m in done),
            "license": info.get("license"),
            "status": "ok" if done else members[0]["status"],
            "error": None if done else members[0].get("error"),
        }
        failed = [m for m in members if m["status"] == "failed"]
        if failed:  # each failed seed and why; a row with finished seeds stands on those
            row["failed_seeds"] = [{"seed": m["recipe"]["seed"], "error": m.get("error")} for m in failed]
            if done:
                row["error"] = "; ".join(f"seed {f['seed']} failed: {f['error']}" for f in row["failed_seeds"])
        if done:
            metric, _ = primary(recipe, done[0]["metrics"], done[0].get("test_split"))
            values = [primary(recipe, m["metrics"], m.get("test_split"))[1] for m in done]
            row["metric"], (row["mean"], row["std"]) = metric, _mean_std(values)
            split, metric_name = metric.split(" ", 1)
            chances = [m.get("chance", {}).get(split, {}).get(metric_name) for m in done]
            if all(isinstance(c, (int, float)) for c in chances):
                row["chance"] = round(statistics.fmean(chances), 6)
                row["below_chance"] = row["mean"] < row["chance"]
            row["runs"] = [f"cells/{m['key']}/run" for m in done]
            row["run_seeds"] = [m["recipe"]["seed"] for m in done]
            row["run_names"] = [f"{run_label(row)}, seed {m['recipe']['seed']}" for m in done]
            row["metrics"] = {
                k: round(_mean_std([m["metrics"][split][k] for m in done])[0], 4)
                for k, v in done[0]["metrics"][split].items()
                if isinstance(v, (int, float))
            }
            train = [m["train"] for m in done]
            row["train_seconds"] = round(statistics.fmean(t.get("train_seconds", 0) for t in train), 1)
            rates = [t["train_samples_per_second"] for t in train if t.get("train_samples_per_second")]
            row["train_samples_per_s"] = round(statistics.fmean(rates), 1) if rates else None
            row["inference_samples_per_s"] = info.get("inference_per_s", {}).get(kind)
            row["peak_rss_mb"] = max(m.get("peak_rss_mb", 0) for m in done)
            prov = done[0]["provenance"]
            row["provenance"] = {
                "versions": prov["versions"],
                "device": prov["device"],
                "precision": prov["precision"],
                "threads": prov.get("threads"),  # torch's CPU threads (fewer with compare --jobs)
                "seeds": row["seeds"],
                "data_fingerprint": prov["data_fingerprint"],
                "recipe_hash": sorted({m["provenance"]["recipe_hash"] for m in done}),
                "weights": prov["weights"],
                **({"parent": prov["parent"]} if "parent" in prov else {}),
            }
        rows.append(row)
    return {"schema": SCHEMA, "name": name, "rows": rows}


def metric_text(value: float | None) -> str:
    """A metric as the tables print it: three decimals (0.784)."""
    return MISSING if value is None else f"{value:.3f}"


def number_text(value: Any) -> str:
    """A count, rate or size as people read it: 84,900 (thousands separators, no exponent); 12.5; 0.0123."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return MISSING if value is None else str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{round(value):,}"
    if value == 0:
        return "0"
    decimals = min(6, max(1, 2 - math.floor(math.log10(abs(value)))))  # three significant digits
    return f"{value:.{decimals}f}"


def shows_std(row: dict[str, Any]) -> bool:
    """ "± std" means something only over two or more seeds."""
    return len(row.get("seeds") or []) > 1 and isinstance(row.get("std"), (int, float))


def average_note(rows: list[dict[str, Any]]) -> str:
    """What a value is: "± std" is explained only where some row has it."""
    if any(shows_std(row) for row in rows):
        return "the mean over seeds, ± the std where there are two or more"
    return "one seed each" if all(len(row.get("seeds") or []) <= 1 for row in rows) else "the mean over seeds"


def interval_of(row: dict[str, Any]) -> tuple[float, float] | None:
    """A row's bootstrap interval (low, high), where it has one."""
    interval = row.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    return (low, high) if isinstance(low, (int, float)) and isinstance(high, (int, float)) else None


def uncertainty_note(rows: list[dict[str, Any]]) -> str:
    """The legend of intervals and marks, for what the rows show ("" when none has either)."""
    notes = []
    if any(interval_of(row) for row in rows):
        several = any(interval_of(row) and len(row.get("seeds") or []) > 1 for row in rows)
        notes.append(
            "[low, high] = 95% interval, a percentile bootstrap over the test items"
            + (" (of the mean over seeds; ± is the spread across seeds)" if several else "")
        )
    if any(row.get("best") for row in rows):
        notes.append(
            f"{BEST} = the best row of its column; {SAME} = not significantly different from it "
            "(paired bootstrap over the same test items, 95%)"
        )
    return "; ".join(notes)


def significance_text(row: dict[str, Any]) -> str:
    """A row against the best of its column: "best", the difference with its interval and p-value, or
    why it was not compared; a dash where the column has no best row."""
    if row.get("best"):
        return "best"
    found = row.get("significance") or {}
    if not isinstance(found.get("difference"), (int, float)):
        return found.get("note") or MISSING
    verdict = "significant" if found.get("significant") else "not significant"
    return (
        f"{found['difference']:+.3f} [{found['low']:+.3f}, {found['high']:+.3f}], p {found['p_value']:.3f}: {verdict}"
    )


def value_text(row: dict[str, Any]) -> str:
    """A row's headline as both human tables print it: the value (± std over 2+ seeds), its bootstrap
    interval, the best / not-significantly-different marks, a below-chance mark and any failed seeds;
    or "failed: WHY" / "skipped: WHY"; a reference row's published value says so."""
    if row["status"] == "published":
        return f"{metric_text(row['mean'])} (published, not rerun)"
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('error') or 'no reason recorded'}"
    text = metric_text(row["mean"]) + (f" ± {metric_text(row['std'])}" if shows_std(row) else "")
    interval = interval_of(row)
    if interval:
        text += f" [{metric_text(interval[0])}, {metric_text(interval[1])}]"
    if row.get("best"):
        text += f" {BEST}"
    elif row.get("not_significant"):
        text += f" {SAME}"
    if row.get("below_chance"):
        text += f" ⚠ below chance {metric_text(row.get('chance'))}"
    failed = row.get("failed_seeds") or []
    if failed and row["seeds"]:
        text += f" ({len(failed)} of {len(failed) + len(row['seeds'])} seeds failed)"
    return text


def run_label(row: dict[str, Any]) -> str:
    """The readable name of a row's runs: backbone and cell (the folders themselves are named by hash)."""
    return f"{row['backbone']} · {column_of(row)}"


def failures(table: dict[str, Any]) -> list[str]:
    """One line per failed cell: which (backbone, cell, seed) and why; [] when none failed."""
    lines = []
    for row in table["rows"]:
        failed = row.get("failed_seeds") or ([{"error": row.get("error")}] if row["status"] == "failed" else [])
        for cell in failed:  # a merged table's failed rows may not say their seeds
            seed = f", seed {cell['seed']}" if cell.get("seed") is not None else ""
            lines.append(f"{run_label(row)}{seed}: {cell.get('error')}")
    return lines


def protocol_mode(protocol: str | None) -> str:
    """The mode a recipe without one runs in: its protocol's, else the engine's default."""
    from zoo.tasks.protocols import get_protocol

    return get_protocol(protocol).mode if protocol else "finetune"


def column_of(row: dict[str, Any]) -> str:
    """The matrix column a row belongs to: task, data set and mode, or the protocol it was scored under
    (numbers made under two protocols never share a column)."""
    return f"{row['task']} / {row['data']} / {row.get('protocol') or row['mode']}"


def metric_columns(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each column and the one metric its finished rows report (None when they report different ones)."""
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(column_of(row), set()).update([row["metric"]] if row["status"] in ("ok", "published") else [])
    return {column: (next(iter(metrics)) if len(metrics) == 1 else None) for column, metrics in found.items()}


def chance_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (column, metric) with a chance level: what a model must beat."""
    notes: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.get("chance") is not None:
            notes.setdefault((column_of(row), row["metric"]), row["chance"])
    return [f"{column}, {metric}: chance {value:.3f}" for (column, metric), value in notes.items()]


def escape_markdown(value: Any) -> str:
    """``value`` as text that Markdown shows as it is: no HTML (a ``<script>`` is shown, not run), no
    table breaks (``|``, new lines). Every string that reached the table from a file goes through it.
    Only ``&`` and ``<`` open HTML, so ``text->image`` stays readable in a terminal."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _row_line(fields: list[Any]) -> str:
    return "| " + " | ".join(MISSING if f is None else escape_markdown(f) for f in fields) + " |"


def markdown(table: dict[str, Any]) -> str:
    rows = table["rows"]
    metric_of = metric_columns(rows)
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    lookup = {(r["backbone"], column_of(r)): r for r in rows}
    headers = [f"{column}: {metric}" if metric else column for column, metric in metric_of.items()]
    lines = [
        f"# {escape_markdown(table['name'])}",
        "",
        f"Headline metric per cell ({average_note(rows)}), named in "
        f"its column (or beside the value where a column's rows differ); {MISSING} = not in the spec; "
        "⚠ = below chance; failed and skipped cells say why. "
        "R@K = fraction of queries with at least one relevant item in the top K.",
        *(["", uncertainty_note(rows) + "."] if uncertainty_note(rows) else []),
        "",
        _row_line(["backbone", *headers]),
        "|---" * (len(headers) + 1) + "|",
    ]
    for backbone in backbones:
        cells = []
        for column, metric in metric_of.items():
            row = lookup.get((backbone, column))
            text = MISSING if row is None else value_text(row)
            cells.append(text if row is None or metric or row["status"] != "ok" else f"{text} ({row['metric']})")
        lines.append(_row_line([backbone, *cells]))
    notes = chance_notes(rows)
    if notes:
        lines += ["", "Chance levels (the most common class's share; a random ranking's R@K): " + "; ".join(notes)]
    shown = [r for r in rows if r["status"] != "skipped"]  # skipped rows: in the matrix above, with the reason
    lines += [
        "",
        "| backbone | family | modality | params | GFLOPs/sample | task | data | mode or protocol | metric | value | "
        "vs best (paired bootstrap) | "
        "chance | train s | train samples/s | inference samples/s | peak RSS MB | license |",
        "|---" * 17 + "|",
    ]
    for r in shown:
        fields = [
            r["backbone"],
            r.get("family"),
            r.get("modality"),
            number_text(r.get("params")),
            number_text(r.get("gflops_per_sample")),
            r["task"],
            r["data"],
            r.get("protocol") or r["mode"],
            r.get("metric", MISSING),
            value_text(r),
            significance_text(r),
            metric_text(r.get("chance")),
            number_text(r.get("train_seconds")),
            number_text(r.get("train_samples_per_s")),
            number_text(r.get("inference_samples_per_s")),
            number_text(r.get("peak_rss_mb")),
            r.get("license") or MISSING,
        ]
        lines.append(_row_line(fields))
    provenances = [r["provenance"] for r in rows if r.get("provenance") and r["status"] == "ok"]
    if provenances:
        p = provenances[0]
        versions = ", ".join(f"{k} {v}" for k, v in p["versions"].items())
        lines += [
            "",
            escape_markdown(
                f"Provenance (each row's full record is in table.json): {versions}; {p['device']}, {p['precision']}."
            ),
        ]
    return "\n".join(lines) + "\n"


def csv_text(table: dict[str, Any]) -> str:
    columns = [
        "backbone",
        "family",
        "modality",
        "params",
        "gflops_per_sample",
        "task",
        "data",
        "mode",
        "metric",
        "mean",
        "std",
        "interval_low",
        "interval_high",
        "interval_method",
        "best",
        "not_significant",
        "difference_from_best",
        "p_value_vs_best",
        "chance",
        "below_chance",
        "seeds",
        "train_seconds",
        "train_samples_per_s",
        "inference_samples_per_s",
        "peak_rss_mb",
        "license",
        "status",
        "error",
        "versions",
        "device",
        "precision",
        "data_fingerprint",
        "recipe_hash",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    for row in table["rows"]:
        prov = row.get("provenance") or {}
        writer.writerow(
            {
                **row,
                "seeds": " ".join(map(str, row["seeds"])),
                "std": row.get("std") if shows_std(row) else "",
                "interval_low": (row.get("interval") or {}).get("low"),
                "interval_high": (row.get("interval") or {}).get("high"),
                "interval_method": (row.get("interval") or {}).get("method"),
                "best": bool(row.get("best")),
                "not_significant": bool(row.get("not_significant")),
                "difference_from_best": (row.get("significance") or {}).get("difference"),
                "p_value_vs_best": (row.get("significance") or {}).get("p_value"),
                "versions": json.dumps(prov.get("versions")) if prov else "",
                "device": prov.get("device"),
                "precision": prov.get("precision"),
                "data_fingerprint": prov.get("data_fingerprint"),
                "recipe_hash": " ".join(prov.get("recipe_hash", [])),
            }
        )
    return buffer.getvalue()
