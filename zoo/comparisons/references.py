"""Published results beside zoo's rows, and zoo's rows out to the leaderboards' own tools.

A compare spec's ``references:`` names result files published elsewhere, each a row marked
"published, not rerun" with its source, protocol and version:

- an MTEB ``TaskResult`` JSON (one task, one model: the file the MTEB results repository holds), made
  under one of MTEB's protocols (``mteb-classification``, ``mteb-sts``, the MIEB ones);
- timm's results CSV (``results-imagenet.csv``: one row per model, top-1 and top-5 in percent), made
  by scoring each model's own ImageNet classifier: zoo's ``pretrained-head`` mode.

A reference stands only in the column of the procedure it was measured under: the spec names that
procedure, and one a file cannot carry (an MTEB file in a linear-probe column) is refused in one line.
`write_mteb_results` writes zoo's own protocol cells as MTEB ``TaskResult`` files, so MTEB's tooling reads them.
"""

from __future__ import annotations

import csv
import json
from functools import partial
from pathlib import Path
from typing import Any

from zoo.files import atomic_write
from zoo.recipes import RecipeError

REFERENCE_KEYS = {"file", "model", "data", "protocol", "source", "version", "split"}
# MTEB's metric names -> zoo's (MTEB 1.x and 2.x files); the others (accuracy, cosine_spearman, ...) are shared
MTEB_NAMES = {"f1": "macro_f1", "f1_weighted": "weighted_f1", "precision": "macro_precision", "recall": "macro_recall"}
ZOO_TO_MTEB = {zoo: mteb for mteb, zoo in MTEB_NAMES.items()}


def file_kind(path: Path) -> str:
    """ "mteb" for a TaskResult JSON, "timm" for a results CSV, by the file's suffix."""
    if path.suffix == ".json":
        return "mteb"
    if path.suffix == ".csv":
        return "timm"
    raise RecipeError(f"{path}: a reference is an MTEB TaskResult (.json) or timm's results CSV (.csv)")


def procedures(kind: str) -> dict[str, tuple[str, str]]:
    """The procedures a file kind's numbers were made under: name -> (task, mode)."""
    from zoo.tasks.protocols import PROTOCOLS

    if kind == "timm":
        return {"pretrained-head": ("image-classification", "pretrained-head")}
    return {p.name: (p.task, p.mode) for p in PROTOCOLS.values() if p.source.startswith(("MTEB", "MIEB"))}


def reference_rows(entries: list[Any], base: Path) -> list[dict[str, Any]]:
    """One table row per reference entry (paths relative to ``base``, the spec's folder), checked."""
    rows = []
    for index, entry in enumerate(entries or []):
        where = f"references[{index}]"
        if not isinstance(entry, dict) or not {"file", "data", "protocol", "source"} <= set(entry):
            raise RecipeError(f"{where}: a reference needs file, data, protocol and source (model for a CSV)")
        unknown = sorted(set(entry) - REFERENCE_KEYS)
        if unknown:
            raise RecipeError(
                f"{where}: unknown key(s) {', '.join(unknown)}; a reference has {', '.join(sorted(REFERENCE_KEYS))}"
            )
        path = (base / entry["file"]).resolve()
        if not path.is_file():
            raise RecipeError(f"{where}: reference file {path} not found")
        kind = file_kind(path)
        allowed = procedures(kind)
        if entry["protocol"] not in allowed:
            raise RecipeError(
                f"{where}: {path.name} holds numbers made under {' or '.join(allowed)}; it cannot stand in a "
                f"{entry['protocol']!r} column (numbers of two procedures are not comparable)"
            )
        task, mode = allowed[entry["protocol"]]
        split = entry.get("split", "test")
        model, metrics, version = (read_mteb if kind == "mteb" else read_timm)(path, entry, split, where)
        headline = primary_of(entry["protocol"])
        if headline not in metrics:
            raise RecipeError(f"{where}: {path.name} has no {headline} for {model}")
        rows.append(
            {
                "backbone": f"{model} (published)",
                "family": "published",
                "task": task,
                "data": entry["data"],
                "mode": mode,
                "protocol": entry["protocol"] if kind == "mteb" else None,
                "status": "published",
                "seeds": [],
                "metric": f"{split} {headline}",
                "mean": metrics[headline],
                "std": None,
                "metrics": metrics,
                "provenance": {
                    "source": entry["source"],
                    "file": str(path),
                    "procedure": entry["protocol"],
                    "version": entry.get("version") or version,
                },
            }
        )
    return rows


def primary_of(procedure: str) -> str:
    from zoo.tasks.protocols import PROTOCOLS

    return PROTOCOLS[procedure].primary_metric if procedure in PROTOCOLS else "accuracy"


def read_mteb(path: Path, entry: dict[str, Any], split: str, where: str) -> tuple[str, dict[str, float], str]:
    """Model, metrics (zoo's names) and MTEB version of a TaskResult file (the model from its folder:
    ``results/ORG__NAME/REVISION/TASK.json``, unless the entry names it)."""
    try:
        document = json.loads(path.read_text())
        scores = document["scores"][split]
    except (ValueError, KeyError, TypeError):
        raise RecipeError(f"{where}: {path} is not an MTEB TaskResult with a {split!r} split") from None
    subset = next((s for s in scores if s.get("hf_subset") == "default"), scores[0])
    metrics = {
        MTEB_NAMES.get(key, key): float(value)
        for key, value in subset.items()
        if isinstance(value, (int, float)) and key != "main_score"
    }
    model = entry.get("model") or path.parent.parent.name.replace("__", "/")
    return model, metrics, f"mteb {document.get('mteb_version')}, task {document.get('task_name')}"


def read_timm(path: Path, entry: dict[str, Any], split: str, where: str) -> tuple[str, dict[str, float], str]:
    """Model and metrics (top-1/top-5 as fractions) of one row of timm's results CSV."""
    if "model" not in entry:
        raise RecipeError(f"{where}: name the model row of {path.name} (model: tf_efficientnet_lite0.in1k)")
    with path.open(newline="") as handle:
        rows = {row.get("model"): row for row in csv.DictReader(handle)}
    row = rows.get(entry["model"])
    if row is None:
        close = [name for name in rows if name and name.split(".")[0] == entry["model"].split(".")[0]]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"{where}: {path.name} has no model {entry['model']!r}{hint}")
    try:
        metrics = {"accuracy": float(row["top1"]) / 100, "top5_accuracy": float(row["top5"]) / 100}
    except (KeyError, TypeError, ValueError):
        raise RecipeError(f"{where}: {path.name} is not timm's results CSV (columns model, top1, top5, ...)") from None
    return entry["model"], metrics, f"timm results CSV, image size {row.get('img_size')}, crop {row.get('crop_pct')}"


def write_mteb_results(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Each finished row scored under an MTEB protocol, as an MTEB ``TaskResult`` file:
    ``out/mteb/MODEL/REVISION/DATA.json`` (MTEB's results layout; the revision is the weights' tag),
    with the per-experiment scores of its first seed's run."""
    from zoo.tasks.protocols import PROTOCOLS

    written = []
    for row in rows:
        protocol = PROTOCOLS.get(row.get("protocol") or "")
        if row.get("status") != "ok" or protocol is None or not protocol.source.startswith(("MTEB", "MIEB")):
            continue
        results = json.loads((out / row["runs"][0] / "results.json").read_text())
        split = results["test_split"]
        scores = {ZOO_TO_MTEB.get(k, k): v for k, v in results["metrics"][split].items()}
        entry = {**scores, "hf_subset": "default", "languages": ["eng-Latn"]}
        entry["main_score"] = results["metrics"][split][protocol.primary_metric]
        experiments = results["protocol"].get("scores_per_experiment")
        if experiments:
            entry["scores_per_experiment"] = [{ZOO_TO_MTEB.get(k, k): v for k, v in e.items()} for e in experiments]
        weights = results["provenance"].get("weights")
        revision = (weights.get("tag") if isinstance(weights, dict) else weights) or "no_revision_available"
        document = {
            "dataset_revision": results["data_fingerprint"],
            "task_name": results["data"],
            "mteb_version": None,  # made by zoo under MTEB's protocol, not by the mteb package
            "scores": {split: [entry]},
            "evaluation_time": results.get("wall_seconds"),
            "kg_co2_emissions": None,
            "zoo": {"protocol": results["protocol"]["name"], "source": protocol.source, "run": row["runs"][0]},
        }
        path = out / "mteb" / row["backbone"].replace("/", "__") / str(revision) / f"{results['data']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(document, indent=2) + "\n").encode()
        atomic_write(path, partial(_write, data))
        written.append(path)
    return written


def _write(data: bytes, handle: Any) -> None:
    handle.write(data)
