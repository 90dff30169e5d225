"""The semantic-similarity task on users' pairs files: read as STS-B lays them out, scored by the
correlation of cosine similarity with the gold scores, mistakes told in one line."""

from __future__ import annotations

import json
import random

import pytest
from scipy.stats import spearmanr

from zoo.data import DataError, load_dataset

from conftest import DATA_ROOT, run_zoo


def caption_pairs_file(path, rows: int = 60) -> list[float]:
    """An STS-B-style TSV from real Flickr8k captions: two captions of one photo score 5, captions of
    two photos 0 (the gold), in a seeded order; returns the gold scores."""
    import csv

    by_image: dict[str, list[str]] = {}
    with open(DATA_ROOT / "image_text" / "flickr8k" / "captions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_image.setdefault(row["image"], []).append(row["caption"].replace("\t", " "))
    images = sorted(by_image)[: rows // 2 + 1]
    lines, gold = ["sentence1\tsentence2\tscore"], []
    for index in range(rows // 2):
        own, other = by_image[images[index]], by_image[images[index + 1]]
        lines += [f"{own[0]}\t{own[1]}\t5.0", f"{own[2]}\t{other[3]}\t0.0"]
        gold += [5.0, 0.0]
    order = list(range(1, len(lines)))
    random.Random(0).shuffle(order)
    path.write_text("\n".join([lines[0], *(lines[i] for i in order)]) + "\n")
    return [gold[i - 1] for i in order]


def test_a_pairs_file_is_read_as_text_pairs_with_a_held_out_test_split(tmp_path):
    gold = caption_pairs_file(tmp_path / "pairs.tsv")
    dataset = load_dataset(str(tmp_path / "pairs.tsv"))
    assert dataset.kind == "text-pairs" and dataset.own_files
    assert {name: len(split) for name, split in dataset.splits.items()} == {"train": 48, "test": 12}
    assert sorted(dataset.splits["train"].scores + dataset.splits["test"].scores) == sorted(gold)
    first, second = dataset.splits["test"].inputs[0]
    assert isinstance(first, str) and isinstance(second, str)


def test_zoo_run_scores_a_pairs_file_and_the_cli_describes_it(tmp_path, capsys):
    from zoo.cli.app import main  # in-process: the function the `zoo` script calls

    caption_pairs_file(tmp_path / "pairs.tsv")
    assert main(["datasets", str(tmp_path / "pairs.tsv"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["kind"] == "text-pairs" and facts["splits"] == {"train": 48, "test": 12}
    recipe = tmp_path / "sts.yaml"
    recipe.write_text("model: text/minilm-l6\ntask: semantic-similarity\ndata: pairs.tsv\neval_split: test\n")
    result = run_zoo("run", str(recipe), "--set", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "sts" / "results.json").read_text())
    assert results["primary_metric"] == "cosine_spearman" and results["examples"] == {"test": 12}
    assert results["metrics"]["test"]["cosine_spearman"] > 0.5  # MiniLM tells captions of one photo apart
    assert results["chance"]["test"]["cosine_spearman"] == 0.0


def test_the_correlation_is_spearmans_of_the_cosines():
    from zoo.tasks.mteb_methods import similarity_scores

    first = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.2]]
    second = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    gold = [5, 2, 0, 4]
    scores = similarity_scores(first, second, gold)
    cosines = [1.0, 2**-0.5, 0.0, 1 / (1.04**0.5)]
    assert scores["cosine_spearman"] == pytest.approx(spearmanr(gold, cosines)[0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("sentence1\tsentence2\tscore\na\tb\thigh\n", {}, r"line 2: score 'high' is not a number"),
        ("sentence1\tsentence2\tgold\na\tb\t1\n", {"first_column": "sentence1"}, r"no column 'score'.*score_column"),
    ],
)
def test_a_bad_pairs_file_is_one_line(tmp_path, content, options, message):
    (tmp_path / "pairs.tsv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "pairs.tsv"), **options)
