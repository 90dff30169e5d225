"""Data handled as users mean it: hidden and empty folders are not classes, a last batch of one example
trains, ``train_limit`` and ``epochs`` are exact and recorded, a file or folder brings its own test split
(else one is held out), and a run says what it is doing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.data import DataError, load_dataset
from zoo.data.folders import DataWarning
from zoo.engine import run
from zoo.recipes import validate

from conftest import run_zoo

WORDS = {"a": ["good", "great", "fine"], "b": ["bad", "awful", "poor"], "c": ["blue", "red", "green"]}


def texts(path: Path, per_class: int, start: int = 0) -> Path:
    """A CSV of ``per_class`` rows of each of three classes whose words give the class away."""
    rows = [
        f"{WORDS[label][i % 3]} {WORDS[label][(i + 1) % 3]} item {start + i},{label}"
        for i in range(per_class)
        for label in WORDS
    ]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def probe(tmp_path: Path, data: Path, **values):
    """A linear probe of the tiny BERT on ``data``: features once, then a fast head."""
    recipe = {
        "model": "text/bert-tiny",
        "task": "text-classification",
        "mode": "linear-probe",
        "data": str(data),
        "epochs": 3.0,
        "batch_size": 8,
        "lr": 1e-2,
        "output_dir": str(tmp_path / "runs"),
        "name": "r",
        **values,
    }
    results = run(validate(recipe, "test"))
    saved = json.loads((Path(results["run_dir"]) / "results.json").read_text())
    assert saved["examples"] == results["examples"]
    return saved


def pictures(root: Path, per_class: int) -> Path:
    from PIL import Image

    for k, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (80 * k, 10 * i, 255 - 80 * k)).save(root / name / f"{i}.png")
    return root


def test_hidden_and_empty_folders_are_skipped_and_a_last_batch_of_one_trains_a_batchnorm_model(tmp_path):
    folder = pictures(tmp_path / "imgs", 20)
    (folder / ".ipynb_checkpoints").mkdir()  # Jupyter's: holds a copy of a picture, is no class
    (folder / "a" / "0.png").rename(folder / ".ipynb_checkpoints" / "0-checkpoint.png")
    (folder / "empty").mkdir()
    recipe = {
        "model": "vision/cnn-tiny",  # BatchNorm after its last (1x1 at 32 px) convolution
        "task": "image-classification",
        "task_options": {"image_size": 32},
        "data": str(folder),
        "train_limit": 33,  # at batch 16: 16 + 16 + 1, and BatchNorm cannot train on a batch of one
        "batch_size": 16,
        "epochs": 2.0,
        "lr": 1e-3,
        "output_dir": str(tmp_path / "runs"),
        "name": "bn",
    }
    with pytest.warns(DataWarning, match=r"skipped folder\(s\) .ipynb_checkpoints \(hidden\), empty \(no images\)"):
        results = run(validate(recipe, "test"))
    assert json.loads((folder.parent / "runs" / "bn" / "model" / "head.json").read_text())["label_names"] == list("abc")
    assert results["examples"]["train"] == 33
    assert results["train"]["steps"] == 4 and results["train"]["epochs"] == 2.0  # the one merged into a batch


def test_train_limit_is_exact_and_epochs_are_true(tmp_path):
    data = texts(tmp_path / "d.csv", 40)
    whole = load_dataset(str(data))
    results = probe(tmp_path, data, train_limit=32, epochs=30.0, batch_size=10)
    assert results["recipe"]["train_limit"] == 32
    assert results["examples"] == {
        "train": 32,
        "validation": len(whole.splits["validation"]),
        "test": len(whole.splits["test"]),
    }
    # 32 examples at batch 10: 4 steps an epoch (the last of 2 examples), 120 steps in all
    assert results["train"]["steps"] == 120 and results["train"]["epochs"] == 30.0


def test_a_user_file_gets_a_held_out_test_split_by_default(tmp_path):
    results = probe(tmp_path, texts(tmp_path / "d.csv", 20))
    assert results["test_split"] == "test" and set(results["metrics"]) == {"validation", "test"}
    # 60 rows: 20% (4 of each class) held out as test, then 20% of the rest (3 of each) for validation
    assert results["examples"] == {"train": 39, "validation": 9, "test": 12}
    assert results["split_origins"]["test"] == "20% of d.csv held out (test_fraction, stratified)"
    assert results["metrics"]["test"]["accuracy"] > 0.9  # the words give the class away


def test_a_test_file_is_the_test_split(tmp_path):
    data, test = texts(tmp_path / "d.csv", 20), texts(tmp_path / "held.csv", 5, start=100)
    results = probe(tmp_path, data, data_options={"test_file": str(test)})
    assert results["examples"]["test"] == 15 == len(test.read_text().splitlines()) - 1  # every row of the file
    assert results["examples"]["train"] + results["examples"]["validation"] == 60  # no rows of d.csv held out
    assert results["split_origins"]["test"] == "held.csv" and "test" in results["metrics"]
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("text,label\nsomething,z\n")
    with pytest.raises(DataError, match=r"unknown.csv: labels \['z'\] are not classes of the training file d.csv"):
        load_dataset(str(data), test_file=str(unknown))


def test_a_folder_with_train_and_test_files_is_read_as_those_splits(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    texts(folder / "train.csv", 20)
    texts(folder / "test.csv", 4, start=100)
    results = probe(tmp_path, folder)
    assert results["data"] == "mine" and results["examples"]["test"] == 12
    assert results["split_origins"]["test"] == "test.csv"


def test_an_image_folder_with_train_and_test_folders_is_read_as_those_splits(tmp_path):
    pictures(tmp_path / "set" / "train", 10)
    pictures(tmp_path / "set" / "test", 3)
    (tmp_path / "set" / "test" / "a" / "0.png").unlink()
    data = load_dataset(str(tmp_path / "set"))
    assert data.label_names == list("abc") and len(data.splits["test"]) == 8
    assert data.origins["test"] == "test/" and len(data.splits["train"]) + len(data.splits["validation"]) == 30


def test_zoo_run_says_what_it_does_and_json_on_request(tmp_path):
    data = texts(tmp_path / "d.csv", 20)
    recipe = tmp_path / "probe.yaml"
    recipe.write_text(
        "model: text/bert-tiny\ntask: text-classification\nmode: linear-probe\nepochs: 3\nbatch_size: 8\n"
        f"data: {data}\noutput_dir: {tmp_path / 'runs'}\n"
    )
    done = run_zoo("run", str(recipe), check=True)
    summary = done.stderr[done.stderr.index("zoo run probe:") :].splitlines()
    assert summary[1].split() == ["backbone", "text/bert-tiny", "(random", "initialisation)"]
    assert summary[4].startswith("  train       39 examples, trains; from d.csv")
    assert "test        12 examples, scored once, at the end; from 20% of d.csv held out" in summary[6]
    assert "training    15 steps of batch 8 (3 epochs of 5 steps)" in summary[7]
    assert summary[10] == "step 1/15 loss=" + summary[10].split("loss=")[1]  # progress from the first step
    last = done.stdout.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("done after 15 steps: validation accuracy ")
    assert "; test accuracy " in last[0] and last[0].endswith(f"results in {tmp_path / 'runs' / 'probe'}")
    again = run_zoo("run", str(recipe), "--json", "--set", "name=j", check=True)
    printed = json.loads(again.stdout)
    assert set(printed) == {"run_dir", "metrics", "train"} and set(printed["metrics"]) == {"validation", "test"}
