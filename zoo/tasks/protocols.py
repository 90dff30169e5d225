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

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import InputError
from zoo.signatures import nearest_key_hint


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
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (an InputError naming the nearest ones otherwise)."""
    if name not in PROTOCOLS:
        hint = nearest_key_hint(name, PROTOCOLS, f"the protocols: {', '.join(PROTOCOLS)}")
        raise InputError(f"protocol: there is no protocol {name!r}; {hint} (zoo protocols lists them)")
    return PROTOCOLS[name]


def evaluate(protocol: Protocol, task: Any, split: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of ``task``'s frozen embeddings on ``split`` under ``protocol``, and the protocol's record
    (with the per-experiment scores of protocols that repeat an experiment)."""
    metrics, details = METHODS[protocol.method](task, split, protocol.params)
    return metrics, {**protocol.record(), **details}


# -- the methods -------------------------------------------------------------------------------------


def few_shot_logistic(task: Any, split: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """MTEB's classification: per experiment, undersample the train split to ``samples_per_label``
    examples of each label, fit a logistic regression, score the whole test split; metrics averaged."""
    labels = task.data.split("train").class_labels()
    draws = mteb_undersamples(labels, params["samples_per_label"], params["n_experiments"], params["seed"])
    union = sorted(set().union(*draws))  # as MTEB does, only the drawn training examples are embedded
    train_x, train_y = (np.asarray(t) for t in task.frozen_features("train", union))
    row = {index: position for position, index in enumerate(union)}
    test_x, test_y = (np.asarray(t) for t in task.frozen_features(split))
    scores = []
    for chosen in draws:
        rows = [row[index] for index in chosen]
        scores.append(classification_scores(test_y, fit_and_predict(train_x[rows], train_y[rows], test_x, params)))
    metrics = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    return metrics, {"scores_per_experiment": scores, "train_items": len(union), "test_items": len(test_y)}


def mteb_undersamples(labels: Sequence[int], per_label: int, experiments: int, seed: int) -> list[list[int]]:
    """The training indices of each experiment, drawn as MTEB draws them: a fresh
    ``RandomState(seed)`` shuffles the previous experiment's order again (so each experiment differs),
    then the first ``per_label`` indices of each label are kept, in the shuffled order."""
    order = list(range(len(labels)))
    draws = []
    for _ in range(experiments):
        np.random.RandomState(seed).shuffle(order)
        taken: dict[Any, int] = defaultdict(int)
        chosen = []
        for index in order:
            if taken[labels[index]] < per_label:
                chosen.append(index)
                taken[labels[index]] += 1
        draws.append(chosen)
    return draws


def fit_and_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, params: Mapping[str, Any]
) -> np.ndarray:
    """Predictions of MTEB's classifier, trained on the drawn examples (in the order drawn)."""
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(max_iter=params["max_iter"], random_state=params["seed"])
    classifier.fit(train_x, train_y)
    return classifier.predict(test_x)


def classification_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MTEB's classification metrics (scikit-learn's), under zoo's metric names; ``ap`` for two classes."""
    from sklearn import metrics

    scores = {
        "accuracy": metrics.accuracy_score(truth, predicted),
        "macro_f1": metrics.f1_score(truth, predicted, average="macro"),
        "weighted_f1": metrics.f1_score(truth, predicted, average="weighted"),
        "macro_precision": metrics.precision_score(truth, predicted, average="macro"),
        "macro_recall": metrics.recall_score(truth, predicted, average="macro"),
    }
    if len(np.unique(truth)) == 2:
        scores["ap"] = metrics.average_precision_score(truth, predicted, average="macro")
    return {key: float(value) for key, value in scores.items()}


def cosine_correlation(task: Any, split: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """MTEB's STS: correlations of the pairs' cosine similarities with the gold scores."""
    first, second, gold = task.pair_embeddings(split)
    return similarity_scores(first, second, gold), {"test_items": len(gold)}


def similarity_scores(first: Any, second: Any, gold: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation of each pair's cosine similarity with its gold score, computed
    as MTEB computes them (scikit-learn's paired cosine distance, SciPy's correlations)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics.pairwise import paired_cosine_distances

    # float64 from here on, as MTEB's lists are: SciPy would otherwise correlate in float32
    cosine = (1 - paired_cosine_distances(np.asarray(first), np.asarray(second))).astype(np.float64)
    scores = np.asarray(gold, dtype=float)
    low, high = scores.min(), scores.max()
    normalised = (scores - low) / (high - low) if high > low else scores
    return {
        "cosine_spearman": float(spearmanr(normalised, cosine)[0]),
        "cosine_pearson": float(pearsonr(normalised, cosine)[0]),
    }


def single_prompt(task: Any, split: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """MIEB's zero-shot classification: the class prompts embedded in one call, each image's scores
    against them (cosine, or MIEB's softmax of 100 x cosine), the best-scored class predicted."""
    import torch.nn.functional as F

    if task.options.get("templates"):
        raise InputError(
            f"task_options.templates: protocol mieb-zero-shot uses its one prompt {params['template']!r}; "
            "drop the templates, or use protocol clip-benchmark-zero-shot, which takes them"
        )
    names = list(task.data.label_names)
    prompts = [params["template"].format(name) for name in names]
    classes = task.encode_prompts(prompts)
    images, truth = task.image_embeddings(split)
    scores = F.normalize(images, p=2, dim=1) @ F.normalize(classes, p=2, dim=1).transpose(0, 1)
    if params["scores"] == "softmax":  # MIEB's tasks whose modalities list the image first
        scores = (scores * 100).softmax(dim=-1)
    metrics = zero_shot_scores(truth.numpy(), scores.numpy())
    return metrics, {"classnames": names, "prompts": prompts, "test_items": len(truth)}


def zero_shot_scores(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """MIEB's zero-shot metrics (scikit-learn's) under zoo's names; ``ap`` from the second class's
    scores when the split has two classes."""
    from sklearn import metrics

    predicted = scores.argmax(1)
    out = classification_scores(truth, predicted)
    out["weighted_precision"] = float(metrics.precision_score(truth, predicted, average="weighted"))
    out["weighted_recall"] = float(metrics.recall_score(truth, predicted, average="weighted"))
    out.pop("ap", None)  # the few-shot protocols' ap scores predictions; MIEB's scores the similarities
    if len(np.unique(truth)) == 2:
        out["ap"] = float(metrics.average_precision_score(truth, scores[:, 1], average="macro"))
        out["ap_weighted"] = float(metrics.average_precision_score(truth, scores[:, 1], average="weighted"))
    return out


def prompt_ensemble(task: Any, split: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """clip_benchmark's zero-shot classification: a classifier of averaged prompt embeddings, logits of
    the normalised image embeddings against it, its top-K accuracies and mean per-class recall."""
    import torch
    import torch.nn.functional as F

    templates, where = ensemble_templates(task, params)
    renames = params["classnames"].get(task.data.name, {})
    names = [renames.get(name, name) for name in task.data.label_names]
    if where == "task_options.templates":  # a user's own set: zoo's convention for folder names
        names = [name.replace("_", " ") for name in names]
    rows = []
    for name in names:  # as clip_benchmark's zero_shot_classifier: one encode call per class
        embedded = F.normalize(task.encode_prompts([t.format(name) for t in templates]), dim=-1).mean(dim=0)
        rows.append(embedded / embedded.norm())
    classifier = torch.stack(rows, dim=1)
    images, truth = task.image_embeddings(split)
    logits = params["logit_scale"] * F.normalize(images, dim=-1) @ classifier
    metrics = top_k_scores(logits, truth, params["topk"])
    details = {"templates": list(templates), "templates_from": where, "classnames": names}
    return metrics, {**details, "test_items": len(truth)}


def ensemble_templates(task: Any, params: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The prompt templates: the recipe's ``task_options.templates`` if given (clip_benchmark's custom
    templates), else clip_benchmark's for the data set; an InputError for a set it has none for."""
    own = task.options.get("templates")
    if own:
        return tuple(own), "task_options.templates"
    if task.data.name not in params["templates"]:
        raise InputError(
            f"protocol clip-benchmark-zero-shot: clip_benchmark has no prompt templates for data "
            f"{task.data.name!r} (it has them for {', '.join(params['templates'])}); give yours with "
            'task_options.templates, e.g. ["a photo of a {}."]'
        )
    return tuple(params["templates"][task.data.name]), f"clip_benchmark {task.data.name}"


def top_k_scores(logits: Any, truth: Any, topk: Sequence[int]) -> dict[str, float]:
    """clip_benchmark's metrics of [N, C] logits: acc1 and acc5 from ``torch.topk`` (acc5 only with at
    least 5 classes; clip_benchmark reports NaN), mean per-class recall from scikit-learn."""
    from sklearn.metrics import balanced_accuracy_score

    ks = [k for k in topk if k == 1 or logits.shape[1] >= 5]
    pred = logits.topk(max(ks), 1, True, True)[1].t()
    correct = pred.eq(truth.view(1, -1).expand_as(pred))
    out = {f"acc{k}": float(correct[:k].reshape(-1).float().sum(0, keepdim=True).numpy()[0]) / len(truth) for k in ks}
    out["mean_per_class_recall"] = float(balanced_accuracy_score(truth, logits.argmax(axis=1)))
    return out


def hit_rate_retrieval(task: Any, split: str, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """clip_benchmark's retrieval: scores of normalised captions against normalised images; per query,
    whether any relevant item is among ``torch.topk``'s K, averaged."""
    import torch
    import torch.nn.functional as F

    count = len(task.data.split(split).inputs)
    if max(params["recall_k"]) > count:
        raise InputError(
            f"protocol clip-benchmark-retrieval: {task.data.name} ({split}) has {count} images, fewer than "
            f"recall@{max(params['recall_k'])} ranks; score a larger split (data_options.test_images)"
        )
    images, texts, image_of = task.embeddings(split)
    scores = F.normalize(texts, dim=-1) @ F.normalize(images, dim=-1).t()
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), torch.as_tensor(image_of)] = True
    metrics = {}
    for k in params["recall_k"]:
        metrics[f"image_retrieval_recall@{k}"] = any_in_top_k(scores, positive, k)
        metrics[f"text_retrieval_recall@{k}"] = any_in_top_k(scores.T, positive.T, k)
    return metrics, {"test_items": {"images": len(images), "captions": len(texts)}}


def any_in_top_k(scores: Any, positive: Any, k: int) -> float:
    """The share of rows (queries) with a positive column among the row's ``torch.topk`` K."""
    top = scores.topk(k, dim=1)[1]
    return positive.gather(1, top).any(dim=1).float().mean().item()


METHODS: dict[str, Callable[[Any, str, Mapping[str, Any]], tuple[dict[str, float], dict[str, Any]]]] = {
    "few-shot-logistic": few_shot_logistic,
    "cosine-correlation": cosine_correlation,
    "single-prompt": single_prompt,
    "prompt-ensemble": prompt_ensemble,
    "hit-rate-retrieval": hit_rate_retrieval,
}
