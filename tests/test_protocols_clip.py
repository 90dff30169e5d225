"""The zero-shot and retrieval protocols equal their anchors on the same embeddings of real data.

One real CLIP-style backbone (``clip/lite0-minilm-l6``: pretrained EfficientNet-Lite0 and MiniLM towers,
joined by projections drawn at load, hence loaded once and handed to every run) scores 50 real CIFAR-10
test images and 40 Flickr8k test images (200 captions) through ``zoo.engine.run``; each anchor is
then run on the embeddings zoo computed (the images' from zoo's cache, the prompts' encoded again by the
same weights):

- ``mieb-zero-shot``: the installed ``mteb`` package's ``AbsTaskZeroShotClassification.evaluate`` (its
  evaluator, its similarity, its metrics) on an oracle task over the same image files, with an encoder
  that replays zoo's embeddings;
- ``clip-benchmark-zero-shot``: ``clip_benchmark.metrics.zeroshot_classification.evaluate`` whole (its
  classifier from the prompts, its logits, its metrics), with a model that replays zoo's embeddings and
  a loader of image indices (its one float() of an array, an error under NumPy 2.4, made to take the
  element);
- ``clip-benchmark-retrieval``: ``clip_benchmark.metrics.zeroshot_retrieval.evaluate`` whole, likewise,
  over batches of (image indices, each image's captions).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import numpy as np
import pytest
import torch

from zoo.checks import check_recipe
from zoo.engine import prepare, run
from zoo.errors import InputError
from zoo.recipes import validate
from zoo.tasks.protocols import CLIP_BENCHMARK_TEMPLATES, PROTOCOLS, get_protocol
from zoo.tasks.protocols import evaluate as evaluate_protocol

from conftest import assert_headline_interval

MODEL = "clip/lite0-minilm-l6"
CIFAR = {"model": MODEL, "task": "zero-shot-classification", "data": "cifar10", "eval_split": "test", "eval_limit": 50}


@pytest.fixture(scope="module")
def clip() -> Any:
    """One load: the joined model's projections are drawn afresh at every load."""
    import zoo

    return zoo.load(MODEL)


def scored(recipe: dict[str, Any], clip: Any, tmp_path) -> tuple[dict[str, Any], Any]:
    """zoo's run of ``recipe`` under its protocol, and a task over the same data and weights."""
    results = run(validate({**recipe, "output_dir": str(tmp_path), "name": "run"}, "test"), backbone=clip)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["protocol"] == results["protocol"] and saved["primary_metric"] == results["primary_metric"]
    assert not (tmp_path / "run" / "model").exists()  # nothing trained, nothing kept
    assert_headline_interval(results, tmp_path / "run")
    return results, prepare(validate(recipe, "test"), clip)


class Prompts(list):
    """What a replaying tokenizer returns: the texts themselves, movable as clip_benchmark moves tokens."""

    def to(self, device: Any) -> Prompts:
        return self


class Replay(torch.nn.Module):
    """A clip_benchmark model whose encoders answer with zoo's embeddings: images by index, texts by the
    next expected call (checked) or, with ``by_text``, by caption."""

    def __init__(self, images: torch.Tensor, calls: list[tuple[list[str], torch.Tensor]], by_text=None):
        super().__init__()
        self.images, self.calls, self.by_text = images, calls, by_text

    def encode_image(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices]

    def encode_text(self, texts: Prompts) -> torch.Tensor:
        if self.by_text is not None:
            return torch.stack([self.by_text[text] for text in texts])
        expected, embeddings = self.calls.pop(0)
        assert list(texts) == expected
        return embeddings


def test_mieb_zero_shot_equals_mteb(tmp_path, clip):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("mteb")
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.abstasks.zeroshot_classification import AbsTaskZeroShotClassification
    from mteb.models.abs_encoder import AbsEncoder

    results, task = scored({**CIFAR, "protocol": "mieb-zero-shot"}, clip, tmp_path)
    assert results["protocol"]["params"] == {"template": "a photo of a {}.", "scores": "cosine"}
    names = list(task.data.label_names)
    prompts = [f"a photo of a {name}." for name in names]  # MIEB's CIFAR10ZeroShot, written out
    assert results["protocol"]["prompts"] == prompts
    images, labels = task.image_embeddings("test")
    test = task.data.split("test")
    assert len(images) == len(test.inputs) == 50

    asked: list[str] = []

    class Replay(AbsEncoder):
        """MIEB asks for the class prompts first, then the images (checked), as zoo encoded them."""

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
            if not asked:
                asked.append("prompts")
                assert [text for batch in inputs for text in batch["text"]] == prompts
                return task.encode_prompts(prompts).numpy()
            asked.append("images")
            assert sum(len(batch["image"]) for batch in inputs) == len(images)
            return images.numpy()

    class Oracle(AbsTaskZeroShotClassification):
        metadata = TaskMetadata(
            name="ZooOracleZeroShot",
            description="zoo's oracle check: MIEB's zero-shot evaluator on zoo's embeddings",
            reference="https://github.com/embeddings-benchmark/mteb",
            dataset={"path": "NA", "revision": "NA"},
            type="ZeroShotClassification",
            category="i2t",
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="accuracy",
            date=("2024-01-01", "2024-01-01"),
            dialect=[],
            domains=["Web"],
            task_subtypes=["Object recognition"],
            license="not specified",
            annotations_creators="derived",
            modalities=["text", "image"],  # as CIFAR10ZeroShot: cosine similarities score the classes
            sample_creation="created",
            bibtex_citation="",
        )
        input_column_name = "img"

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            columns = {"img": [str(path) for path in test.inputs], "label": labels.tolist()}
            features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
            self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns, features=features)})
            self.data_loaded = True

        def get_candidate_labels(self) -> list[str]:
            return [f"a photo of a {name}." for name in self.dataset["test"].features["label"].names]

    theirs = Oracle().evaluate(Replay(), "test", encode_kwargs={"batch_size": 64})["default"]
    ours = results["metrics"]["test"]
    for mine, reference in [
        ("accuracy", "accuracy"),
        ("macro_f1", "f1"),
        ("weighted_f1", "f1_weighted"),
        ("macro_precision", "precision"),
        ("weighted_precision", "precision_weighted"),
        ("macro_recall", "recall"),
        ("weighted_recall", "recall_weighted"),
    ]:
        assert ours[mine] == theirs[reference], mine
    assert "ap" not in ours and theirs["ap"] is None  # ten classes: MIEB reports no AP
    assert asked == ["prompts", "images"]


def test_clip_benchmark_zero_shot_equals_clip_benchmark(tmp_path, clip, monkeypatch):
    from clip_benchmark.metrics import zeroshot_classification

    results, task = scored({**CIFAR, "protocol": "clip-benchmark-zero-shot"}, clip, tmp_path)
    record = results["protocol"]
    assert record["source"].startswith("clip_benchmark 1.6.2") and record["templates_from"] == "clip_benchmark cifar10"
    assert len(record["templates"]) == 18 and record["params"]["logit_scale"] == 100.0
    # the ensemble as clip_benchmark ships it (its "{c}"), and its CIFAR-10 class names (torchvision's)
    shipped = json.loads(
        (files("clip_benchmark") / "datasets" / "en_zeroshot_classification_templates.json").read_text()
    )["cifar10"]
    assert [t.replace("{c}", "{}") for t in shipped] == list(CLIP_BENCHMARK_TEMPLATES["cifar10"]) == record["templates"]
    classnames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert record["classnames"] == classnames
    assert results["chance"]["test"]["acc1"] == results["chance"]["test"]["accuracy"] > 0  # the table's chance line

    images, labels = task.image_embeddings("test")
    calls = [
        (prompts, task.encode_prompts(prompts))
        for prompts in ([t.format(c=name) for t in shipped] for name in classnames)
    ]

    class Labelled(torch.utils.data.TensorDataset):
        classes = classnames

    loader = torch.utils.data.DataLoader(Labelled(torch.arange(len(images)), labels), batch_size=len(images))
    # clip_benchmark 1.6.2's accuracy() calls float() on a 1-element array, an error since NumPy 2.4:
    # its module's float takes the one element, as older NumPy did; nothing else of it changes
    monkeypatch.setattr(zeroshot_classification, "float", lambda x: float(np.asarray(x).item()), raising=False)
    theirs = zeroshot_classification.evaluate(
        Replay(images, calls), loader, Prompts, classnames, shipped, "cpu", amp=False
    )
    assert not calls  # every class's prompts were asked for, in zoo's order
    ours = results["metrics"]["test"]
    assert ours == {
        "acc1": theirs["acc1"],
        "acc5": theirs["acc5"],
        "mean_per_class_recall": theirs["mean_per_class_recall"],
    }
    assert results["primary_metric"] == "acc1" and 0 <= ours["acc1"] <= ours["acc5"] <= 1


def test_clip_benchmark_retrieval_equals_clip_benchmark(tmp_path, clip):
    from clip_benchmark.metrics import zeroshot_retrieval

    recipe = {
        "model": MODEL,
        "task": "retrieval",
        "data": "flickr8k",
        "data_options": {"test_images": 40},
        "protocol": "clip-benchmark-retrieval",
    }
    results, task = scored(recipe, clip, tmp_path)
    images, texts, image_of = task.embeddings("test")
    captions = [text for _, text in task.data.split("test").captions]
    assert len(images) == 40 and len(texts) == len(captions) == 200  # five captions an image
    captions_of: list[list[str]] = [[] for _ in images]
    for caption, image in zip(captions, image_of, strict=True):
        captions_of[image].append(caption)
    batches = [(torch.arange(s, min(s + 16, len(images))), captions_of[s : s + 16]) for s in range(0, len(images), 16)]
    replay = Replay(images, [], by_text=dict(zip(captions, texts, strict=True)))
    theirs = zeroshot_retrieval.evaluate(replay, batches, Prompts, "cpu", amp=False, recall_k_list=[1, 5, 10])
    ours = results["metrics"]["test"]
    assert ours == theirs
    assert results["primary_metric"] == "image_retrieval_recall@1"
    chance = results["chance"]["test"]  # a random ranking: one relevant image among 40
    assert chance["image_retrieval_recall@1"] == chance["text->image R@1"] == pytest.approx(1 / 40)
    assert list(results["protocol"]["params"]["recall_k"]) == [1, 5, 10]


def test_a_data_set_without_clip_benchmark_templates_says_which_option_gives_them(clip):
    recipe = {**CIFAR, "data": "digits", "eval_limit": 20, "protocol": "clip-benchmark-zero-shot"}
    task = prepare(validate(recipe, "test"), clip)
    with pytest.raises(InputError, match=r"no prompt templates for data 'digits'.*task_options\.templates"):
        evaluate_protocol(get_protocol("clip-benchmark-zero-shot"), task, "test")
    own = prepare(validate({**recipe, "task_options": {"templates": ["a photo of the number {}."]}}, "test"), clip)
    metrics, record, _ = evaluate_protocol(get_protocol("clip-benchmark-zero-shot"), own, "test")
    assert record["templates_from"] == "task_options.templates" and record["templates"] == ["a photo of the number {}."]
    assert set(metrics) == {"acc1", "acc5", "mean_per_class_recall"}


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (
            {**CIFAR, "protocol": "mieb-zero-shot", "task_options": {"templates": ["a {}."]}},
            r"mieb-zero-shot uses its one prompt 'a photo of a \{\}\.'; drop the templates",
        ),
        (
            {"model": MODEL, "task": "retrieval", "data": "flickr8k", "data_options": {"test_images": 6}},
            r"has 6 images, fewer than recall@10 ranks; score a larger split \(data_options.test_images\)",
        ),
    ],
)
def test_a_protocol_mistake_is_one_line_before_any_encoding(clip, recipe, message):
    name = recipe.get("protocol", "clip-benchmark-retrieval")
    with pytest.raises(InputError, match=message):  # zoo run: with the recipe, before the backbone loads
        check_recipe(validate({**recipe, "protocol": name}, "test"))
    task = prepare(validate(recipe, "test"), clip)
    with pytest.raises(InputError, match=message):  # the Python API: before anything is embedded
        evaluate_protocol(get_protocol(name), task, "test")


def test_the_zero_shot_protocols_are_listed_with_their_sources():
    for name in ("mieb-zero-shot", "clip-benchmark-zero-shot", "clip-benchmark-retrieval"):
        protocol = PROTOCOLS[name]
        assert (
            protocol.mode == "zero-shot"
            and protocol.source
            and json.loads(json.dumps(protocol.record())) == protocol.record()
        )
