"""Checks of the files zoo reads back: data, never code.

A saved backbone's ``zoo.json``, a run's ``results.json``, a compare cell's
``cell.json`` and a comparison's ``table.json`` are files people hand to one
another. Each is read through `read_json_file` (a size bound, then JSON) and
checked against its JSON Schema here before any value is used, so a crafted
file is refused with one line naming the field, never half-trusted. Torch-free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

MAX_JSON_BYTES = 8 << 20  # zoo.json holds a model config; tables hold a few hundred rows
# Options that grant trust (to run a model repository's code) are the caller's alone: no file sets them.
TRUST_OPTIONS = ("trust_remote_code", "trust_repo")

_TEXT = {"type": "string", "maxLength": 4096}
_OPTIONAL_TEXT = {"type": ["string", "null"], "maxLength": 4096}
_COUNT = {"type": ["integer", "null"], "minimum": 0}
_NUMBER = {"type": ["number", "null"]}
_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._+-]*(/[a-z0-9][a-z0-9._+-]*)?$", "maxLength": 200}
_NAMES = {"type": "array", "items": _NAME, "maxItems": 256}
# keyword arguments: identifiers only, so a key can never be anything but a parameter name
_KEYWORDS = {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 100}}

WEIGHTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tag", "source"],
    "properties": {
        "tag": _TEXT,
        "source": _TEXT,
        "license": _OPTIONAL_TEXT,
        "preprocessing": {"type": ["object", "null"]},
        "requires": {"type": "array", "items": _TEXT, "maxItems": 64},
        "description": _TEXT,
        "files": {"type": "array", "items": _TEXT, "maxItems": 64},
        "head_classes": _COUNT,
        "head_labels": _TEXT,
        "hub_id": _OPTIONAL_TEXT,
    },
}
SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "modality", "factory"],
    "properties": {
        "name": _NAME,
        "modality": {"enum": ["text", "image", "multimodal"]},
        "factory": {"type": "string", "maxLength": 300},
        "embed_dim": _COUNT,
        "params": _COUNT,
        "license": _OPTIONAL_TEXT,
        "description": _TEXT,
        "weights": {"type": "array", "items": WEIGHTS_SCHEMA, "maxItems": 256},
        "tasks": _NAMES,
        "options": _KEYWORDS,
        "aliases": _NAMES,
        "gflops": _NUMBER,
        "id_option": _OPTIONAL_TEXT,
        "plugin": _OPTIONAL_TEXT,
        "pretrained": {"type": "boolean"},
    },
}
_DISTRIBUTION = {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "maxLength": 200}
SAVED_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["zoo_format", "spec", "options", "preprocessing", "sha256"],
    "properties": {
        "zoo_format": {"type": "integer"},
        "spec": SPEC_SCHEMA,
        "options": _KEYWORDS,
        "preprocessing": {"type": "object"},
        "weights_from": {"type": ["string", "object", "null"]},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        # the distribution that registered the backbone: named in the error when it is not installed
        "plugin": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": _OPTIONAL_TEXT,
                "distribution": _DISTRIBUTION,
                "version": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9.+!_-]+$", "maxLength": 100},
            },
        },
    },
}

# metrics: numbers (a few tasks add a text note, never shown as a number)
_METRICS = {"type": "object", "additionalProperties": {"type": ["number", "string", "null"], "maxLength": 4096}}
_SPLIT_METRICS = {"type": "object", "additionalProperties": _METRICS}
PROVENANCE_SCHEMA = {
    "type": "object",
    "properties": {
        "versions": {"type": "object", "additionalProperties": _OPTIONAL_TEXT},
        "device": _TEXT,
        "precision": _TEXT,
        "threads": _COUNT,
        "seed": {"type": "integer"},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "data_fingerprint": _OPTIONAL_TEXT,
        "recipe_hash": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "weights": {"type": ["string", "object", "null"]},
        "parent": {
            "type": "object",
            "properties": {"cell": _OPTIONAL_TEXT, "key": _TEXT, "backbone": _TEXT, "model": _TEXT},
        },
    },
}
# a run's training summary: settings and counts
# the training summary: numbers and words, and the records of what was decided (batch search, unfreezing)
_TRAIN = {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean", "null", "object"]}}
# a bootstrap interval of a metric, with its method (or, where there is none, a note saying why)
_INTERVAL = {
    "type": ["object", "null"],
    "properties": {"low": _NUMBER, "high": _NUMBER, "level": _NUMBER, "method": _OPTIONAL_TEXT, "note": _OPTIONAL_TEXT},
}
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["metrics", "train", "provenance"],
    "properties": {
        "metrics": _SPLIT_METRICS,
        "chance": _SPLIT_METRICS,
        "train": _TRAIN,
        "provenance": PROVENANCE_SCHEMA,
        "intervals": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": _INTERVAL}},
        # each split's per-item outputs, inside the run folder
        "items": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": r"^items/[A-Za-z0-9_][A-Za-z0-9_.-]*\.safetensors$"},
        },
    },
}
CELL_SCHEMA = {
    "type": "object",
    "required": ["backbone", "recipe", "key", "status"],
    "properties": {
        "backbone": _TEXT,
        "recipe": {"type": "object"},
        "key": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "status": {"enum": ["ok", "failed", "skipped"]},
        "error": _OPTIONAL_TEXT,
        "seconds": _NUMBER,
        "peak_rss_mb": _NUMBER,
        "metrics": _SPLIT_METRICS,
        "chance": _SPLIT_METRICS,
        "test_split": _OPTIONAL_TEXT,
        "train": _TRAIN,
        "provenance": PROVENANCE_SCHEMA,
    },
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"required": ["metrics", "train", "provenance"]},
}
ROW_SCHEMA = {
    "type": "object",
    "required": ["backbone", "task", "data", "mode", "status", "seeds"],
    "properties": {
        "backbone": _TEXT,
        "family": _OPTIONAL_TEXT,
        "modality": _OPTIONAL_TEXT,
        "params": _COUNT,
        "gflops_per_sample": _NUMBER,
        "task": _TEXT,
        "data": _TEXT,
        "mode": _TEXT,
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "license": _OPTIONAL_TEXT,
        "status": {"enum": ["ok", "failed", "skipped"]},
        "error": _OPTIONAL_TEXT,
        "metric": _TEXT,
        "mean": {"type": "number"},
        "std": {"type": "number"},
        "metrics": _METRICS,
        "train_seconds": _NUMBER,
        "train_samples_per_s": _NUMBER,
        "inference_samples_per_s": _NUMBER,
        "peak_rss_mb": _NUMBER,
        "provenance": PROVENANCE_SCHEMA,
        "chance": _NUMBER,
        "below_chance": {"type": "boolean"},
        "runs": {"type": "array", "items": _TEXT},
        "run_seeds": {"type": "array", "items": {"type": "integer"}},
        "interval": _INTERVAL,
        "best": {"type": "boolean"},
        "not_significant": {"type": "boolean"},
        # the paired bootstrap against the best row of the column
        "significance": {
            "type": ["object", "null"],
            "properties": {
                "against": _OPTIONAL_TEXT,
                "difference": _NUMBER,
                "low": _NUMBER,
                "high": _NUMBER,
                "p_value": _NUMBER,
                "significant": {"type": ["boolean", "null"]},
                "level": _NUMBER,
                "method": _OPTIONAL_TEXT,
                "note": _OPTIONAL_TEXT,
            },
        },
    },
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"required": ["metric", "mean", "std"]},
}
# a cached measurement of a backbone (OUTPUT/backbones/NAME.json)
MEASURE_SCHEMA = {
    "type": "object",
    "required": ["key", "gflops", "inference_per_s"],
    "properties": {
        "key": {"type": "string"},
        "params": _COUNT,
        "family": _OPTIONAL_TEXT,
        "modality": _OPTIONAL_TEXT,
        "license": _OPTIONAL_TEXT,
        "error": _TEXT,
        "gflops": {"type": "object", "additionalProperties": {"type": "number"}},
        "inference_per_s": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}
TABLE_SCHEMA = {
    "type": "object",
    "required": ["schema", "name", "rows"],
    "properties": {"schema": {"type": "integer"}, "name": _TEXT, "rows": {"type": "array", "items": ROW_SCHEMA}},
}


class FileError(ZooError):
    """A file handed to zoo that is not what it claims to be (malformed, oversized, a link out of its folder)."""

    exit_code = 2


def check(value: Any, schema: Mapping[str, Any], where: str | os.PathLike) -> Any:
    """``value`` if it satisfies JSON Schema ``schema``; else FileError naming ``where`` and the first bad field."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        field = error.json_path.removeprefix("$.") if error.json_path != "$" else "the top level"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        raise FileError(f"{where}: {field}: {message}; the file is malformed or was edited, refusing it")
    return value


def read_json_file(path: str | os.PathLike, schema: Mapping[str, Any], what: str) -> Any:
    """The JSON in ``path`` checked against ``schema``; FileError (one line) when it is missing, too large,
    not JSON or not of the schema. ``what`` names the file's role in the message."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise FileError(f"{path}: {size} bytes is too large for {what} (at most {MAX_JSON_BYTES}); refusing it")
        value = json.loads(path.read_bytes())
    except OSError as exc:
        raise FileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except RecursionError:
        raise FileError(f"{path}: {what} is nested too deeply; refusing it") from None
    except ValueError as exc:
        raise FileError(f"{path}: {what} is not valid JSON ({exc})") from None
    return check(value, schema, path)


def check_folder(directory: str | os.PathLike) -> None:
    """A handed folder may not reach outside itself: FileError for a link whose target is outside it,
    or a ``*_file`` entry of one of its JSON files (``vocab_file``, ``merges_file``, ``tokenizer_file``:
    how tokenizer configs name their files) that is absolute or climbs with ``..``."""
    root = Path(directory).resolve()
    for folder, subfolders, files in os.walk(root):
        for name in [*subfolders, *files]:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise FileError(
                    f"{path} is a link to {os.readlink(path)}, outside {root}; a saved folder must hold its own files"
                )
        for name in files:
            if name.endswith(".json") and (Path(folder) / name).stat().st_size <= MAX_JSON_BYTES:
                _check_named_paths(Path(folder) / name)


def _check_named_paths(path: Path) -> None:
    try:
        value = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return  # not ours to parse: the library that reads it reports it
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, entry in item.items():
                if isinstance(entry, str) and str(key).endswith("_file") and _escapes(entry):
                    raise FileError(f"{path}: {key} = {entry!r} points outside its folder; refusing it")
                stack.append(entry)
        elif isinstance(item, list):
            stack.extend(item)


def _escapes(name: str) -> bool:
    return name.startswith(("/", "\\")) or ".." in Path(name.replace("\\", "/")).parts
