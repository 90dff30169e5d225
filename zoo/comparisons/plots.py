"""The comparison's plots: headline metric against parameters and against inference throughput, and
bars per cell, each with the chance level drawn as a dashed line (legend entry "chance ...") and each
point or bar with its error bar: the row's 95% bootstrap interval, else ± its std over seeds.

`figures` builds them (tests read their lines); `plots` writes them as PNG. Matplotlib's own
warnings (an empty legend, a log axis without positive values) never reach the terminal: the
figures are built so they do not arise, and any other is silenced while plotting.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

from zoo.comparisons.table import column_of, interval_of, metric_text
from zoo.files import atomic_write

SCATTERS = (  # row key, axis label, file
    ("params", "parameters (log scale)", "metric_vs_params.png"),
    ("inference_samples_per_s", "inference samples/s (log scale)", "metric_vs_throughput.png"),
)
CHANCE_STYLE: dict[str, Any] = {"linestyle": "--", "linewidth": 1.2, "alpha": 0.8}


def _chances(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each column's chance level (its rows share one: same data, same metric)."""
    found: dict[str, float] = {}
    for row in rows:
        if isinstance(row.get("chance"), (int, float)):
            found.setdefault(column_of(row), row["chance"])
    return found


def error_bars(points: list[dict[str, Any]]) -> list[list[float]] | None:
    """Matplotlib's asymmetric errors ([below...], [above...]) of ``points``' headlines: each row's
    bootstrap interval, else its std over two or more seeds, else none; None when no row has one."""
    below, above = [], []
    for row in points:
        interval = interval_of(row)
        if interval:
            below.append(max(0.0, row["mean"] - interval[0]))
            above.append(max(0.0, interval[1] - row["mean"]))
        else:
            spread = row["std"] if len(row.get("seeds") or []) > 1 and row.get("std") else 0.0
            below.append(spread)
            above.append(spread)
    return [below, above] if any(below) or any(above) else None


def _scatter(rows: list[dict[str, Any]], x_key: str, label: str) -> Any:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    figure, axes = plt.subplots(figsize=(8, 5))
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    chances = _chances(rows)
    for index, column in enumerate(columns):
        colour = colours[index % len(colours)]
        points = [r for r in rows if column_of(r) == column and isinstance(r.get(x_key), (int, float)) and r[x_key] > 0]
        if points:
            axes.scatter([r[x_key] for r in points], [r["mean"] for r in points], label=column, color=colour)
            errors = error_bars(points)
            if errors:
                xs, ys = [r[x_key] for r in points], [r["mean"] for r in points]
                axes.errorbar(xs, ys, yerr=errors, fmt="none", ecolor=colour, elinewidth=1, capsize=3)
            for r in points:
                axes.annotate(
                    r["backbone"].split("/")[-1],
                    (r[x_key], r["mean"]),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
        if column in chances:
            axes.axhline(
                chances[column],
                color=colour,
                label=f"chance ({column}): {metric_text(chances[column])}",
                **CHANCE_STYLE,
            )
    if any(isinstance(r.get(x_key), (int, float)) and r[x_key] > 0 for r in rows):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(EngFormatter(sep=""))  # 4M, 120k: no 10^6 and no overlapping exponents
    else:
        axes.text(0.5, 0.5, f"no {label.split(' (')[0]} measured", ha="center", transform=axes.transAxes)
    values = [r["mean"] for r in rows] + list(chances.values())
    if values and min(values) >= 0:  # a metric in [0, 1] on its whole range: distances read true
        axes.set_ylim(0, 1.02 if max(values) <= 1 else max(values) * 1.05)
    axes.set_xlabel(label)
    axes.set_ylabel("headline metric (each cell's own; see the table)")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def _bars(rows: list[dict[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    columns = list(dict.fromkeys(column_of(r) for r in rows))
    height = sum(0.9 + 0.3 * sum(column_of(r) == c for r in rows) for c in columns)
    figure, grid = plt.subplots(len(columns) or 1, 1, figsize=(8, max(2.5, height)), squeeze=False)
    chances = _chances(rows)
    if not columns:
        grid[0, 0].text(0.5, 0.5, "no finished cells", ha="center", transform=grid[0, 0].transAxes)
    for axis, column in zip(grid[:, 0], columns, strict=False):
        points = [r for r in rows if column_of(r) == column]
        uniform = len({r["metric"] for r in points}) == 1
        labels = [r["backbone"] if uniform else f"{r['backbone']}\n{r['metric']}" for r in points]
        errors = error_bars(points)
        axis.barh(labels, [r["mean"] for r in points], xerr=errors, color="#4c78a8", capsize=3)
        if column in chances:
            axis.axvline(
                chances[column], color="#b3261e", label=f"chance {metric_text(chances[column])}", **CHANCE_STYLE
            )
            axis.legend(fontsize=7, loc="lower right")
        axis.set_title(column, fontsize=9)
        axis.set_xlabel(points[0]["metric"] if uniform else "headline metric", fontsize=8)
        above = errors[1] if errors else [0.0] * len(points)
        top = max([r["mean"] + e for r, e in zip(points, above, strict=True)] + [chances.get(column, 0.0), 1.0])
        axis.set_xlim(0, top * 1.02)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def figures(table: dict[str, Any]) -> dict[str, Any]:
    """The plots of ``table``'s finished rows as matplotlib figures, by file name (close them when done)."""
    import matplotlib

    matplotlib.use("Agg")
    rows = [r for r in table["rows"] if r["status"] == "ok"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib's advice is for plot authors, not for zoo's users
        made = {file: _scatter(rows, key, label) for key, label, file in SCATTERS}
        made["per_task.png"] = _bars(rows)
    return made


def plots(table: dict[str, Any], out: Path) -> list[Path]:
    """metric vs parameters, metric vs inference throughput, and bars per cell; PNG files in ``out``."""
    import matplotlib.pyplot as plt

    written = []
    for file, figure in figures(table).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atomic_write(out / file, functools.partial(figure.savefig, dpi=120, format="png"))
        plt.close(figure)
        written.append(out / file)
    return written
