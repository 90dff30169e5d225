"""Published results as reference rows (MTEB TaskResult files, timm's results CSV), refused outside the
procedure they were made under; zoo's protocol cells written as TaskResult files MTEB's own code reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.comparisons.references import reference_rows
from zoo.recipes import RecipeError

from conftest import REPO, run_zoo

REFERENCES = REPO / "recipes" / "references"
# the file the MTEB results repository holds for all-MiniLM-L6-v2 on Banking77 (its published 80.04)
MTEB_FILE = (
    "mteb/sentence-transformers__all-MiniLM-L6-v2/8b3219a92973c328a8e22fadcfa821b5dc75636a/Banking77Classification.json"
)


def test_an_mteb_result_file_is_a_published_row_under_its_protocol():
    entry = {"file": MTEB_FILE, "data": "banking77", "protocol": "mteb-classification", "source": "MTEB results"}
    [row] = reference_rows([entry], REFERENCES)
    assert row["backbone"] == "sentence-transformers/all-MiniLM-L6-v2 (published)" and row["status"] == "published"
    assert row["metric"] == "test accuracy" and row["mean"] == pytest.approx(0.8004220779220779)
    assert row["metrics"]["macro_f1"] == pytest.approx(0.7937884047247287)  # MTEB's f1, under zoo's name
    assert row["protocol"] == "mteb-classification" and "mteb 1.12.75" in row["provenance"]["version"]
    mteb = pytest.importorskip("mteb")  # the shipped file is one MTEB's own code reads
    assert mteb.TaskResult.from_disk(REFERENCES / MTEB_FILE).scores["test"][0]["main_score"] == row["mean"]


def test_a_timm_results_row_is_a_published_pretrained_head_row():
    entry = {
        "file": "timm-results-imagenet-lite.csv",
        "model": "tf_efficientnet_lite0.in1k",
        "data": "imagenet",
        "protocol": "pretrained-head",
        "source": "timm results-imagenet.csv",
    }
    [row] = reference_rows([entry], REFERENCES)
    assert (row["task"], row["mode"], row["protocol"]) == ("image-classification", "pretrained-head", None)
    assert row["mean"] == pytest.approx(0.7483) and row["metrics"]["top5_accuracy"] == pytest.approx(0.92172)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": "linear-probe"}, r"cannot stand in a 'linear-probe' column"),
        ({"file": "timm-results-imagenet-lite.csv", "model": "tf_efficientnet_lite0"}, r"mteb-classification"),
        ({"file": "missing.json"}, r"reference file .*missing.json not found"),
        ({"source": None}, r"needs file, data, protocol and source"),
        ({"colour": "red"}, r"unknown key\(s\) colour"),
    ],
)
def test_a_reference_mistake_is_one_line(change, message):
    entry = {"file": MTEB_FILE, "data": "banking77", "protocol": "mteb-classification", "source": "MTEB results"}
    entry = {k: v for k, v in {**entry, **change}.items() if v is not None}
    with pytest.raises(RecipeError, match=message):
        reference_rows([entry], REFERENCES)


def test_a_misspelt_timm_model_gets_a_did_you_mean():
    entry = {"file": "timm-results-imagenet-lite.csv", "model": "tf_efficientnet_lite0.in22k", "data": "imagenet"}
    with pytest.raises(RecipeError, match=r"did you mean 'tf_efficientnet_lite0.in1k'"):
        reference_rows([{**entry, "protocol": "pretrained-head", "source": "timm"}], REFERENCES)


def test_compare_shows_references_and_writes_mteb_task_results(tmp_path):
    """A spec with an STS protocol cell and two reference files: the table has the published rows, each
    in the column of its own procedure, and zoo's cell is an MTEB TaskResult that mteb loads."""
    mteb = pytest.importorskip("mteb")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"""
name: references
output_dir: {tmp_path / "out"}
backbones: [text/minilm-l6]
cells:
  - {{task: semantic-similarity, data: flickr8k-pairs, protocol: mteb-sts, test_split: test}}
references:
  - {{file: {REFERENCES / MTEB_FILE}, data: banking77, protocol: mteb-classification, source: MTEB results repository}}
  - {{file: {REFERENCES / "timm-results-imagenet-lite.csv"}, model: tf_efficientnet_lite2.in1k, data: imagenet,
     protocol: pretrained-head, source: timm results-imagenet.csv}}
"""
    )
    result = run_zoo("compare", str(spec), "--jobs", "1")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    markdown = (out / "table.md").read_text()
    assert "sentence-transformers/all-MiniLM-L6-v2 (published)" in markdown and "published, not rerun" in markdown
    assert "text-classification / banking77 / mteb-classification" in markdown
    assert "semantic-similarity / flickr8k-pairs / mteb-sts" in markdown
    assert "published" in (out / "report.html").read_text()
    [written] = (out / "mteb").rglob("*.json")
    loaded = mteb.TaskResult.from_disk(written)
    table = json.loads((out / "table.json").read_text())
    [ours] = [row for row in table["rows"] if row["status"] == "ok"]
    assert loaded.scores["test"][0]["main_score"] == pytest.approx(ours["mean"], abs=1e-4)
    assert Path(written).parts[-3:-1] == ("text__minilm-l6", "all-v2")  # MODEL/REVISION/TASK.json
