"""Writing a comparison: the table files, ``report.html`` (the comparison as one self-contained page), merging.

No network: the CSS, the script and the plots (PNG, base64) are inline. Both tables sort by
any column (click its header; again to reverse); clicking a row of the detail table shows its
provenance as a list of its fields, and each row links to its cells' run folders by readable names
(backbone, cell and seed; the folders themselves are named by hash). Every string from the table is
escaped (a backbone or class name holding ``<script>`` is shown, never run).
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from zoo.comparisons.plots import plots
from zoo.comparisons.significance import add_uncertainty
from zoo.comparisons.table import (
    MISSING,
    SCHEMA,
    average_note,
    chance_notes,
    column_of,
    csv_text,
    markdown,
    metric_columns,
    metric_text,
    number_text,
    run_label,
    shows_std,
    significance_text,
    uncertainty_note,
    value_text,
)
from zoo.errors import InputError, ZooError
from zoo.files import atomic_write
from zoo.validation import TABLE_SCHEMA, read_json_file

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #1d2430; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
.meta, .notes { color: #5b6575; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: .35em .6em; border-bottom: 1px solid #e3e7ee; text-align: left; vertical-align: top; }
th { background: #f3f5f9; cursor: pointer; user-select: none; position: sticky; top: 0; }
th:hover { background: #e6ebf3; } th[aria-sort=ascending]::after { content: " ▲"; }
th[aria-sort=descending]::after { content: " ▼"; }
td.num { text-align: right; white-space: nowrap; } td.below { color: #b3261e; font-weight: 600; }
.wide { overflow-x: auto; }
td.skipped, td.failed, td.missing { color: #8a93a3; } td.skipped, td.failed { min-width: 18em; }
tbody.item > tr.summary { cursor: pointer; } tbody.item > tr.summary:hover { background: #f7f9fc; }
tr.provenance td { background: #f7f9fc; }
dl.record { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1.2em; margin: .3em 0; font-size: 13px; }
dl.record dt { color: #5b6575; } dl.record dd { margin: 0; overflow-wrap: anywhere; }
dl.record dl.record { margin: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; flex: 1 1 45%; } .plots img { max-width: 100%; border: 1px solid #e3e7ee; }
.plots figcaption { color: #5b6575; font-size: 12px; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var items = Array.prototype.slice.call(table.querySelectorAll("tbody.item"));
      function key(item) {
        var cell = item.rows[0].cells[column];
        var raw = cell ? cell.getAttribute("data-value") : null;
        var number = raw === null || raw === "" ? NaN : Number(raw);
        return isNaN(number) ? (cell ? cell.textContent.trim().toLowerCase() : "") : number;
      }
      items.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }  // numbers before text
        var order = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? order : -order;
      });
      items.forEach(function (item) { table.appendChild(item); });
    });
  });
});
document.querySelectorAll("tbody.item > tr.summary").forEach(function (row) {
  row.addEventListener("click", function (event) {
    if (event.target.tagName === "A") { return; }
    var details = row.parentNode.querySelector("tr.provenance");
    if (details) { details.hidden = !details.hidden; }
  });
});
"""

CAPTIONS = {
    "metric_vs_params.png": "Headline metric against parameters; dashed lines: each cell's chance level",
    "metric_vs_throughput.png": "Headline metric against inference samples/s; dashed lines: each cell's chance level",
    "per_task.png": "Headline metric per backbone, one panel per cell; dashed line: chance",
}

DETAIL_COLUMNS = (  # header, row key, numeric
    ("backbone", "backbone", False),
    ("family", "family", False),
    ("modality", "modality", False),
    ("params", "params", True),
    ("GFLOPs/sample", "gflops_per_sample", True),
    ("task", "task", False),
    ("data", "data", False),
    ("mode", "mode", False),
    ("metric", "metric", False),
    ("value", "mean", True),
    ("± std (2+ seeds)", "std", True),
    ("vs best (paired bootstrap)", "significance", False),
    ("chance", "chance", True),
    ("train s", "train_seconds", True),
    ("train samples/s", "train_samples_per_s", True),
    ("inference samples/s", "inference_samples_per_s", True),
    ("peak RSS MB", "peak_rss_mb", True),
    ("license", "license", False),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _td(text: Any, value: Any = None, classes: str = "") -> str:
    attributes = f' data-value="{_e(value)}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    attributes += f' class="{classes}"' if classes else ""
    return f"<td{attributes}>{_e(text)}</td>"


def _value(row: dict[str, Any]) -> tuple[str, float | None, str]:
    """A row's headline as shown (failed and skipped with the reason), its number for sorting, its CSS class."""
    if row["status"] == "published":
        return value_text(row), row["mean"], "num published"
    if row["status"] != "ok":
        return value_text(row), None, row["status"]
    return value_text(row), row["mean"], "num below" if row.get("below_chance") else "num"


def _definitions(record: dict[str, Any]) -> str:
    """A mapping as a definition list, nested mappings as nested lists; every key and value escaped."""
    items = []
    for key, value in record.items():
        if isinstance(value, dict):
            shown = _definitions(value) if value else _e(MISSING)
        elif isinstance(value, list):
            shown = _e(", ".join(map(str, value)) or MISSING)
        elif isinstance(value, float):
            shown = _e(metric_text(value) if abs(value) <= 1 else number_text(value))
        else:
            shown = _e(MISSING if value is None else value)
        items.append(f"<dt>{_e(key)}</dt><dd>{shown}</dd>")
    return f'<dl class="record">{"".join(items)}</dl>'


def _matrix(rows: list[dict[str, Any]]) -> str:
    metric_of = metric_columns(rows)
    lookup = {(row["backbone"], column_of(row)): row for row in rows}
    head = "".join(
        f"<th>{_e(column)}{'<br><small>' + _e(metric) + '</small>' if metric else ''}</th>"
        for column, metric in metric_of.items()
    )
    body = []
    for backbone in dict.fromkeys(row["backbone"] for row in rows):
        cells = [_td(backbone)]
        for column, metric in metric_of.items():
            row = lookup.get((backbone, column))
            if row is None:
                cells.append(_td(MISSING, classes="missing"))
                continue
            text, number, classes = _value(row)
            if row["status"] == "ok" and not metric:
                text += f" ({row['metric']})"
            cells.append(_td(text, number, classes))
        body.append(f'<tbody class="item"><tr class="summary">{"".join(cells)}</tr></tbody>')
    return f'<table id="matrix" class="sortable"><thead><tr><th>backbone</th>{head}</tr></thead>{"".join(body)}</table>'


def _detail(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{_e(header)}</th>" for header, _, _ in DETAIL_COLUMNS) + "<th>runs</th>"
    body = []
    for row in rows:
        if row["status"] == "skipped" and "needs a" in (row.get("error") or ""):
            continue  # a backbone of another modality: shown as skipped in the matrix
        cells = []
        for _, key, numeric in DETAIL_COLUMNS:
            if key == "mean":
                text, number, classes = _value(row)
                cells.append(_td(text, number, classes))
            elif key == "std":
                std = row.get(key) if shows_std(row) else None
                cells.append(_td(metric_text(std) if std is not None else MISSING, std, "num"))
            elif key == "significance":
                found = row.get(key) or {}
                cells.append(_td(significance_text(row), found.get("p_value"), "num" if "p_value" in found else ""))
            elif key == "chance":
                cells.append(_td(metric_text(row.get(key)), row.get(key), "num"))
            elif numeric:
                cells.append(_td(number_text(row.get(key)), row.get(key), "num"))
            else:
                cells.append(_td(row.get(key) or MISSING))
        runs = row.get("runs", [])
        names = row.get("run_names") or [f"{run_label(row)}, seed {seed}" for seed in row.get("seeds", [])]
        links = "<br>".join(
            f'<a href="{_e(run)}" title="{_e(run)}">{_e(name)}</a>' for run, name in zip(runs, names, strict=False)
        )
        cells.append(f"<td>{links or MISSING}</td>")
        record = {key: row.get(key) for key in ("error", "metrics", "provenance") if row.get(key) is not None}
        details = (
            f'<tr class="provenance" hidden><td colspan="{len(DETAIL_COLUMNS) + 1}">{_definitions(record)}</td></tr>'
        )
        body.append(f'<tbody class="item"><tr class="summary">{"".join(cells)}</tr>{details}</tbody>')
    return (
        f'<div class="wide"><table id="detail" class="sortable"><thead><tr>{head}</tr></thead>'
        f"{''.join(body)}</table></div>"
    )


def render(table: dict[str, Any], plots: list[Path]) -> str:
    """The page for ``table``, with the PNG ``plots`` inlined."""
    rows = table["rows"]
    measured = [r["provenance"] for r in rows if r.get("provenance") and r["status"] == "ok"]
    provenance: dict[str, Any] = measured[0] if measured else {}
    versions = ", ".join(f"{name} {version}" for name, version in provenance.get("versions", {}).items() if version)
    meta = f"{len(rows)} rows · written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC" + (
        f" · {versions} · {provenance.get('device')}, {provenance.get('precision')}" if provenance else ""
    )
    notes = chance_notes(rows)
    images = "".join(
        f'<figure><img alt="{_e(CAPTIONS.get(path.name, path.stem))}" '
        f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'
        f"<figcaption>{_e(CAPTIONS.get(path.name, path.stem))}</figcaption></figure>"
        for path in plots
        if path.is_file()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(table["name"])} · zoo compare</title><style>{STYLE}</style></head>
<body>
<h1>{_e(table["name"])}</h1>
<p class="meta">{_e(meta)}</p>
<h2>Headline metric per backbone and cell</h2>
<p class="notes">{_e(average_note(rows)).capitalize()}; ⚠ marks a result below chance; failed and
skipped cells say why; click a header to sort.
R@K = fraction of queries with at least one relevant item in the top K.</p>
{'<p class="notes">' + _e(uncertainty_note(rows)).capitalize() + ".</p>" if uncertainty_note(rows) else ""}
{_matrix(rows)}
{'<p class="notes">Chance levels: ' + _e("; ".join(notes)) + "</p>" if notes else ""}
<h2>Every cell</h2>
<p class="notes">Click a row for its provenance and all its metrics; the links (backbone, cell, seed) open each
seed's run folder.</p>
{_detail(rows)}
<h2>Plots</h2>
<div class="plots">{images}</div>
<script>{SCRIPT}</script>
</body></html>
"""


def _write_text(text: str, handle: BinaryIO) -> None:
    handle.write(text.encode())


def write_outputs(table: dict[str, Any], out: Path) -> list[Path]:
    """table.json, table.md, table.csv, the PNG plots and report.html in ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "table.json": json.dumps(table, indent=2, default=str),
        "table.md": markdown(table),
        "table.csv": csv_text(table),
    }
    for name, text in files.items():
        atomic_write(out / name, functools.partial(_write_text, text))
    images = plots(table, out)
    page = render(table, images)
    atomic_write(out / "report.html", lambda handle: handle.write(page.encode()))
    return [out / name for name in files] + images + [out / "report.html"]


def merge(directories: list[str | Path], out: str | Path, name: str | None = None) -> dict[str, Any]:
    """One table from the tables of several result directories (other machines, other sessions), named
    ``name`` (default: their spec's name when they share one, else theirs joined by " + ")."""
    rows: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for directory in directories:
        path = Path(directory) / "table.json"
        if not path.is_file():
            raise InputError(f"{directory} has no table.json: is it a zoo compare results directory?")
        table = read_json_file(path, TABLE_SCHEMA, "a comparison's table.json")
        if table["schema"] != SCHEMA:
            raise ZooError(
                f"{path}: table schema {table.get('schema')!r} cannot be merged with schema {SCHEMA}; "
                "re-run that compare with this zoo"
            )
        names.append(table["name"])
        for row in table["rows"]:
            # run folders are relative to the table that names them: make them relative to the merged one
            row["runs"] = [os.path.relpath(Path(directory) / run, out) for run in row.get("runs", [])]
            key = json.dumps([row["backbone"], row["task"], row["data"], row["mode"]])
            kept = rows.get(key)
            if kept is None or (row["status"] == "ok" and len(row["seeds"]) >= len(kept.get("seeds", []))):
                rows[key] = row
    merged = {"schema": SCHEMA, "name": name or " + ".join(dict.fromkeys(names)), "rows": list(rows.values())}
    add_uncertainty(merged, Path(out))  # the best row of a column may now come from another table
    write_outputs(merged, Path(out))
    return merged
