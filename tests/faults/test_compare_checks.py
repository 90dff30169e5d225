"""`zoo compare` checks every cell as `zoo run` checks its recipe before any cell starts: a mistake in one
cell's data, options or splits is exit 2 and one line naming the spec file, the cell and the mistake."""

from __future__ import annotations

import time

import pytest
import yaml

from zoo.cli.app import main
from zoo.comparisons import load_spec, plan
from zoo.comparisons.checks import DataReads, check_cells

GOOD = {
    "task": "image-classification",
    "data": "digits",
    "mode": "linear-probe",
    "backbones": ["vision/example-convnet"],
}
TEXT = {"task": "text-classification", "data": "train.tsv", "mode": "linear-probe", "backbones": ["text/bert-tiny"]}
CONVNET = "vision/example-convnet · image-classification / digits / linear-probe"
BERT = "text/bert-tiny · text-classification"


@pytest.mark.parametrize(
    "cell, names, message",
    [
        ({**TEXT, "data": "missing.tsv"}, f"{BERT} / missing.tsv", "missing.tsv not found"),
        (
            {**TEXT, "data_options": {"test_file": "test.tsv"}},
            f"{BERT} / train.tsv",
            "labels ['mid'] are not classes of the training file train.tsv",
        ),
        (
            {**TEXT, "data": "digits"},
            f"{BERT} / digits",
            "needs a text-classification data set; 'digits' is image-classification",
        ),
        ({**TEXT, "data": "nolabel.csv"}, f"{BERT} / nolabel.csv", "no column 'label'; columns are text, sentiment"),
        ({**GOOD, "model_options": {"widht": 8}}, CONVNET, "has no model option 'widht'"),
        ({**GOOD, "eval_split": "dev"}, CONVNET, "eval_split: data 'digits' has no 'dev' split"),
        ({**TEXT, "task_options": {"image_size": 96}}, "cell 2", "'text-classification' has no option 'image_size'"),
        (
            {**TEXT, "mode": None, "protocol": "mteb-sts"},
            "cell 2",
            "protocol: mteb-sts scores the semantic-similarity task; this recipe's task is 'text-classification'",
        ),
    ],
    ids=[
        "missing-file",
        "unseen-test-label",
        "text-task-image-data",
        "no-label-column",
        "model-option",
        "eval-split",
        "other-task-option",
        "protocol-task",
    ],
)
def test_a_cell_zoo_run_would_refuse_is_exit_2_before_any_cell_runs(tmp_path, capsys, cell, names, message):
    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "good\tpos\nbad\tneg\n" * 4)
    (tmp_path / "test.tsv").write_text("text\tlabel\ngreat\tpos\nmeh\tmid\n")
    (tmp_path / "nolabel.csv").write_text("text,sentiment\ngood,pos\nbad,neg\n")
    out = tmp_path / "out"
    spec = tmp_path / "spec.yaml"
    cells = [GOOD, {k: v for k, v in cell.items() if v is not None}]  # the good cell first: it must not run either
    spec.write_text(
        yaml.safe_dump({"name": "checks", "output_dir": str(out), "backbones": ["text/bert-tiny"], "cells": cells})
    )
    started = time.perf_counter()
    code = main(["compare", str(spec)])
    took = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"zoo: error: compare spec 'checks' ({spec}), ") and err.count("\n") == 1, err
    assert names in err and message in err, err
    assert not out.exists() and took < 60  # nothing ran, nothing written; no cell's 11-39 s either


def test_each_data_set_is_read_once_for_all_its_cells():
    reads = DataReads()
    digits = reads("digits", None, test_fraction=0.1)
    assert reads("digits", None, test_fraction=0.1) is digits and len(reads.read) == 1
    assert reads("digits", None, test_fraction=0.2) is not digits and len(reads.read) == 2


def test_the_quickstart_spec_checks_clean_in_seconds():
    cells = plan(load_spec("recipes/quickstart.yaml"))
    started = time.perf_counter()
    check_cells(cells, "quickstart")  # reads SST-2, CIFAR-10, digits and Flickr8k once each (with their options)
    assert time.perf_counter() - started < 30
