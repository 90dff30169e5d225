"""The comparison table: aggregation over seeds, chance levels, Markdown, CSV and plots."""

from __future__ import annotations

import csv
import functools
import io
import json
import statistics
from pathlib import Path
from typing import Any

from zoo.comparisons.plan import row_of
from zoo.files import atomic_write

SCHEMA = 1
MISSING = "—"
TASK_INPUT = {
    "text-classification": "text",
    "image-classification": "image",
    "zero-shot-classification": "image",
    "retrieval": "text",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def primary(recipe: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, float]:
    """The headline number of a cell: its test split's (else eval split's) primary metric."""
    from zoo.tasks import get_task

    split = recipe.get("test_split") or recipe.get("eval_split", "validation")
    values = metrics.get(split) or next(iter(metrics.values()))
    task = get_task(recipe["task"])[1]
    numbers = [k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    preferred = [k for k in ("text->image R@1", "text->text R@1", task.primary_metric) if k in numbers]
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
            "mode": recipe.get("mode", "finetune"),
            "seeds": sorted(m["recipe"]["seed"] for m in done),
            "license": info.get("license"),
            "status": "ok" if done else members[0]["status"],
            "error": None if done else members[0].get("error"),
        }
        if done:
            metric, _ = primary(recipe, done[0]["metrics"])
            values = [primary(recipe, m["metrics"])[1] for m in done]
            row["metric"], (row["mean"], row["std"]) = metric, _mean_std(values)
            split, name = metric.split(" ", 1)
            chances = [m.get("chance", {}).get(split, {}).get(name) for m in done]
            if all(isinstance(c, (int, float)) for c in chances):
                row["chance"] = round(statistics.fmean(chances), 6)
                row["below_chance"] = row["mean"] < row["chance"]
            row["runs"] = [f"cells/{m['key']}/run" for m in done]
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


def _cell(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row['error']}" if row["status"] == "skipped" else f"failed ({row['error']})"
    value = f"{row['mean']:.4f} ± {row['std']:.4f}" if len(row["seeds"]) > 1 else f"{row['mean']:.4f}"
    return value + (" ⚠ below chance" if row.get("below_chance") else "")


def column_of(row: dict[str, Any]) -> str:
    """The matrix column a row belongs to: task, data set and mode."""
    return f"{row['task']} / {row['data']} / {row['mode']}"


def metric_columns(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each column and the one metric its finished rows report (None when they report different ones)."""
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(column_of(row), set()).update([row["metric"]] if row["status"] == "ok" else [])
    return {column: (next(iter(metrics)) if len(metrics) == 1 else None) for column, metrics in found.items()}


def chance_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (column, metric) with a chance level: what a model must beat."""
    notes: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.get("chance") is not None:
            notes.setdefault((column_of(row), row["metric"]), row["chance"])
    return [f"{column}, {metric}: chance {value:.4g}" for (column, metric), value in notes.items()]


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
        "Headline metric per cell (mean ± std over seeds), named in "
        f"its column (or beside the value where a column's rows differ); {MISSING} = not run; ⚠ = below chance. "
        "R@K = fraction of queries with at least one relevant item in the top K.",
        "",
        _row_line(["backbone", *headers]),
        "|---" * (len(headers) + 1) + "|",
    ]
    for backbone in backbones:
        cells = []
        for column, metric in metric_of.items():
            row = lookup.get((backbone, column))
            text = MISSING if row is None else ("skipped" if row["status"] == "skipped" else _cell(row))
            cells.append(text if row is None or metric or row["status"] != "ok" else f"{text} ({row['metric']})")
        lines.append(_row_line([backbone, *cells]))
    notes = chance_notes(rows)
    if notes:
        lines += ["", "Chance levels (the most common class's share; a random ranking's R@K): " + "; ".join(notes)]
    lines += [
        "",
        "| backbone | family | modality | params | GFLOPs/sample | task | data | mode | metric | value | "
        "chance | train s | train samples/s | inference samples/s | peak RSS MB | license |",
        "|---" * 16 + "|",
    ]
    for r in rows:
        if r["status"] == "skipped":  # shown in the matrix above; the reason is in table.json
            continue
        value = _cell(r)
        params = _count(r.get("params"))
        fields = [
            r["backbone"],
            r.get("family"),
            r.get("modality"),
            params,
            _fmt(r.get("gflops_per_sample")),
            r["task"],
            r["data"],
            r["mode"],
            r.get("metric", MISSING),
            value,
            _fmt(r.get("chance")),
            _fmt(r.get("train_seconds")),
            _fmt(r.get("train_samples_per_s")),
            _fmt(r.get("inference_samples_per_s")),
            _fmt(r.get("peak_rss_mb")),
            r.get("license") or MISSING,
        ]
        lines.append(_row_line(fields))
    provenances = [r["provenance"] for r in rows if r.get("provenance")]
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


def _count(value: int | None) -> str:
    if not value:
        return MISSING
    return f"{value / 1e6:.1f}M" if value >= 1e5 else f"{value / 1e3:.1f}K"


def _fmt(value: Any) -> str:
    if value is None:
        return MISSING
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
                "versions": json.dumps(prov.get("versions")) if prov else "",
                "device": prov.get("device"),
                "precision": prov.get("precision"),
                "data_fingerprint": prov.get("data_fingerprint"),
                "recipe_hash": " ".join(prov.get("recipe_hash", [])),
            }
        )
    return buffer.getvalue()


def plots(table: dict[str, Any], out: Path) -> list[Path]:
    """metric vs parameters, metric vs inference throughput, and bars per task; PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table["rows"] if r["status"] == "ok"]
    written = []
    for x_key, label, file in (
        ("params", "parameters", "metric_vs_params.png"),
        ("inference_samples_per_s", "inference samples/s", "metric_vs_throughput.png"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for column in dict.fromkeys(column_of(r) for r in rows):
            points = [r for r in rows if column_of(r) == column and r.get(x_key)]
            axes.scatter([r[x_key] for r in points], [r["mean"] for r in points], label=column)
            for r in points:
                axes.annotate(r["backbone"].split("/")[-1], (r[x_key], r["mean"]), fontsize=7)
        if any(r.get(x_key) for r in rows):
            axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("headline metric")
        axes.legend(fontsize=7)
        figure.tight_layout()
        atomic_write(out / file, functools.partial(figure.savefig, dpi=120, format="png"))
        plt.close(figure)
        written.append(out / file)
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    figure, grid = plt.subplots(len(columns) or 1, 1, figsize=(7, 2.2 * max(1, len(columns))), squeeze=False)
    for axis, column in zip(grid[:, 0], columns, strict=False):
        points = [r for r in rows if column_of(r) == column]
        uniform = len({r["metric"] for r in points}) == 1
        labels = [r["backbone"] if uniform else f"{r['backbone']}\n{r['metric']}" for r in points]
        axis.barh(labels, [r["mean"] for r in points], xerr=[r["std"] for r in points])
        axis.set_title(f"{column}: {points[0]['metric']}" if uniform else column, fontsize=9)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    atomic_write(out / "per_task.png", lambda handle: figure.savefig(handle, dpi=120, format="png"))
    plt.close(figure)
    return [*written, out / "per_task.png"]
