"""Model cards: the ``README.md`` beside every run's model and in every export.

The card is the Hugging Face Hub's format (YAML front matter with ``model-index`` results, then
prose), written offline from ``results.json``: base model and its weights' license, task, data set,
metric values, library versions. Pushing it anywhere stays the user's choice.
"""

from __future__ import annotations

from typing import Any

import yaml

from zoo.errors import ZooError
from zoo.plugins import get_plugin_set

PIPELINE_TAGS = {
    "text-classification": "text-classification",
    "image-classification": "image-classification",
    "zero-shot-classification": "zero-shot-image-classification",
    "retrieval": "feature-extraction",
    "pretraining": "feature-extraction",
}
LIBRARIES = {"hf": "sentence-transformers", "timm": "timm", "open_clip": "open_clip", "onnx": "onnx"}


def describe(backbone: Any, recipe: dict[str, Any], results: dict[str, Any], run: str | None) -> dict[str, Any]:
    """Where a model came from and what it scored: the facts a card and an export manifest record."""
    provenance = results.get("provenance", {})
    weights = backbone.weights
    if not isinstance(weights, (str, type(None))):
        weights = {"tag": weights.tag, "source": weights.source}
    return {
        "run": run,
        "backbone": backbone.name,
        "base_model": str(recipe.get("model", backbone.name)),
        "base_weights": provenance.get("weights", weights),
        "task": results.get("task") or recipe.get("task"),
        "mode": results.get("mode"),
        "data": results.get("data"),
        "metrics": results.get("metrics", {}),
        "versions": provenance.get("versions"),
    }


def _license(backbone_name: str, weights: Any) -> str | None:
    try:
        spec = get_plugin_set().registry.resolve_backbone(backbone_name)[0]
    except ZooError:
        return None
    tag = weights.get("tag") if isinstance(weights, dict) else None
    chosen = next((w for w in spec.weights if w.tag == tag), None)
    return (chosen.license if chosen else None) or spec.license


def model_card(facts: dict[str, Any], fmt: str | None = None, notes: list[str] | None = None) -> str:
    """The card's text for ``facts`` (from `describe`); ``fmt`` names an export format and ``notes``
    are the format's lines on how to load the folder."""
    task, data = facts.get("task"), facts.get("data")
    front: dict[str, Any] = {
        "library_name": LIBRARIES.get(fmt or "", "zoo"),
        "base_model": facts["base_model"],
        "tags": [t for t in ("zoo", task, fmt) if t],
    }
    license = _license(facts["backbone"], facts.get("base_weights"))
    if license:
        front["license"] = license
    if task in PIPELINE_TAGS:
        front["pipeline_tag"] = PIPELINE_TAGS[task]
    if data:
        front["datasets"] = [str(data)]
    results = [
        {
            "task": {"type": task, "name": str(task).replace("-", " ").capitalize()},
            "dataset": {"name": str(data), "type": str(data), "split": split},
            "metrics": [
                {"type": name, "value": round(float(value), 4), "name": name}
                for name, value in metrics.items()
                if isinstance(value, (int, float))
            ],
        }
        for split, metrics in (facts.get("metrics") or {}).items()
        if isinstance(metrics, dict)
    ]
    if results:
        front["model-index"] = [{"name": facts.get("run_name") or facts["backbone"], "results": results}]
    lines = [f"# {facts['backbone']}" + (f" ({fmt} export)" if fmt else ""), ""]
    origin = f"`{facts['base_model']}`"
    if task and data:
        lines.append(f"{origin} trained by zoo for {task} on {data} ({facts.get('mode') or 'default'} mode).")
    else:
        lines.append(f"{origin} as zoo loads it.")
    if facts.get("run"):
        lines.append(f"The run: `{facts['run']}` (recipe.yaml, results.json and metrics.jsonl are there).")
    for split, metrics in (facts.get("metrics") or {}).items():
        if isinstance(metrics, dict):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            lines.append(f"- {split}: {shown}")
    if notes:
        lines += ["", "## How to load it", "", *notes]
    versions = facts.get("versions") or {}
    if versions:
        lines += ["", "## Made with", "", ", ".join(f"{k} {v}" for k, v in versions.items())]
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n" + "\n".join(lines) + "\n"
