"""Classification metrics on predicted and true class ids (checked against scikit-learn in the tests)."""

from __future__ import annotations

from typing import Any

import torch


def confusion(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[true, predicted] counts."""
    index = targets.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_metrics(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 (the unweighted mean of per-class F1 over classes present in
    targets or predictions, as scikit-learn's ``f1_score(average='macro')`` with its default labels)."""
    matrix = confusion(preds, targets, num_classes).double()
    true_positive = matrix.diag()
    predicted, actual = matrix.sum(0), matrix.sum(1)
    f1 = torch.where(predicted + actual > 0, 2 * true_positive / (predicted + actual).clamp(min=1), 0.0)
    present = (predicted + actual) > 0
    return {
        "accuracy": float(true_positive.sum() / matrix.sum().clamp(min=1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def majority_share(labels: Any) -> float:
    """The accuracy of always answering the most common label: the bar a classifier must clear."""
    from collections import Counter

    counts = Counter(int(label) for label in labels)
    return max(counts.values()) / sum(counts.values()) if counts else 0.0
