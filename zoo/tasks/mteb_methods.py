"""MTEB's and MIEB's evaluation procedures, as the `zoo.tasks.protocols` they name run them.

Each method takes a task (its frozen embeddings), a split and the protocol's parameters, and returns
the metrics, what a result records of the run (per-experiment scores, prompts, item counts) and the
per-item outputs the headline metric is a function of (``METRIC item`` tensors whose mean is the
metric, or ``cosine`` and ``gold`` for the correlations), which `zoo.tasks.uncertainty` resamples for
the error bars. The tests hold every number to the installed ``mteb`` package's own evaluators.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

Scored = tuple[dict[str, float], dict[str, Any], dict[str, torch.Tensor]]


def few_shot_logistic(task: Any, split: str, params: Mapping[str, Any]) -> Scored:
    """MTEB's classification: per experiment, undersample the train split to ``samples_per_label``
    examples of each label, fit a logistic regression, score the whole test split; metrics averaged.
    Per item: the share of experiments that got it right (its mean over items is the accuracy)."""
    labels = task.data.split("train").class_labels()
    draws = mteb_undersamples(labels, params["samples_per_label"], params["n_experiments"], params["seed"])
    union = sorted(set().union(*draws))  # as MTEB does, only the drawn training examples are embedded
    train_x, train_y = (np.asarray(t) for t in task.frozen_features("train", union))
    row = {index: position for position, index in enumerate(union)}
    test_x, test_y = (np.asarray(t) for t in task.frozen_features(split))
    scores, right = [], np.zeros(len(test_y))
    for chosen in draws:
        rows = [row[index] for index in chosen]
        predicted = fit_and_predict(train_x[rows], train_y[rows], test_x, params)
        scores.append(classification_scores(test_y, predicted))
        right += predicted == test_y
    metrics = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    details = {"scores_per_experiment": scores, "train_items": len(union), "test_items": len(test_y)}
    outputs = {"accuracy item": torch.from_numpy(right / len(draws)), "targets": torch.as_tensor(test_y)}
    return metrics, details, outputs


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


def cosine_correlation(task: Any, split: str, params: Mapping[str, Any]) -> Scored:
    """MTEB's STS: correlations of the pairs' cosine similarities with the gold scores."""
    first, second, gold = task.pair_embeddings(split)
    cosine = pair_cosines(first, second)
    outputs = {"cosine": torch.from_numpy(cosine), "gold": torch.as_tensor(gold, dtype=torch.float64)}
    return correlation_scores(cosine, gold), {"test_items": len(gold)}, outputs


def pair_cosines(first: Any, second: Any) -> np.ndarray:
    """Each pair's cosine similarity as MTEB computes it (scikit-learn's paired cosine distance), in
    float64 as MTEB's lists are: SciPy would otherwise correlate in float32."""
    from sklearn.metrics.pairwise import paired_cosine_distances

    return (1 - paired_cosine_distances(np.asarray(first), np.asarray(second))).astype(np.float64)


def correlation_scores(cosine: Any, gold: Sequence[float] | Any) -> dict[str, float]:
    """SciPy's Spearman and Pearson correlation of the cosines with the gold scores (normalised to 0-1
    as MTEB normalises them)."""
    from scipy.stats import pearsonr, spearmanr

    cosine, scores = np.asarray(cosine, dtype=np.float64), np.asarray(gold, dtype=float)
    low, high = scores.min(), scores.max()
    normalised = (scores - low) / (high - low) if high > low else scores
    return {
        "cosine_spearman": float(spearmanr(normalised, cosine)[0]),
        "cosine_pearson": float(pearsonr(normalised, cosine)[0]),
    }


def similarity_scores(first: Any, second: Any, gold: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation of each pair's cosine similarity with its gold score, as MTEB."""
    return correlation_scores(pair_cosines(first, second), gold)


def single_prompt(task: Any, split: str, params: Mapping[str, Any]) -> Scored:
    """MIEB's zero-shot classification: the class prompts embedded in one call, each image's scores
    against them (cosine, or MIEB's softmax of 100 x cosine), the best-scored class predicted."""
    import torch.nn.functional as F

    names = list(task.data.label_names)
    prompts = [params["template"].format(name) for name in names]
    classes = task.encode_prompts(prompts)
    images, truth = task.image_embeddings(split)
    scores = F.normalize(images, p=2, dim=1) @ F.normalize(classes, p=2, dim=1).transpose(0, 1)
    if params["scores"] == "softmax":  # MIEB's tasks whose modalities list the image first
        scores = (scores * 100).softmax(dim=-1)
    metrics = zero_shot_scores(truth.numpy(), scores.numpy())
    outputs = {"accuracy item": (scores.argmax(1) == truth).double(), "targets": truth}
    return metrics, {"classnames": names, "prompts": prompts, "test_items": len(truth)}, outputs


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
