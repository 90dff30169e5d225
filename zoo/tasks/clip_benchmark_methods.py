"""CLIP_benchmark's zero-shot classification and retrieval, as the `zoo.tasks.protocols` they name run them.

Same shape as `zoo.tasks.mteb_methods`: metrics, what a result records, and per-item outputs for the
error bars. The tests hold every number to the installed ``clip_benchmark`` package's own functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zoo.tasks.mteb_methods import Scored


def prompt_ensemble(task: Any, split: str, params: Mapping[str, Any]) -> Scored:
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
    outputs = {"acc1 item": (logits.argmax(1) == truth).double(), "targets": truth}
    return metrics, {**details, "test_items": len(truth)}, outputs


def ensemble_templates(task: Any, params: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The prompt templates and where they came from: the recipe's ``task_options.templates`` if given
    (clip_benchmark's custom templates), else clip_benchmark's for the data set (`check_data` has made
    sure it has some)."""
    own = task.options.get("templates")
    if own:
        return tuple(own), "task_options.templates"
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


def hit_rate_retrieval(task: Any, split: str, params: Mapping[str, Any]) -> Scored:
    """clip_benchmark's retrieval: scores of normalised captions against normalised images; per query,
    whether any relevant item is among ``torch.topk``'s K, averaged."""
    import torch
    import torch.nn.functional as F

    images, texts, image_of = task.embeddings(split)
    scores = F.normalize(texts, dim=-1) @ F.normalize(images, dim=-1).t()
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), torch.as_tensor(image_of)] = True
    metrics, outputs = {}, {}
    for k in params["recall_k"]:
        hits = hits_in_top_k(scores, positive, k)
        metrics[f"image_retrieval_recall@{k}"] = hits.float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = hits_in_top_k(scores.T, positive.T, k).float().mean().item()
        outputs[f"image_retrieval_recall@{k} item"] = hits.double()  # per caption query (the headline's items)
    return metrics, {"test_items": {"images": len(images), "captions": len(texts)}}, outputs


def hits_in_top_k(scores: Any, positive: Any, k: int) -> Any:
    """Per row (query): whether a positive column is among the row's ``torch.topk`` K."""
    top = scores.topk(k, dim=1)[1]
    return positive.gather(1, top).any(dim=1)
