"""The evaluation protocols equal their anchors: zoo's numbers and the installed `mteb` package's
evaluators, run on the same embeddings of the same real data, agree to the last digit, per experiment."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from zoo.engine import prepare, run
from zoo.errors import ZooError
from zoo.recipes import validate
from zoo.tasks.mteb_methods import mteb_undersamples
from zoo.tasks.protocols import PROTOCOLS, get_protocol

from conftest import DATA_ROOT, assert_headline_interval

mteb = pytest.importorskip("mteb")
datasets = pytest.importorskip("datasets")

MODEL = "text/minilm-l6"


def replaying_encoder(calls: list[tuple[list[str], np.ndarray]]) -> Any:
    """An mteb encoder that answers each encode call with the embeddings zoo computed for the same texts
    (checked), in the order mteb asks: by position, since one text batched with others of another
    length embeds a little differently, so a lookup by text would not give exactly zoo's numbers."""
    from mteb.models.abs_encoder import AbsEncoder

    class Replay(AbsEncoder):
        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
            texts, embeddings = calls.pop(0)
            assert [text for batch in inputs for text in batch["text"]] == texts
            return embeddings

    return Replay()


def task_metadata(name: str, kind: str, main_score: str) -> Any:
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=name,
        description="zoo's oracle check: mteb's evaluator on zoo's embeddings",
        reference="https://github.com/embeddings-benchmark/mteb",
        dataset={"path": "NA", "revision": "NA"},
        type=kind,
        category="t2t",
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score=main_score,
        date=("2024-01-01", "2024-01-01"),
        dialect=["Written"],
        domains=[],
        task_subtypes=[],
        license="cc-by-4.0",
        annotations_creators="derived",
        modalities=["text"],
        sample_creation="found",
        bibtex_citation="",
    )


def mteb_classification(train: tuple[list[str], list[int]], test: tuple[list[str], list[int]]) -> Any:
    from mteb.abstasks.classification import AbsTaskClassification

    class Oracle(AbsTaskClassification):
        metadata = task_metadata("ZooOracleClassification", "Classification", "accuracy")

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = datasets.DatasetDict(
                {
                    split: datasets.Dataset.from_dict({"text": texts, "label": labels})
                    for split, (texts, labels) in (("train", train), ("test", test))
                }
            )
            self.data_loaded = True

    return Oracle()


def sst2_files(tmp_path) -> dict[str, str]:
    """A binary set from real SST-2 rows: 1,500 training phrases, 300 dev sentences as its test file."""
    folder = DATA_ROOT / "text" / "sst2"
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("".join((folder / "train.tsv").read_text().splitlines(keepends=True)[:1500]))
    test.write_text("".join((folder / "dev.tsv").read_text().splitlines(keepends=True)[:300]))
    return {"data": str(train), "test_file": str(test)}


@pytest.mark.parametrize("data", ["trec", "sst2-files"])
def test_mteb_classification_equals_mteb_per_experiment(tmp_path, data):
    options: dict[str, Any] = {}
    if data == "sst2-files":
        files = sst2_files(tmp_path)
        data, options = files["data"], {"test_file": files["test_file"]}  # the plain recipe: its own splits
    recipe = {
        "model": MODEL,
        "task": "text-classification",
        "data": data,
        "data_options": options,
        "protocol": "mteb-classification",
        "output_dir": str(tmp_path / "runs"),
        "name": "mteb",
    }
    results = run(validate(recipe, "test"))
    assert results["protocol"]["name"] == "mteb-classification" and results["primary_metric"] == "accuracy"
    assert json.loads((tmp_path / "runs" / "mteb" / "results.json").read_text())["protocol"] == results["protocol"]
    assert not (tmp_path / "runs" / "mteb" / "model").exists()  # nothing trained, nothing kept
    assert_headline_interval(results, tmp_path / "runs" / "mteb")

    # the embeddings zoo scored (from its cache), handed to mteb's own evaluator
    task = prepare(validate({**recipe, "mode": "linear-probe"}, "test"))
    train_split, test_split = task.data.split("train"), task.data.split("test")
    assert results["examples"]["train"] == len(train_split) and "validation" not in task.data.splits
    params = PROTOCOLS["mteb-classification"].params
    draws = mteb_undersamples(train_split.class_labels(), params["samples_per_label"], params["n_experiments"], 42)
    union = sorted(set().union(*draws))
    calls = [
        ([train_split.inputs[i] for i in union], task.frozen_features("train", union)[0].numpy()),
        (list(test_split.inputs), task.frozen_features("test")[0].numpy()),
    ]
    oracle = mteb_classification(
        (list(train_split.inputs), train_split.class_labels()), (list(test_split.inputs), test_split.class_labels())
    )
    theirs = oracle.evaluate(replaying_encoder(calls), "test", encode_kwargs={"batch_size": 64})["default"]

    ours = results["protocol"]["scores_per_experiment"]
    assert len(ours) == len(theirs["scores_per_experiment"]) == 10
    for mine, reference in zip(ours, theirs["scores_per_experiment"], strict=True):
        assert mine["accuracy"] == reference["accuracy"]
        assert mine["macro_f1"] == reference["f1"] and mine["weighted_f1"] == reference["f1_weighted"]
        assert ("ap" in mine) == (reference["ap"] is not None)
    assert results["metrics"]["test"]["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-15)
    assert results["metrics"]["test"]["accuracy"] > 0.5  # MiniLM is far above chance on both sets


def test_mteb_sts_equals_mteb(tmp_path):
    from mteb.abstasks.sts import AbsTaskSTS

    recipe = {
        "model": MODEL,
        "task": "semantic-similarity",
        "data": "flickr8k-pairs",
        "protocol": "mteb-sts",
        "output_dir": str(tmp_path / "runs"),
        "name": "sts",
    }
    results = run(validate(recipe, "test"))
    assert results["primary_metric"] == "cosine_spearman" and results["protocol"]["name"] == "mteb-sts"
    assert_headline_interval(results, tmp_path / "runs" / "sts")
    task = prepare(validate({k: v for k, v in recipe.items() if k != "protocol"}, "test"))
    first, second, gold = task.pair_embeddings("test")
    pairs = task.data.split("test").inputs
    calls = [([a for a, _ in pairs], first.numpy()), ([b for _, b in pairs], second.numpy())]

    class Oracle(AbsTaskSTS):
        metadata = task_metadata("ZooOracleSTS", "STS", "cosine_spearman")
        min_score, max_score = 0, 1

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            columns = {"sentence1": [a for a, _ in pairs], "sentence2": [b for _, b in pairs], "score": gold}
            self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})
            self.data_loaded = True

    theirs = Oracle().evaluate(replaying_encoder(calls), "test", encode_kwargs={"batch_size": 64})["default"]
    ours = results["metrics"]["test"]
    assert ours["cosine_spearman"] == theirs["cosine_spearman"]
    assert ours["cosine_pearson"] == theirs["cosine_pearson"]
    assert ours["cosine_spearman"] > 0.5  # captions of one photo are far closer than of two


def test_the_task_alone_gives_the_protocol_numbers(tmp_path):
    """Without ``protocol``, the semantic-similarity task reports the same correlations (MTEB's STS
    is what it computes); the protocol only names the procedure in the result."""
    recipe = {"model": MODEL, "task": "semantic-similarity", "data": "flickr8k-pairs", "eval_split": "test"}
    plain = run(validate({**recipe, "output_dir": str(tmp_path), "name": "plain"}, "test"))
    named = run(validate({**recipe, "protocol": "mteb-sts", "output_dir": str(tmp_path), "name": "named"}, "test"))
    assert plain["metrics"]["test"]["cosine_spearman"] == named["metrics"]["test"]["cosine_spearman"]
    assert "protocol" not in plain


def test_mteb_draws_reshuffle_the_previous_order():
    labels = [0, 1] * 20
    draws = mteb_undersamples(labels, 3, 3, 42)
    assert all(len(d) == 6 and sorted(labels[i] for i in d) == [0, 0, 0, 1, 1, 1] for d in draws)
    assert draws[0] != draws[1] != draws[2]  # each experiment shuffles again, from the last order


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": "mteb-clasification"}, "did you mean 'mteb-classification'"),
        ({"protocol": "mteb-sts"}, "mteb-sts scores the semantic-similarity task; this recipe's task is"),
        ({"mode": "finetune"}, r"scores the frozen backbone \(linear-probe\), not a finetune run"),
        ({"data_options": {"validation_fraction": 0.1}}, "data_options.validation_fraction: protocol mteb-classif"),
        ({"train_limit": 100}, "train_limit: protocol mteb-classification uses whole splits"),
    ],
)
def test_a_protocol_mistake_is_one_line_before_any_work(tmp_path, change, message):
    from zoo.checks import check_recipe

    recipe = {"model": MODEL, "task": "text-classification", "data": "trec", "protocol": "mteb-classification"}
    with pytest.raises(ZooError, match=message):
        check_recipe(validate({**recipe, **change}, "test"))


def test_every_protocol_names_its_source_task_and_metric():
    from zoo.tasks import get_task

    for protocol in PROTOCOLS.values():
        assert get_protocol(protocol.name) is protocol
        spec, task_class = get_task(protocol.task)
        assert protocol.mode in task_class.modes
        assert protocol.primary_metric and protocol.source and protocol.description


def test_the_plain_protocol_recipe_is_the_one_published_numbers_were_made_with(tmp_path):
    """MTEB's Banking77 number (80.04) came from the protocol on the whole train file; the plain recipe
    (model, task, data, test_file, protocol) now reads the data exactly so: the same draws, the same
    scores, as with the validation share set to zero by hand."""
    files = sst2_files(tmp_path)
    recipe = {
        "model": MODEL,
        "task": "text-classification",
        "data": files["data"],
        "protocol": "mteb-classification",
        "output_dir": str(tmp_path / "runs"),
    }
    plain = run(validate({**recipe, "name": "plain", "data_options": {"test_file": files["test_file"]}}, "test"))
    zero = {"test_file": files["test_file"], "validation_fraction": 0.0}
    by_hand = run(validate({**recipe, "name": "by-hand", "data_options": zero}, "test"))
    assert plain["examples"]["train"] == 1500 == by_hand["examples"]["train"]
    assert plain["protocol"]["scores_per_experiment"] == by_hand["protocol"]["scores_per_experiment"]
    assert plain["data_fingerprint"] == by_hand["data_fingerprint"]  # the same data read the same way
