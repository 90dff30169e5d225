"""The data model every reader returns: `Dataset`, `Split`, `DataError`, and the deterministic helpers
(fingerprints, seeded stratified splits, option and label checks) that readers share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import ZooError

KINDS = ("text-classification", "image-classification", "image-text", "text-pairs")
# a class label: an id, or the label text itself before encoding
Label = TypeVar("Label", int, str)


class DataError(ZooError):
    """Data that is missing, empty or malformed."""

    exit_code = 2  # the user's data or data options: fix them and run again


@dataclass
class Split:
    """One split: ``inputs`` are texts, image paths or in-memory images.

    Classification: ``labels[i]`` is the class of ``inputs[i]``. Image-text:
    ``inputs`` are images and ``captions`` a list of (image index, caption). Text pairs: ``inputs``
    are (text, text) pairs and ``scores[i]`` the gold similarity of pair ``i``.
    """

    inputs: list[Any]
    labels: list[int] | None = None
    captions: list[tuple[int, str]] | None = None
    scores: list[float] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def class_labels(self) -> list[int]:
        """``labels``, for a split that must have them (a classification split)."""
        if self.labels is None:
            raise DataError("this split has no class labels; only a classification split has them")
        return self.labels

    def subset(self, indices: Sequence[int]) -> Split:
        labels = [self.labels[i] for i in indices] if self.labels is not None else None
        captions = None
        if self.captions is not None:
            position = {old: new for new, old in enumerate(indices)}
            captions = [(position[i], text) for i, text in self.captions if i in position]
        scores = [self.scores[i] for i in indices] if self.scores is not None else None
        return Split([self.inputs[i] for i in indices], labels, captions, scores)


@dataclass
class Dataset:
    """Named splits of one data set, with its class names and a content fingerprint."""

    name: str
    kind: str
    splits: dict[str, Split]
    label_names: list[str] = field(default_factory=list)
    # set by the core when the data set is read (`zoo.data.identity`): the reader, every option and the
    # examples; it changes whenever anything read changes, and every cache key starts from it
    fingerprint: str = ""
    # where each split came from, in words ("test.csv", "20% of train held out, stratified"), for the run's summary
    origins: dict[str, str] = field(default_factory=dict)
    own_files: bool = False  # read from a user's file or folder (not a named data set)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"data set {self.name!r} has no split {name!r}; it has: {', '.join(self.splits)}")
        if len(self.splits[name]) == 0:
            raise DataError(f"split {name!r} of data set {self.name!r} is empty")
        return self.splits[name]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def unlabelled(self, split: str, kind: str) -> list[Any]:
        """The texts or images (``kind``) of ``split``, labels dropped: a text or classification set's
        inputs, or an image-caption set's captions (texts) or images."""
        data = self.split(split)
        if self.kind == "image-text":
            if kind != "text":
                return list(data.inputs)
            if data.captions is None:
                raise DataError(f"split {split!r} of image-text data set {self.name!r} has no captions")
            return [text for _, text in data.captions]
        if self.kind not in (kind, f"{kind}-classification"):
            raise DataError(f"pretraining a {kind} backbone needs {kind}s; {self.name!r} is {self.kind}")
        return list(data.inputs)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (paths are hashed with their size and mtime)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(_stamped(part), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _stamped(part: Any) -> Any:
    if isinstance(part, Path):
        stat = part.stat()
        return [str(part), stat.st_size, stat.st_mtime_ns]
    if isinstance(part, (list, tuple)):
        return [_stamped(p) for p in part]
    return part


def stratified_split(
    labels: Sequence[Label], fraction: float, seed: int, salt: str = ""
) -> tuple[list[int], list[int]]:
    """Deterministic stratified split: per class, a seeded shuffle, the last ``fraction`` held out."""
    import random

    by_class: dict[Label, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train, held_out = [], []
    for label in sorted(by_class):
        indices = by_class[label]
        random.Random(f"{seed}:{salt}:{label}").shuffle(indices)
        cut = len(indices) - max(1, round(len(indices) * fraction)) if len(indices) > 1 else len(indices)
        train += indices[:cut]
        held_out += indices[cut:]
    return sorted(train), sorted(held_out)


def stratified_sample(labels: Sequence[Label], count: int, seed: int) -> list[int]:
    """Exactly ``count`` indices (sorted), each class keeping its share: per class, a seeded shuffle, the
    first ``count * share`` rounded down, the examples left over going to the classes with the largest
    remainders (every class keeps at least one where ``count`` allows)."""
    import random

    by_class: dict[Label, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    if count >= len(labels):
        return list(range(len(labels)))
    classes = sorted(by_class)
    exact = {c: count * len(by_class[c]) / len(labels) for c in classes}
    quota = {c: int(exact[c]) for c in classes}
    if count >= len(classes):
        quota = {c: max(1, q) for c, q in quota.items()}
    while sum(quota.values()) > count:  # the minimum of one took too many: trim the largest classes
        largest = max(classes, key=lambda c: (quota[c], -classes.index(c)))
        quota[largest] -= 1
    while sum(quota.values()) < count:  # largest remainder first
        room = [c for c in classes if quota[c] < len(by_class[c])]
        quota[min(room, key=lambda c: (quota[c] - exact[c], classes.index(c)))] += 1
    kept: list[int] = []
    for c in classes:
        indices = list(by_class[c])
        random.Random(f"{seed}:limit:{c}").shuffle(indices)
        kept += indices[: quota[c]]
    return sorted(kept)


def check_labels(name: str, split: str, labels: Sequence[int]) -> None:
    if len(set(labels)) < 2:
        raise DataError(
            f"{name}: the {split} split has only one class ({len(labels)} examples); a classifier needs at least two"
        )


def check_options(reader: Any, options: dict[str, Any], what: str) -> None:
    """A data option the reader does not take is a DataError naming it, not silently dropped."""
    from zoo.signatures import check_keywords

    check_keywords(reader, options, what, "data option", DataError)


# options whose zero would mean "nothing": none to test on, none to train on
AT_LEAST_ONE = ("test_images", "train_images")


def check_option_values(options: dict[str, Any]) -> None:
    """The values of the data options every reader shares a meaning of, checked before any reading: a
    ``*_fraction`` is a share (>= 0 and < 1), ``*_images`` a count, ``seed`` a non-negative integer."""
    for key, value in options.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key.endswith("_fraction") and not (number and 0 <= value < 1):
            raise DataError(f"data_options.{key} must be a share of the examples, >= 0 and < 1; got {value!r}")
        if key.endswith("_images") and value is not None:
            least = 1 if key in AT_LEAST_ONE else 0
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
                raise DataError(f"data_options.{key} must be a whole number of images >= {least}; got {value!r}")
        if key == "delimiter" and value is not None and not (isinstance(value, str) and len(value) == 1):
            raise DataError(f"data_options.delimiter must be one character, such as ',' or ';' or a tab; got {value!r}")
        if key == "seed" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise DataError(f"data_options.seed must be a whole number >= 0; got {value!r}")


def encode_labels(values: Iterable[str], names: Sequence[str] | None = None) -> tuple[list[int], list[str]]:
    """Class ids for label strings; ``names`` fixes the order (else sorted, numerically when numeric)."""
    values = [str(v).strip() for v in values]
    if names is None:
        unique = set(values)
        names = sorted(unique, key=lambda v: (0, int(v)) if v.lstrip("-").isdigit() else (1, v))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not among the known classes {list(names)[:10]}")
    return [index[v] for v in values], list(names)


def classification(
    name: str,
    kind: str,
    splits: dict[str, tuple[list[Any], list[str]]],
    label_names: Sequence[str] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
    origins: dict[str, str] | None = None,
) -> Dataset:
    """A classification `Dataset` from raw (inputs, label strings) per split; holds out test and validation.
    ``origins`` says where each given split came from (a file's name), for the run's summary. Its
    fingerprint is left to the core (`zoo.data.identity`), which hashes what was read."""
    origins = {split: (origins or {}).get(split, "the data set's own") for split in splits}
    first = next(iter(splits.values()))[1]
    _, names = encode_labels(first if label_names is None else label_names, label_names)
    encoded: dict[str, Split] = {}
    for split, (inputs, labels) in splits.items():
        if not inputs:
            raise DataError(f"{name}: the {split} split is empty")
        try:
            ids, _ = encode_labels(labels, names)
        except DataError as exc:
            raise DataError(f"{name} ({split} split): {exc}; a label unseen in training cannot be learned") from None
        encoded[split] = Split(list(inputs), ids)
    check_labels(name, "train", encoded["train"].class_labels())
    train_labels = encoded["train"].class_labels()
    if len(train_labels) > 2 and len(set(train_labels)) == len(train_labels):
        raise DataError(
            f"{name}: every training example has a class of its own ({len(train_labels)} classes in "
            f"{len(train_labels)} rows); is the label column the right one? (data_options.label_column)"
        )
    for held_out, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if held_out not in encoded and fraction:
            kept, taken = stratified_split(encoded["train"].class_labels(), fraction, seed, salt=held_out)
            whole = encoded["train"]
            encoded["train"], encoded[held_out] = whole.subset(kept), whole.subset(taken)
            rest = "the rest of " if held_out == "validation" and "test_fraction" in origins.get("test", "") else ""
            origins[held_out] = f"{fraction:.0%} of {rest}{origins['train']} held out ({held_out}_fraction, stratified)"
    return Dataset(name, kind, encoded, names, origins=origins)
