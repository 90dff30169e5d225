"""A finished run serves new inputs: `zoo.load_run(...).predict`, `zoo predict` and `zoo evaluate --data`
give what the engine's own evaluation gives, and every run's model folder carries a model card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.errors import ZooError
from zoo.recipes import validate

from conftest import run_zoo
from hub_cards import hub_card


def _reviews(path: Path, count: int, start: int = 0) -> Path:
    rows = [
        (
            f"{'a wonderful, delightful film' if i % 2 else 'a dreadful, boring film'} number {i}",
            "pos" if i % 2 else "neg",
        )
        for i in range(start, start + count)
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("text-run")
    torch.manual_seed(0)
    results = zoo.load("text/bert-tiny").finetune(
        "text-classification",
        data=str(_reviews(folder / "reviews.csv", 80)),
        epochs=6,
        lr=3e-3,
        batch_size=16,
        output_dir=str(folder),
        name="reviews",
    )
    return Path(results["run_dir"])


def test_a_run_predicts_with_its_label_names_and_the_engine_s_accuracy(text_run, tmp_path):
    run = zoo.load_run(text_run)
    assert run.label_names == ["neg", "pos"] and run.task == "text-classification"
    predictions = run.predict(["a wonderful, delightful film number 1001", "a dreadful, boring film number 1002"])
    assert [p["label"] for p in predictions] == ["pos", "neg"]
    assert all(0.5 < p["probability"] <= 1 for p in predictions)
    # the run's own validation split, scored through predict, reads what the engine recorded
    results = json.loads((text_run / "results.json").read_text())
    from zoo.runs import score_data

    recipe = yaml.safe_load((text_run / "recipe.yaml").read_text())
    dataset = zoo.load_dataset(recipe["data"])
    split = dataset.splits["validation"]
    metrics = run.evaluate(list(split.inputs), [dataset.label_names[i] for i in split.labels])
    assert metrics["accuracy"] == pytest.approx(results["metrics"]["validation"]["accuracy"])
    scored = score_data(run, recipe["data"])  # every row of the file
    assert scored["examples"] == 80 and scored["splits"] == ["train"]


def test_zoo_predict_writes_a_row_per_input_and_evaluate_data_agrees_with_it(text_run, tmp_path, capsys):
    from zoo.cli.app import main

    def zoo_cli(*args: str) -> tuple[int, str, str]:  # in-process: the function the `zoo` script calls
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    new = _reviews(tmp_path / "new.csv", 24, start=500)
    lines = tmp_path / "new.txt"
    lines.write_text("".join(row["text"] + "\n" for row in csv.DictReader(new.open())))
    out = tmp_path / "predictions.csv"
    code, _, err = zoo_cli("predict", str(text_run), str(lines), "-o", str(out), "--top-k", "2")
    assert code == 0 and "24 predictions" in err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 24 and {r["label"] for r in rows} <= {"neg", "pos"}
    assert all(r["top"].startswith(r["label"] + ":") for r in rows)
    truth = [row["label"] for row in csv.DictReader(new.open())]
    accuracy = sum(r["label"] == t for r, t in zip(rows, truth, strict=True)) / len(truth)
    code, scored_text, _ = zoo_cli("evaluate", str(text_run), "--data", str(new))
    scored = json.loads(scored_text)
    assert code == 0 and scored["examples"] == 24 and scored["metrics"]["accuracy"] == pytest.approx(accuracy)
    # the CSV's own column, chosen by name
    code, by_column, _ = zoo_cli("predict", str(text_run), str(new), "--column", "text")
    assert code == 0 and by_column.splitlines()[0].split("\t") == ["input", "label", "probability"]
    assert len(by_column.splitlines()) == 25
    code, _, err = zoo_cli("predict", str(text_run), str(new), "--column", "review")
    assert code == 2 and "no column 'review' (its columns: text, label)" in err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("text,label\nfine film,maybe\ngood film,pos\n")
    code, _, err = zoo_cli("evaluate", str(text_run), "--data", str(wrong))
    assert code == 2 and "label 'maybe' is not one of the run's classes (neg, pos)" in err


def test_a_run_s_model_folder_has_a_model_card_with_its_results(text_run):
    card = (text_run / "model" / "README.md").read_text()
    front = hub_card(card)
    results = json.loads((text_run / "results.json").read_text())
    # zoo's own folder (no library the Hub knows); text/bert-tiny is trained from scratch: no Hub base model
    assert "library_name" not in front and "base_model" not in front
    assert front["pipeline_tag"] == "text-classification" and "text-classification" in front["tags"]
    # a user's file gets a held-out test split: the card reports it beside validation, each named by its origin
    entries = {entry["dataset"]["split"]: entry for entry in front["model-index"][0]["results"]}
    origins = results["split_origins"]
    assert set(entries) == {origins["validation"], origins["test"]} and "held out" in origins["test"]
    entry = entries[origins["validation"]]
    assert entry["task"]["type"] == "text-classification"
    accuracy = next(m for m in entry["metrics"] if m["type"] == "accuracy")
    assert accuracy["value"] == round(results["metrics"]["validation"]["accuracy"], 4)


@pytest.mark.parametrize("mode", ["linear-probe", "finetune"])
def test_image_runs_predict_as_the_engine_evaluates(mode, tmp_path):
    # digits' whole validation split: predict's path (the task's preprocessing, the head folded into one
    # linear map for a probe) must give the engine's accuracy exactly
    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "mode": mode,
        "train_limit": 200,
        "epochs": 2,
        "batch_size": 32,
        "lr": 1e-2,
        "output_dir": str(tmp_path),
        "task_options": {"flip_features": True},
    }
    from zoo.engine import run as run_recipe
    from zoo.runs import score_data

    results = run_recipe(validate(values, "test"))
    run = zoo.load_run(results["run_dir"])
    scored = score_data(run, "digits", "validation")
    assert scored["examples"] == len(zoo.load_dataset("digits").splits["validation"])
    assert scored["metrics"]["accuracy"] == pytest.approx(results["metrics"]["validation"]["accuracy"])


def test_a_probe_head_folds_its_standardisation_into_one_linear_map(tmp_path):
    from safetensors.torch import save_file

    from zoo.tasks.classification import ProbeHead

    torch.manual_seed(0)
    probe = ProbeHead(torch.randn(8), torch.rand(8) + 0.1, 3)
    save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, str(tmp_path / "head.safetensors"))
    (tmp_path / "head.json").write_text(json.dumps({"label_names": ["a", "b", "c"], "mode": "linear-probe"}))
    head = zoo.ClassifierHead.from_directory(tmp_path)
    features = torch.randn(5, 8)
    assert torch.allclose(head.logits(features), probe(features), atol=1e-5)
    assert torch.allclose(head.linear()(features), probe(features), atol=1e-5)


def test_runs_without_a_head_and_bad_inputs_are_one_line(tmp_path):
    from zoo.runs import Run

    run = Run(None, zoo.load("text/bert-tiny"), results={"task": "retrieval"})
    with pytest.raises(ZooError, match="is a retrieval run: predict serves classification runs"):
        run.predict(["hello"])
    not_a_run = run_zoo("predict", str(tmp_path), str(tmp_path))
    assert not_a_run.returncode != 0 and "is not a finished run" in not_a_run.stderr
    assert "Traceback" not in not_a_run.stderr


def test_zoo_predict_reads_an_image_folder_skipping_hidden_ones(tmp_path):
    from PIL import Image

    from zoo.engine import run as run_recipe

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "mode": "linear-probe",
        "train_limit": 100,
        "epochs": 1,
        "output_dir": str(tmp_path),
    }
    results = run_recipe(validate(values, "test"))
    digits = zoo.load_dataset("digits").splits["validation"]
    photos = tmp_path / "photos"
    for index in range(3):
        (photos / "batch").mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.inputs[index]).save(photos / "batch" / f"{index}.png")
    (photos / ".ipynb_checkpoints").mkdir()
    Image.fromarray(digits.inputs[0]).save(photos / ".ipynb_checkpoints" / "0.png")
    out = tmp_path / "predictions.jsonl"
    run_zoo("predict", results["run_dir"], str(photos), "-o", str(out), check=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(row["input"]).name for row in rows] == ["0.png", "1.png", "2.png"]
    expected = zoo.load_run(results["run_dir"]).predict([str(photos / "batch" / f"{i}.png") for i in range(3)])
    assert [row["label"] for row in rows] == [p["label"] for p in expected]
    assert all(row["label"] in [str(d) for d in range(10)] for row in rows)
