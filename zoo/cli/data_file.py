"""`zoo datasets FILE`: what a user's own file or folder would be read as, read by the real readers.

The description (`describe_file`) is the reader's own result: its kind, the columns it found and
uses, the classes with their counts and the splits a recipe would get, with the options that
change them and warnings about what would go wrong in training.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.data.base import Dataset

# One line for each option a user's file takes; the type and default are read from the reader's signature,
# so an option a reader gains shows up with "" until it is described here.
OPTION_HELP = {
    "text_column": "the column holding the text",
    "label_column": "the column holding the class label",
    "delimiter": "the field separator; default: tab for .tsv/.txt, comma for .csv",
    "test_fraction": "share held out as the test split (stratified, seeded) when there is no test_file",
    "validation_fraction": "share of what remains held out for model selection and early stopping",
    "test_file": "a file (or folder) of the same form used as the test split instead of a held-out share",
    "validation_file": "a file (or folder) of the same form used as the validation split instead of a held-out share",
    "seed": "seed of the held-out splits",
    "image_column": "the column naming each image (relative to the file, or to images_dir)",
    "caption_column": "the column holding each caption",
    "images_dir": "the folder the image names are relative to (default: the file's folder)",
    "test_images": "number of images held out as test (instead of test_fraction)",
    "train_images": "at most this many of the remaining images are trained on",
    "validation_images": "number of images held out for model selection",
    "name": "the data set's name in results (default: the file's name)",
    "first_column": "the column holding each pair's first text",
    "second_column": "the column holding each pair's second text",
    "score_column": "the column holding each pair's gold similarity (any scale: only its order and spacing count)",
}
SPLIT_OPTIONS = (
    "test_fraction",
    "validation_fraction",
    "test_file",
    "validation_file",
    "test_images",
    "validation_images",
    "train_images",
    "seed",
)
IMBALANCE = 10  # largest class / smallest class above this is worth a warning


def reader_options(kind: str) -> dict[str, dict[str, Any]]:
    """The options a user's file of ``kind`` takes (``data_options`` in a recipe): type, default, help."""
    from zoo.data import readers

    by_kind: dict[str, Callable[..., Any]] = {
        "text-classification": readers.read_text_file,
        "image-classification": readers.read_image_folder,
        "image-text": readers.read_caption_file,
        "text-pairs": readers.read_pairs_file,
        "text": readers.read_plain_text,
    }
    reader = by_kind[kind]
    parameters = list(inspect.signature(reader).parameters.values())[1:]
    return {
        p.name: {
            "type": str(p.annotation).replace("NoneType", "None"),
            "default": None if p.default is inspect.Parameter.empty else p.default,
            "help": OPTION_HELP.get(p.name, ""),
        }
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def describe_file(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """What ``path`` (a file or folder) is read as with ``options``: a JSON-ready dict."""
    from zoo.data.readers import read_path

    dataset = read_path(path, **options)
    settings = {name: option["default"] for name, option in reader_options(dataset.kind).items()}
    settings.update(options)
    facts: dict[str, Any] = {
        "path": str(path.resolve()),
        "kind": dataset.kind,
        "reader": {
            "text-classification": "text classification table",
            "image-classification": "image folder: one folder per class",
            "image-text": "image-caption table",
            "text-pairs": "text pairs with a gold similarity score (semantic-similarity)",
            "text": "plain text: one text a line, for pretraining",
        }[dataset.kind],
    }
    if path.is_file() and dataset.kind != "text":
        facts.update(_table_facts(path, dataset.kind, settings))
    splits = {name: len(split) for name, split in dataset.splits.items()}
    facts.setdefault("rows", sum(splits.values()))
    facts["examples"] = sum(splits.values())
    facts["splits"] = splits
    facts["classes"] = _class_counts(dataset)
    facts["split_options"] = {name: settings[name] for name in SPLIT_OPTIONS if name in settings}
    facts["warnings"] = _warnings(dataset, settings)
    facts["options"] = reader_options(dataset.kind)
    return facts


def _table_facts(path: Path, kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The columns (and their use) and the delimiter of a CSV/TSV/JSONL file."""
    from zoo.data.readers import read_lines

    used = {
        "text-classification": lambda: {"text": settings["text_column"], "label": settings["label_column"]},
        "text-pairs": lambda: {key: settings[f"{key}_column"] for key in ("first", "second", "score")},
        "image-text": lambda: {"image": settings["image_column"], "caption": settings["caption_column"]},
    }[kind]()
    if path.suffix == ".jsonl":
        import json

        lines = read_lines(path)
        return {
            "delimiter": None,
            "header": True,
            "columns": list(json.loads(lines[0])),
            "used": used,
            "rows": len(lines),
        }
    delimiter = settings.get("delimiter") or ("\t" if path.suffix in (".tsv", ".txt", "") else ",")
    import csv

    lines = read_lines(path)
    first = next(csv.reader(lines[:1], delimiter=delimiter))
    header = kind != "text-classification" or path.suffix != ".tsv" or settings["text_column"] in first
    columns = first if header else list(used.values())
    return {"delimiter": delimiter, "header": header, "columns": columns, "used": used, "rows": len(lines) - header}


def _class_counts(dataset: Dataset) -> dict[str, dict[str, int]] | None:
    """Per class, its examples in each split (None for data without classes)."""
    if not dataset.label_names:
        return None
    counts = {name: Counter(split.labels or ()) for name, split in dataset.splits.items()}
    return {
        label: {split: counts[split][index] for split in dataset.splits}
        for index, label in enumerate(dataset.label_names)
    }


def _warnings(dataset: Dataset, settings: dict[str, Any]) -> list[str]:
    """What would go wrong or mislead in training and evaluation, one line each."""
    out = []
    if "test" not in dataset.splits and dataset.kind != "text":
        out.append("no test split: nothing held out to measure results on; set test_fraction (e.g. 0.2) or test_file")
    if "validation" not in dataset.splits and dataset.kind not in ("text", "text-pairs"):  # pairs train nothing
        option = "validation_images" if dataset.kind == "image-text" else "validation_fraction (or validation_file)"
        out.append(f"no validation split: no model selection or early stopping; set {option}")
    empty = [name for name, split in dataset.splits.items() if not len(split)]
    for name in empty:
        total = sum(len(split) for split in dataset.splits.values())
        out.append(f"the {name} split is empty: {total} examples are too few to hold it out; give {name}_file")
    classes = _class_counts(dataset) or {}
    for label, per_split in classes.items():
        missing = [split for split, count in per_split.items() if count == 0 and split not in empty]
        if missing:
            out.append(f"class {label!r} has no examples in {', '.join(missing)}")
    totals: list[int] = [sum(per_split.values()) for per_split in classes.values()]
    smallest, largest = min(totals, default=0), max(totals, default=0)
    if smallest and largest / smallest > IMBALANCE:
        out.append(f"classes are imbalanced ({largest} vs {smallest} examples): read macro_f1, not only accuracy")
    if dataset.kind == "text-classification":
        texts = [text for split in dataset.splits.values() for text in split.inputs]
        repeated = sum(count - 1 for count in Counter(texts).values() if count > 1)
        if repeated:
            out.append(
                f"{repeated} text(s) repeat an earlier one; a repeat in two splits leaks test data into training"
            )
        blank = sum(1 for text in texts if not str(text).strip())
        if blank:
            out.append(f"{blank} empty text(s)")
    return out


def format_description(facts: dict[str, Any]) -> str:
    """``describe_file``'s dict as the lines `zoo datasets FILE` prints."""
    lines = [f"{'path:':13} {facts['path']}", f"{'read as:':13} {facts['kind']} ({facts['reader']})"]
    if "columns" in facts:
        names = {None: "none (JSON lines)", "\t": "tab", ",": "comma"}
        lines.append(f"{'delimiter:':13} {names.get(facts['delimiter'], repr(facts['delimiter']))}")
        header = "" if facts["header"] else " (no header: named by text_column, label_column)"
        lines.append(f"{'columns:':13} {', '.join(facts['columns'])}{header}")
        lines.append(f"{'uses:':13} " + ", ".join(f"{role} = {column!r}" for role, column in facts["used"].items()))
    lines.append(
        f"{'rows:':13} {facts['rows']}"
        + ("" if facts["rows"] == facts["examples"] else f" ({facts['examples']} examples)")
    )
    lines.append(f"{'splits:':13} " + ", ".join(f"{name} {count}" for name, count in facts["splits"].items()))
    lines.append(f"{'':13} from " + ", ".join(f"{name}={value!r}" for name, value in facts["split_options"].items()))
    if facts["classes"]:
        split_names = list(facts["splits"])
        lines.append(f"classes ({len(facts['classes'])}), examples per split ({' / '.join(split_names)}):")
        for label, per_split in facts["classes"].items():
            lines.append(f"  {label:19} " + " / ".join(str(per_split[split]) for split in split_names))
    for warning in facts["warnings"]:
        lines.append(f"warning: {warning}")
    lines.append("data_options (a recipe's data_options, or -o KEY=VALUE here):")
    for name, option in facts["options"].items():
        lines.append(f"  {name:19} {option['type']}, default {option['default']!r}: {option['help']}".rstrip(": "))
    return "\n".join(lines)


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as options; values are read as YAML (``0.2``, ``true``, ``';'``)."""
    import click
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: write KEY=VALUE, e.g. -o test_fraction=0.2", param_hint="-o")
        key = key.strip()
        if key == "delimiter":  # '\t' or 'tab' as typed in a shell, not the two characters
            options[key] = {"\\t": "\t", "tab": "\t"}.get(value, value)
        else:
            options[key] = yaml.safe_load(value) if value.strip() else value
    return options
