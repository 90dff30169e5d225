"""Generic readers: a user's own files work with the same recipes as the named data sets.

- text classification: ``.tsv`` / ``.csv`` / ``.jsonl`` with a text and a label column
  (TSV without a header: text, label);
- image classification: a folder of class folders (``cat/001.jpg``);
- image-text: ``.csv`` / ``.jsonl`` with ``image`` and ``caption`` columns, images
  relative to the file.
Splits: a file can bring its own (``test_file``, ``validation_file``), and a folder holding
``train.csv`` and ``test.csv`` (or ``train/`` and ``test/`` class folders) is read as those splits.
Where a data set has no test split of its own, ``test_fraction`` of it (0.2 for a user's files) is
held out as ``test``; then ``validation_fraction`` of what remains becomes ``validation`` (for model
selection and early stopping). Both are stratified and seeded, so ``test`` is never seen by training
or selection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.data.base import (
    DataError,
    Dataset,
    Split,
    check_option_values,
    check_options,
    classification,
    stratified_split,
)
from zoo.data.folders import IMAGE_SUFFIXES, read_image_folder, read_split_folder, split_layout


def read_lines(path: Path) -> list[str]:
    """Lines of a text file; a file that is not UTF-8 gets a clear error naming the line."""
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); re-encode the file as UTF-8"
        ) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"data file {path} is empty")
    return lines


def read_table(path: Path, columns: Sequence[str] | None = None, delimiter: str | None = None) -> list[dict[str, str]]:
    """Rows of a CSV (header), TSV (header, or ``columns`` when it has none) or JSONL file;
    ``delimiter`` overrides the one the suffix implies (tab for .tsv/.txt, comma for .csv)."""
    lines = read_lines(path)
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DataError(f"{path}: line {number} is not JSON ({exc})") from None
        return rows
    delimiter = delimiter or ("\t" if path.suffix in (".tsv", ".txt", "") else ",")
    reader = csv.reader(lines, delimiter=delimiter)
    header = list(columns) if columns else next(reader)
    if len(header) == 1 and not columns:
        used = next((d for d in ("\t", ";", "|", ",") if d != delimiter and d in header[0]), None)
        if used:
            raise DataError(
                f"{path}: the header {header[0]!r} looks {used!r}-separated, but {path.suffix or 'this'} "
                f"files are read as {delimiter!r}-separated; pass data_options: {{delimiter: {used!r}}}"
            )
    rows = []
    for number, values in enumerate(reader, 1 if columns else 2):
        if len(values) != len(header):
            hint = " (wrong delimiter?)" if len(values) == 1 else ""
            raise DataError(
                f"{path}: line {number} has {len(values)} field(s), expected {len(header)} ({', '.join(header)}){hint}"
            )
        rows.append(dict(zip(header, values, strict=False)))
    if not rows:
        raise DataError(f"{path}: a header ({', '.join(header)}) but no rows of data")
    return rows


def read_labelled_rows(
    path: Path, text_column: str = "text", label_column: str = "label", delimiter: str | None = None
) -> tuple[list[str], list[str]]:
    """Texts and label strings of a TSV without header (text, label), or a CSV/TSV/JSONL file with columns."""
    first = read_lines(path)[0].split(delimiter or "\t")
    headerless = path.suffix == ".tsv" and text_column not in first
    if headerless and label_column in first:  # a header after all, naming the text column otherwise
        raise DataError(
            f"{path}: the header names columns {', '.join(first)} but no {text_column!r}; pass "
            f"data_options: {{text_column: {next(c for c in first if c != label_column)}}}"
        )
    rows = read_table(path, columns=(text_column, label_column) if headerless else None, delimiter=delimiter)
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise DataError(f"{path}: no column {column!r}; columns are {', '.join(rows[0])}")
    return [str(row[text_column]) for row in rows], [str(row[label_column]) for row in rows]


def check_known_labels(path: Path, labels: Sequence[str], train: Path, train_labels: Sequence[str]) -> None:
    """A split file's labels must be classes of the training file."""
    unknown = sorted({label.strip() for label in labels} - {label.strip() for label in train_labels})
    if unknown:
        raise DataError(
            f"{path}: labels {unknown[:5]} are not classes of the training file {train.name} "
            f"({', '.join(sorted(set(train_labels))[:10])}); a label unseen in training cannot be learned"
        )


def read_text_file(
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    delimiter: str | None = None,
    test_file: str | None = None,
    validation_file: str | None = None,
    name: str | None = None,
) -> Dataset:
    """A text-classification file: TSV without header (text, label), or CSV/TSV/JSONL with columns.

    ``test_file`` / ``validation_file``: the file's own test / validation split (same columns and
    options; its labels must be classes of the training file). Without ``test_file``, ``test_fraction``
    (default 0.2; 0 for none) of the file is held out as the test split, stratified and seeded; then
    ``validation_fraction`` of the rest (default 0.2) selects the best weights."""
    splits = {"train": read_labelled_rows(path, text_column, label_column, delimiter)}
    origins = {"train": path.name}
    given = {"test": test_file, "validation": validation_file}
    for split, file in given.items():
        if file is not None:
            splits[split] = read_labelled_rows(Path(file), text_column, label_column, delimiter)
            origins[split] = Path(file).name
            check_known_labels(Path(file), splits[split][1], path, splits["train"][1])
    return classification(
        name or path.stem,
        "text-classification",
        splits,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        origins=origins,
    )


def read_plain_text(path: Path, validation_fraction: float = 0.0, seed: int = 0) -> Dataset:
    """Unlabelled text, one text a line (a ``.txt`` file whose first line has no tab): a corpus for
    pretraining, as a recipe's data or in ``task_options.extra_data``."""
    texts = Split(read_lines(path))
    splits = {"train": texts}
    if validation_fraction:
        kept, held_out = stratified_split([0] * len(texts), validation_fraction, seed, salt="validation")
        if not held_out or not kept:
            raise DataError(f"{path}: {len(texts)} lines are too few to hold out a validation split")
        splits = {"train": texts.subset(kept), "validation": texts.subset(held_out)}
    return Dataset(path.stem, "text", splits, [])


def read_captions(
    path: Path, image_column: str = "image", caption_column: str = "caption", images_dir: str | None = None
) -> tuple[list[Path], list[tuple[int, str]]]:
    """Images and (image index, caption) pairs from a caption file; every image must exist."""
    rows = read_table(path)
    for column in (image_column, caption_column):
        if column not in rows[0]:
            raise DataError(f"{path}: no column {column!r}; columns are {', '.join(rows[0])}")
    folder = path.parent / images_dir if images_dir else path.parent
    index: dict[str, int] = {}
    images: list[Path] = []
    captions: list[tuple[int, str]] = []
    for number, row in enumerate(rows, 2):
        name = row[image_column]
        if name not in index:
            image = folder / name
            if not image.is_file():
                raise DataError(f"{path}: line {number} refers to a missing image {image}")
            index[name] = len(images)
            images.append(image)
        captions.append((index[name], row[caption_column]))
    return images, captions


def read_caption_file(
    path: Path,
    test_images: int | None = None,
    train_images: int | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    image_column: str = "image",
    caption_column: str = "caption",
    images_dir: str | None = None,
    name: str | None = None,
    validation_images: int = 0,
) -> Dataset:
    """An image-caption file split by image, seeded: ``test_images`` (else ``test_fraction``) held out as
    test, then ``validation_images`` for selecting weights, then up to ``train_images`` of the rest for training."""
    import random

    images, captions = read_captions(path, image_column, caption_column, images_dir)
    order = list(range(len(images)))
    random.Random(seed).shuffle(order)
    cut = test_images if test_images is not None else max(1, round(len(images) * test_fraction))
    held = cut + validation_images
    end = held + train_images if train_images is not None else len(order)
    if end > len(order) or held >= len(order):
        raise DataError(
            f"{path}: {len(order)} images cannot give {cut} test + {validation_images} validation + "
            f"{train_images if train_images is not None else 'some'} train images"
        )
    whole = Split(images, None, captions)
    splits = {"train": whole.subset(sorted(order[held:end])), "test": whole.subset(sorted(order[:cut]))}
    if validation_images:
        splits["validation"] = whole.subset(sorted(order[cut:held]))
    name = name or path.stem
    return Dataset(name, "image-text", splits, [])


def read_pair_rows(
    path: Path, first_column: str, second_column: str, score_column: str, delimiter: str | None = None
) -> Split:
    """The pairs of one file and their gold scores (a row whose score is not a number is an error)."""
    rows = read_table(path, delimiter=delimiter)
    for column in (first_column, second_column, score_column):
        if column not in rows[0]:
            raise DataError(
                f"{path}: no column {column!r}; columns are {', '.join(rows[0])} (name them with "
                "data_options first_column, second_column and score_column)"
            )
    scores = []
    for number, row in enumerate(rows, 2 if path.suffix != ".jsonl" else 1):
        try:
            scores.append(float(row[score_column]))
        except (TypeError, ValueError):
            raise DataError(f"{path}: line {number}: score {row[score_column]!r} is not a number") from None
    pairs = [(str(row[first_column]), str(row[second_column])) for row in rows]
    return Split(pairs, scores=scores)


def read_pairs_file(
    path: Path,
    first_column: str = "sentence1",
    second_column: str = "sentence2",
    score_column: str = "score",
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    seed: int = 0,
    delimiter: str | None = None,
    test_file: str | None = None,
    validation_file: str | None = None,
    name: str | None = None,
) -> Dataset:
    """A pairs file: two texts and a gold score a row. ``test_file`` / ``validation_file``: the file's
    own test / validation split (same columns); without ``test_file``, ``test_fraction`` (default 0.2; 0
    for none) of the pairs is held out as the test split, seeded."""
    read = {"train": Path(path), "test": test_file, "validation": validation_file}
    splits = {
        split: read_pair_rows(Path(file), first_column, second_column, score_column, delimiter)
        for split, file in read.items()
        if file is not None
    }
    origins = {split: Path(file).name for split, file in read.items() if file is not None}
    for held_out, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if held_out not in splits and fraction:
            kept, taken = stratified_split([0] * len(splits["train"]), fraction, seed, salt=held_out)
            if not kept or not taken:
                raise DataError(f"{path}: {len(splits['train'])} pairs are too few to hold out a {held_out} split")
            whole = splits["train"]
            splits["train"], splits[held_out] = whole.subset(kept), whole.subset(taken)
            origins[held_out] = f"{fraction:.0%} of {origins['train']} held out ({held_out}_fraction)"
    return Dataset(name or Path(path).stem, "text-pairs", splits, [], origins=origins)


def unlabelled_inputs(paths: Sequence[Path], column: str | None = None) -> tuple[str, list[Any]]:
    """What `zoo predict` reads: ``("image", paths)`` for image files or folders of them (hidden ones
    skipped), else ``("text", texts)``: a text file's lines, or a CSV/TSV/JSONL file's ``column``
    (default ``text``, or the only column there is)."""
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(  # hidden files and folders inside the one given are skipped, not the path to it
                p
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise DataError(f"{path}: a folder without images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            images += found
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            if not path.is_file():
                raise DataError(f"image {path} not found")
            images.append(path)
    if images:
        if any(not p.is_dir() and p.suffix.lower() not in IMAGE_SUFFIXES for p in paths):
            raise DataError("give images (files or folders) or one text file to predict on, not both")
        return "image", images
    if len(paths) != 1:
        raise DataError("give one text file (or image files and folders) to predict on")
    path = paths[0]
    if path.suffix == ".txt" or (path.suffix not in (".csv", ".tsv", ".jsonl") and path.is_file()):
        return "text", read_lines(path)
    rows = read_table(path)
    names = list(rows[0])
    chosen = column or ("text" if "text" in names or len(names) != 1 else names[0])
    if chosen not in rows[0]:
        raise DataError(f"{path}: no column {chosen!r} (its columns: {', '.join(names)}); choose one with --column")
    return "text", [str(row[chosen]) for row in rows]


def path_reader(path: Path, options: dict[str, Any]) -> tuple[Callable[..., Dataset], Path, dict[str, Any]]:
    """The generic reader a user's file or folder calls for, and the path and options it reads with (a
    folder holding its own splits is read from its train split, the others named as options)."""
    reader: Callable[..., Dataset]
    check_option_values(options)
    layout = split_layout(path) if path.is_dir() else None
    if layout is not None:
        path, options = read_split_folder(path, layout, **options)
    if path.is_dir():
        reader = read_image_folder
    elif not path.exists():
        raise DataError(f"data file {path} not found")
    elif path.suffix not in (".tsv", ".csv", ".jsonl", ".txt"):
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .tsv, .csv, .jsonl, .txt or a folder of images"
        )
    else:
        first = read_lines(path)[0]
        captioned = options.get("image_column", "image") in first and options.get("caption_column", "caption") in first
        paired = (
            options.get("first_column", "sentence1") in first and options.get("second_column", "sentence2") in first
        )
        plain = path.suffix == ".txt" and "\t" not in first and options.get("delimiter") is None
        if paired:
            reader = read_pairs_file
        else:
            reader = read_plain_text if plain else read_caption_file if captioned else read_text_file
    check_options(reader, options, f"{path} (read by {reader.__name__})")
    for key in ("test_file", "validation_file"):
        if options.get(key) is not None and not Path(options[key]).exists():
            raise DataError(f"data_options.{key}: {options[key]} not found")
        if options.get(key) is not None and Path(options[key]).resolve() == path.resolve():
            raise DataError(
                f"data_options.{key}: {options[key]} is the training data itself, so its scores would measure "
                f"memory; give held-out data, or drop {key} to hold out a share of the training data"
            )
    return reader, path, options


def read_path(path: Path, **options: Any) -> Dataset:
    """Read a user's file or folder with the reader its form calls for; its fingerprint is the core's
    (`zoo.data.identity`): the reader, every option and the examples read."""
    from zoo.data.identity import data_identity

    reader, path, options = path_reader(path, options)
    dataset = reader(path, **options)
    dataset.own_files = True
    dataset.fingerprint = data_identity(dataset, reader, path.resolve(), options)
    return dataset
