"""Data faults: each bad file gets one clear error naming the file (and line) and what to do;
damaged images are skipped and counted (or fatal, as configured); truncation is reported."""

from __future__ import annotations

import io

import pytest

from zoo.data import DataError, load_dataset
from zoo.data.base import classification
from zoo.engine import run
from zoo.errors import PreprocessingWarning
from zoo.recipes import load_recipe

from conftest import REPO

PROBE = REPO / "recipes" / "sst2-minilm-probe.yaml"


def probe(tmp_path, data, *extra):
    return run(
        load_recipe(
            PROBE,
            [
                f"data={data}",
                f"output_dir={tmp_path / 'runs'}",
                "name=x",
                "test_split=null",
                "model=text/bert-tiny",
                "epochs=1",
                *extra,
            ],
        )
    )


BAD_TEXT_FILES = {
    "missing.tsv": (None, "data file .*missing.tsv not found"),
    "one.tsv": ("".join(f"text number {i}\tpos\n" for i in range(20)), "the train split has only one class"),
    "empty.tsv": ("\n", "data file .*empty.tsv is empty"),
    "latin.tsv": (
        "caf\xe9 ok\tpos\nbad\tneg\n".encode("latin-1"),
        r"latin.tsv: line 1 is not UTF-8 text \(byte 0xe9\)",
    ),
    "semi.csv": (
        "text;label\na;b\n",
        r"semi.csv: the header 'text;label' looks ';'-separated, but .csv files are "
        r"read as ','-separated; pass data_options: \{delimiter: ';'\}",
    ),
    "commas.tsv": (
        "good film,1\nbad film,0\n",
        r"commas.tsv: line 1 has 1 field.s., expected 2 .text, label. "
        r"\(wrong delimiter\?\)",
    ),
    "header-only.csv": ("text,label\n", r"header-only.csv: a header \(text, label\) but no rows of data"),
    "renamed.tsv": (
        "sentence\tlabel\ngood\t1\nbad\t0\n",
        r"renamed.tsv: the header names columns sentence, label but "
        r"no 'text'; pass data_options: \{text_column: sentence\}",
    ),
    "ragged.csv": ("text,label\nok,1\nno label here\n", r"ragged.csv: line 3 has 1 field.s., expected 2"),
    "broken.jsonl": ('{"text": "a", "label": 1}\n{"text": \n', r"broken.jsonl: line 2 is not JSON"),
}


@pytest.mark.parametrize("name", list(BAD_TEXT_FILES))
def test_bad_text_files(tmp_path, name):
    content, message = BAD_TEXT_FILES[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        probe(tmp_path, path)


def test_a_delimiter_can_be_named(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("text;label\n" + "".join(f"text {i};{'ab'[i % 2]}\n" for i in range(40)))
    data = load_dataset(str(path), delimiter=";")
    assert data.label_names == ["a", "b"]  # split at ';': two classes, not one per line nor a column too few
    # 20% held out as test, then 20% of the rest as validation
    assert {split: len(data.splits[split]) for split in data.splits} == {"train": 26, "test": 8, "validation": 6}
    read = sorted(
        (text, data.label_names[label])
        for split in data.splits.values()
        for text, label in zip(split.inputs, split.labels, strict=False)
    )
    assert read == sorted((f"text {i}", "ab"[i % 2]) for i in range(40))
    results = probe(tmp_path, path, "data_options.delimiter=;")
    assert results["data_fingerprint"] == data.fingerprint  # the run trained and scored on these examples
    assert results["chance"]["validation"]["accuracy"] == 0.5


@pytest.mark.parametrize(
    "data, option, message",
    [
        (
            "cifar10",
            "validaton_fraction",
            r"data set 'cifar10' has no data option 'validaton_fraction' \(its data options: "
            r"validation_fraction, test_fraction, seed\); did you mean 'validation_fraction'\?",
        ),
        (
            "sst2",
            "test_fraction",
            r"data set 'sst2' has no data option 'test_fraction' \(its data options: validation_fraction, "
            r"seed, phrases, validation\)",
        ),  # sst2's test split is dev.tsv: the option is named, not dropped
        (
            "FILE",
            "delimter",
            r"semi.csv \(read by read_text_file\) has no data option 'delimter' .*; "
            r"did you mean 'delimiter'\?",
        ),
    ],
)
def test_an_unknown_data_option_is_an_error_not_ignored(tmp_path, data, option, message):
    if data == "FILE":
        data = tmp_path / "semi.csv"
        data.write_text("text;label\na;b\n")
    with pytest.raises(DataError, match=message):
        probe(tmp_path, data, f"data_options.{option}=0.1")


def test_labels_unseen_in_training_are_an_error():
    with pytest.raises(
        DataError,
        match=r"d \(test split\): labels \['c'\] are not among the known classes \['a', 'b'\]; "
        "a label unseen in training cannot be learned",
    ):
        classification("d", "text-classification", {"train": (["x", "y"], ["a", "b"]), "test": (["z"], ["c"])})


def test_very_long_texts_are_truncated_and_reported(tmp_path):
    path = tmp_path / "long.tsv"
    path.write_text("".join(f"text {i} {'very long ' * (300 if i % 4 == 0 else 1)}\t{i % 2}\n" for i in range(40)))
    with pytest.warns(
        PreprocessingWarning,
        match=r"\d+ of \d+ texts fill max_length=32 tokens; anything longer was "
        r"truncated \(raise model_options.max_length",
    ):
        probe(tmp_path, path, "model_options.max_length=32")


def images(tmp_path, broken: dict[str, bytes]):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (16, 16), (40 * i, 0, 0 if name == "a" else 255)).save(
                tmp_path / "imgs" / name / f"{i}.png"
            )
    for file, data in broken.items():
        (tmp_path / "imgs" / "a" / file).write_bytes(data)


def truncated_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 3]


@pytest.mark.parametrize(
    "file, data", [("broken.png", b"\x89PNG not really"), ("truncated.jpg", None), ("empty.png", b"")]
)
def test_unreadable_images_are_skipped_and_counted_or_fatal(tmp_path, file, data):
    images(tmp_path, {file: truncated_jpeg() if data is None else data})
    options = [
        f"data={tmp_path / 'imgs'}",
        "model=vision/example-convnet",
        "epochs=1",
        "batch_size=4",
        f"output_dir={tmp_path / 'runs'}",
        "data_options.validation_fraction=0.3",
        "test_split=null",
    ]
    recipe = REPO / "recipes" / "cifar10-lite0-finetune.yaml"
    with pytest.warns(UserWarning, match=f"skipped 1 unreadable image.s., first .*{file}"):
        run(load_recipe(recipe, [*options, "name=skip"]))
    with pytest.raises(DataError, match=f"cannot read image .*{file}"):
        run(load_recipe(recipe, [*options, "name=fail", "task_options.on_bad_image=fail"]))
