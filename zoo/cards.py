"""Model cards: the ``README.md`` beside every run's model and in every export.

The card is the Hugging Face Hub's format (YAML front matter with ``model-index`` results, then
prose), written offline from ``results.json``: base model and its weights' license, task, data set,
metric values, library versions. Pushing it anywhere stays the user's choice.

Its metadata says only what the Hub can act on truthfully: ``base_model`` is the Hub id of the base
weights (`zoo.Weights.hub_id`, or the id of weights loaded from the Hub), left out where there is
none (a registry name is not a Hub id); ``library_name`` is a library the Hub knows (an export's
format says which; a run's own folder is zoo's, which the Hub does not know, so it has none);
``pipeline_tag`` is the pipeline that, loading the folder the ordinary way, computes what zoo does.
An export whose head the library's pipeline would not load (it would put a random head on the
backbone) declares the embedding's pipeline or none, and its prose says how to apply the head.
Each result's split says where its data came from (``dev.tsv (GLUE's dev set)``, not ``test``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ZooError
from zoo.plugins import get_plugin_set

PIPELINE_TAGS = {
    "text-classification": "text-classification",
    "image-classification": "image-classification",
    "zero-shot-classification": "zero-shot-image-classification",
    "retrieval": "feature-extraction",
    "semantic-similarity": "sentence-similarity",
    "pretraining": "feature-extraction",
}
# what an export without a head computes, by the backbone's modality: the Hub's embedding pipelines
FEATURE_TAGS = {"text": "feature-extraction", "image": "image-feature-extraction", "multimodal": "feature-extraction"}
# the Hub library per export format (keys of huggingface.js model-libraries.ts; onnx is the Hub's tag for
# ONNX files); a format's write may name another for one export (hf: sentence-transformers)
LIBRARIES = {"hf": "transformers", "timm": "timm", "open_clip": "open_clip", "onnx": "onnx"}
# a license the Hub knows is an id (apache-2.0, mit, bsd-3-clause, cc-by-4.0, ...), not a sentence
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


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
        "modality": backbone.modality,
        "task": results.get("task") or recipe.get("task"),
        "mode": results.get("mode"),
        "data": results.get("data"),
        "split_origins": results.get("split_origins") or {},
        "metrics": results.get("metrics", {}),
        "versions": provenance.get("versions"),
    }


def _registered(backbone_name: str, weights: Any) -> tuple[Any, Any]:
    """The registered spec of ``backbone_name`` and its weights entry that ``weights`` (a recorded
    ``{"tag", "source"}``) names; None for either that is not registered."""
    try:
        spec = get_plugin_set().registry.resolve_backbone(backbone_name)[0]
    except ZooError:
        return None, None
    tag = weights.get("tag") if isinstance(weights, dict) else None
    return spec, next((w for w in spec.weights if w.tag == tag), None)


def _license(backbone_name: str, weights: Any) -> str | None:
    spec, chosen = _registered(backbone_name, weights)
    license = (chosen.license if chosen else None) or (spec.license if spec else None)
    return license if license and _LICENSE_ID.match(license) else None


def hub_model(backbone_name: str, weights: Any) -> str | None:
    """The Hugging Face Hub id of the base weights: weights loaded from the Hub (``hf-hub:ID``) or a
    registered `zoo.Weights` with a ``hub_id``; None for any other (from scratch, a local folder)."""
    source = str(weights.get("source") or "") if isinstance(weights, dict) else ""
    if source.startswith("hf-hub:") and len(source) > len("hf-hub:"):
        return source[len("hf-hub:") :]
    chosen = _registered(backbone_name, weights)[1]
    return chosen.hub_id if chosen is not None else None


def _dataset(data: Any) -> tuple[str, str | None]:
    """The data's name in a card (a file's name, not its path) and its Hub id, where it has one."""
    if not data:
        return "", None
    try:
        spec = get_plugin_set().registry.get("dataset", str(data))
    except (ZooError, KeyError):
        return Path(str(data)).name, None
    return spec.name, spec.hub_id


def _split(split: str, origins: dict[str, Any]) -> str:
    """A split's name that says what its data is: where it came from when the data set says so."""
    origin = origins.get(split)
    return str(origin) if origin and origin != "the data set's own" else split


def model_card(
    facts: dict[str, Any],
    fmt: str | None = None,
    notes: list[str] | None = None,
    head: bool = False,
    card: dict[str, str | None] | None = None,
) -> str:
    """The card's text for ``facts`` (from `describe`). For an export: ``fmt`` names its format,
    ``notes`` are the format's lines on how to load the folder, ``head`` whether it holds a
    classification head, and ``card`` the ``library_name`` / ``pipeline_tag`` the format declares
    for this folder (a key it leaves out takes the default: see the module's docstring)."""
    front = _front_matter(facts, fmt, head, card or {})
    task, data = facts.get("task"), facts.get("data")
    name, _ = _dataset(data)
    lines = [f"# {facts['backbone']}" + (f" ({fmt} export)" if fmt else ""), ""]
    origin = f"`{facts['base_model']}`" + (f" (`{front['base_model']}` on the Hub)" if "base_model" in front else "")
    if task and data:
        lines.append(f"{origin} trained by zoo for {task} on {name} ({facts.get('mode') or 'default'} mode).")
    else:
        lines.append(f"{origin} as zoo loads it.")
    if facts.get("run"):
        lines.append(f"The run: `{facts['run']}` (recipe.yaml, results.json and metrics.jsonl are there).")
    for split, metrics in (facts.get("metrics") or {}).items():
        if isinstance(metrics, dict):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            described = _split(split, facts.get("split_origins") or {})
            lines.append(f"- {split}" + (f" ({described})" if described != split else "") + f": {shown}")
    if notes:
        lines += ["", "## How to load it", "", *notes]
    if fmt and head and "pipeline_tag" not in front:
        lines.append(
            f"- No `pipeline_tag`: {front.get('library_name') or 'no library'}'s pipelines would not apply this "
            "folder's head as zoo does; apply it to the embedding as stated above."
        )
    versions = facts.get("versions") or {}
    if versions:
        lines += ["", "## Made with", "", ", ".join(f"{k} {v}" for k, v in versions.items())]
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n" + "\n".join(lines) + "\n"


def _front_matter(facts: dict[str, Any], fmt: str | None, head: bool, card: dict[str, str | None]) -> dict[str, Any]:
    """The card's YAML metadata (see the module's docstring)."""
    task = facts.get("task")
    front: dict[str, Any] = {}
    library = card.get("library_name", LIBRARIES.get(fmt or ""))
    if library:
        front["library_name"] = library
    base = hub_model(facts["backbone"], facts.get("base_weights"))
    if base:
        front["base_model"] = base
    front["tags"] = [t for t in ("zoo", task, fmt) if t]
    license = _license(facts["backbone"], facts.get("base_weights"))
    if license:
        front["license"] = license
    if fmt is None:
        pipeline = PIPELINE_TAGS.get(str(task))
    elif "pipeline_tag" in card:
        pipeline = card["pipeline_tag"]
    else:  # the format does not say: its head's pipeline is unknown, its embedding's is the modality's
        pipeline = None if head else FEATURE_TAGS.get(str(facts.get("modality")))
    if pipeline:
        front["pipeline_tag"] = pipeline
    name, hub_id = _dataset(facts.get("data"))
    if hub_id:
        front["datasets"] = [hub_id]
    results = [
        {
            "task": {"type": PIPELINE_TAGS.get(str(task), "other"), "name": str(task).replace("-", " ").capitalize()},
            "dataset": {"name": name, "type": hub_id or name, "split": _split(split, facts.get("split_origins") or {})},
            "metrics": [
                {"type": metric, "value": round(float(value), 4), "name": metric}
                for metric, value in metrics.items()
                if isinstance(value, (int, float))
            ],
        }
        for split, metrics in (facts.get("metrics") or {}).items()
        if isinstance(metrics, dict) and task and name
    ]
    if results:
        front["model-index"] = [{"name": facts.get("run_name") or facts["backbone"], "results": results}]
    return front
