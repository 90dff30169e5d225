"""Named evaluation protocols: the procedures leaderboards publish numbers under, as data a recipe selects.

A zoo linear probe trains its own head on its own split, so its number is honest but is not the number
MTEB prints for the same model and data. A recipe with ``protocol: mteb-classification`` is scored
instead exactly as MTEB scores it: the same draws of training examples, the same classifier with the
same settings, the same metrics. The tests hold each protocol to the anchor's own evaluator (the
installed ``mteb`` package) on the same embeddings.

A `Protocol` is data (its parameters, its source, the task it evaluates); the few `METHODS` are the
algorithms those parameters drive. Every result records the protocol it was made under.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.errors import InputError
from zoo.signatures import nearest_key_hint
from zoo.tasks.clip_benchmark_methods import hit_rate_retrieval, prompt_ensemble
from zoo.tasks.mteb_methods import Scored, cosine_correlation, few_shot_logistic, single_prompt

TRAINING_METHODS = ("few-shot-logistic",)


@dataclass(frozen=True)
class Protocol:
    """One published evaluation procedure: ``method`` (a key of `METHODS`) run with ``params``."""

    name: str
    task: str  # the registered task whose frozen embeddings it scores
    mode: str  # the task's mode that provides them without training
    method: str
    primary_metric: str
    source: str  # whose procedure, and which version of it
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # the protocol's metrics named as the task names the same quantity, for its chance level
    same_as: Mapping[str, str] = field(default_factory=dict)

    @property
    def draws_training_examples(self) -> bool:
        """Whether it fits something on examples drawn from the train split (MTEB's few-shot logistic
        regression); the other protocols score the test split alone."""
        return self.method in TRAINING_METHODS

    def chance(self, task_chance: Mapping[str, float]) -> dict[str, float]:
        """The task's chance levels, with the protocol's own names for the same metrics added."""
        renamed = {ours: task_chance[theirs] for ours, theirs in self.same_as.items() if theirs in task_chance}
        return {**task_chance, **renamed}

    def record(self) -> dict[str, Any]:
        """What a result stores about the protocol, enough to redo it."""
        return {"name": self.name, "source": self.source, "method": self.method, "params": plain(self.params)}


def plain(value: Any) -> Any:
    """``value`` as JSON holds it (tuples as lists, mappings as dicts): a result read back equals it."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


# clip_benchmark 1.6.2's prompt ensembles (datasets/en_zeroshot_classification_templates.json), its "{c}"
# written "{}"; keyed by zoo's data set name. Its class names for these sets are the data's folder names
# (torchvision's CIFAR10.classes), so CLIP_BENCHMARK_CLASSNAMES renames nothing yet.
CLIP_BENCHMARK_TEMPLATES: dict[str, tuple[str, ...]] = {
    "cifar10": (
        "a photo of a {}.",
        "a blurry photo of a {}.",
        "a black and white photo of a {}.",
        "a low contrast photo of a {}.",
        "a high contrast photo of a {}.",
        "a bad photo of a {}.",
        "a good photo of a {}.",
        "a photo of a small {}.",
        "a photo of a big {}.",
        "a photo of the {}.",
        "a blurry photo of the {}.",
        "a black and white photo of the {}.",
        "a low contrast photo of the {}.",
        "a high contrast photo of the {}.",
        "a bad photo of the {}.",
        "a good photo of the {}.",
        "a photo of the small {}.",
        "a photo of the big {}.",
    ),
}
CLIP_BENCHMARK_CLASSNAMES: dict[str, dict[str, str]] = {"cifar10": {}}  # folder name -> clip_benchmark's name


PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol(
            name="mteb-classification",
            task="text-classification",
            mode="linear-probe",
            method="few-shot-logistic",
            primary_metric="accuracy",
            source="MTEB AbsTaskClassification (mteb 1.12 as published; unchanged in mteb 2)",
            description="10 experiments, each a LogisticRegression(max_iter=100, random_state=42) on 8 "
            "training examples per label drawn as MTEB draws them, scored on the whole test split",
            params={"n_experiments": 10, "samples_per_label": 8, "max_iter": 100, "seed": 42},
        ),
        Protocol(
            name="mieb-linear-probe",
            task="image-classification",
            mode="linear-probe",
            method="few-shot-logistic",
            primary_metric="accuracy",
            source="MIEB image classification (mteb 2 AbsTaskClassification, as its Imagenet1k task sets it)",
            description="5 experiments, each a LogisticRegression(max_iter=100, random_state=42) on 16 "
            "training images per label, scored on the whole test split",
            params={"n_experiments": 5, "samples_per_label": 16, "max_iter": 100, "seed": 42},
        ),
        Protocol(
            name="mteb-sts",
            task="semantic-similarity",
            mode="zero-shot",
            method="cosine-correlation",
            primary_metric="cosine_spearman",
            source="MTEB AbsTaskSTS (mteb 1.12 as published; unchanged in mteb 2)",
            description="Spearman and Pearson correlation of the cosine similarity of each pair's "
            "embeddings with the gold scores (normalised to 0-1), on the whole test split",
            params={},
        ),
        Protocol(
            name="mieb-zero-shot",
            task="zero-shot-classification",
            mode="zero-shot",
            method="single-prompt",
            primary_metric="accuracy",
            source="MIEB zero-shot classification (mteb 2.26 AbsTaskZeroShotClassification, as its "
            "CIFAR10ZeroShot task sets it)",
            description="one prompt per class, 'a photo of a {}.' with the data's class name; each image "
            "takes the class of highest cosine similarity; scikit-learn's accuracy, F1, precision and recall "
            "on the whole test split",
            params={"template": "a photo of a {}.", "scores": "cosine"},
        ),
        Protocol(
            name="clip-benchmark-zero-shot",
            task="zero-shot-classification",
            mode="zero-shot",
            method="prompt-ensemble",
            primary_metric="acc1",
            source="clip_benchmark 1.6.2 zero-shot classification (metrics/zeroshot_classification.py)",
            description="each class's prompts from clip_benchmark's ensemble for the data set, embedded, "
            "normalised, averaged and normalised again; logits 100 x cosine; top-1, top-5 and mean per-class "
            "recall on the whole test split",
            params={
                "templates": CLIP_BENCHMARK_TEMPLATES,
                "classnames": CLIP_BENCHMARK_CLASSNAMES,
                "logit_scale": 100.0,
                "topk": (1, 5),
            },
            same_as={"acc1": "accuracy"},
        ),
        Protocol(
            name="clip-benchmark-retrieval",
            task="retrieval",
            mode="zero-shot",
            method="hit-rate-retrieval",
            primary_metric="image_retrieval_recall@1",
            source="clip_benchmark 1.6.2 zero-shot retrieval (metrics/zeroshot_retrieval.py)",
            description="cosine similarity of every caption with every image; recall@K as clip_benchmark "
            "reports it: the share of queries with any relevant item in torch.topk's K (image_retrieval: "
            "caption -> its image; text_retrieval: image -> any of its captions), on the whole test split",
            params={"recall_k": (1, 5, 10)},
            same_as={
                **{f"image_retrieval_recall@{k}": f"text->image R@{k}" for k in (1, 5, 10)},
                **{f"text_retrieval_recall@{k}": f"image->text R@{k}" for k in (1, 5, 10)},
            },
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (an InputError naming the nearest ones otherwise)."""
    if name not in PROTOCOLS:
        hint = nearest_key_hint(name, PROTOCOLS, f"the protocols: {', '.join(PROTOCOLS)}")
        raise InputError(f"protocol: there is no protocol {name!r}; {hint} (zoo protocols lists them)")
    return PROTOCOLS[name]


def evaluate(
    protocol: Protocol, task: Any, split: str
) -> tuple[dict[str, float], dict[str, Any], dict[str, torch.Tensor]]:
    """Metrics of ``task``'s frozen embeddings on ``split`` under ``protocol``, the protocol's record
    (with the per-experiment scores of protocols that repeat an experiment), and the per-item outputs
    its headline metric is recomputed from (`zoo.tasks.uncertainty.item_metrics`) for its interval."""
    check_data(protocol, task.data, task.options, split)
    metrics, details, outputs = METHODS[protocol.method](task, split, protocol.params)
    return metrics, {**protocol.record(), **details}, outputs


def check_data(protocol: Protocol, data: Any, options: Mapping[str, Any], split: str) -> None:
    """What ``protocol`` needs of the data set and the task's options, checked before anything is
    embedded (`zoo run` checks it with the recipe): an InputError in one line naming the fix."""
    params = protocol.params
    if protocol.method == "single-prompt" and options.get("templates"):
        raise InputError(
            f"task_options.templates: protocol {protocol.name} uses its one prompt {params['template']!r}; "
            "drop the templates, or use protocol clip-benchmark-zero-shot, which takes them"
        )
    if protocol.method == "prompt-ensemble" and not options.get("templates") and data.name not in params["templates"]:
        raise InputError(
            f"protocol {protocol.name}: clip_benchmark has no prompt templates for data {data.name!r} (it has "
            f"them for {', '.join(params['templates'])}); give yours with task_options.templates, e.g. "
            '["a photo of a {}."]'
        )
    if protocol.method == "hit-rate-retrieval" and split in data.splits:
        count, deepest = len(data.split(split).inputs), max(params["recall_k"])
        if deepest > count:
            raise InputError(
                f"protocol {protocol.name}: {data.name} ({split}) has {count} images, fewer than recall@{deepest} "
                "ranks; score a larger split (data_options.test_images)"
            )


# -- the methods (zoo.tasks.mteb_methods, zoo.tasks.clip_benchmark_methods) ------------------------------


METHODS: dict[str, Callable[[Any, str, Mapping[str, Any]], Scored]] = {
    "few-shot-logistic": few_shot_logistic,
    "cosine-correlation": cosine_correlation,
    "single-prompt": single_prompt,
    "prompt-ensemble": prompt_ensemble,
    "hit-rate-retrieval": hit_rate_retrieval,
}
