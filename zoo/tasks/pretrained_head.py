"""``mode: pretrained-head`` of image classification: a backbone's own pretrained classifier, scored as
it is (nothing trains) on a labelled folder whose classes map onto the classifier's.

A data class (a class folder) maps onto classifier classes by its own name, a WordNet id ("n02123045")
or one of a class's names ("tabby", "Tabby_Cat": case and ``_``/space do not matter, any of the
comma-separated synonyms counts), or through ``task_options.class_map`` ({folder: [id or name, ...]}),
which may map one folder onto several classes (CIFAR-10's "cat" onto ImageNet's five domestic cats).
A prediction is correct when it is any of the classes its folder maps onto. Top-1 and top-5 are over
all the classifier's classes (as ImageNet accuracy is); ``mapped_accuracy`` picks among the data's
classes only (each scored by its best mapped logit), like a classifier restricted to the label set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from zoo.errors import InputError
from zoo.recipes import RecipeError

if TYPE_CHECKING:
    from zoo.backbone import Backbone, PretrainedClasses

MODE = "pretrained-head"


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def class_index(classes: PretrainedClasses) -> dict[str, list[int]]:
    """Every way of naming a class (its id, each of its synonyms, normalised) -> the classes it names."""
    index: dict[str, list[int]] = {}
    for position, (identity, names) in enumerate(zip(classes.ids, classes.names, strict=True)):
        for key in dict.fromkeys([_key(identity), *(_key(name) for name in names.split(",") if name.strip())]):
            index.setdefault(key, []).append(position)
    return index


def _resolve(name: str, index: Mapping[str, list[int]], classes: PretrainedClasses, where: str) -> int | None:
    """The class ``name`` names; None for none; a RecipeError for a name that several classes share."""
    found = index.get(_key(name), [])
    if len(found) > 1:
        which = ", ".join(f"{classes.ids[i]} ({classes.names[i]})" for i in found)
        raise RecipeError(f"{where}: {name!r} names {len(found)} {classes.label_set} classes: {which}; use one's id")
    return found[0] if found else None


def map_classes(
    label_names: Sequence[str], classes: PretrainedClasses, class_map: Any, backbone: str
) -> list[list[int]]:
    """For each data class, the classifier classes it maps onto (see the module's docstring); a
    RecipeError that names every class mapping nowhere, and the option that fixes it."""
    class_map = {} if class_map is None else class_map
    if not isinstance(class_map, Mapping):
        raise RecipeError("task_options.class_map: a mapping {class folder: [WordNet id or class name, ...]}")
    unknown = sorted(set(class_map) - set(label_names))
    if unknown:
        raise RecipeError(
            f"task_options.class_map: {', '.join(map(str, unknown))} not among the data's classes "
            f"({', '.join(label_names)})"
        )
    index = class_index(classes)
    mapped: list[list[int]] = []
    unmapped, unknown_targets = [], []
    for label in label_names:
        if label in class_map:
            targets = class_map[label]
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                raise RecipeError(f"task_options.class_map.{label}: a list of WordNet ids or class names")
            where = f"task_options.class_map.{label}"
            found = [_resolve(target, index, classes, where) for target in targets]
            unknown_targets += [f"{label}: {t!r}" for t, i in zip(targets, found, strict=True) if i is None]
            mapped.append(sorted({i for i in found if i is not None}))
        else:
            position = _resolve(label, index, classes, f"class folder {label!r}")
            mapped.append([] if position is None else [position])
            if position is None:
                unmapped.append(label)
    if unknown_targets:
        raise RecipeError(
            f"task_options.class_map: {'; '.join(unknown_targets)} is no {classes.label_set or backbone} class "
            "(a WordNet id like n02123045, or a class name)"
        )
    if unmapped:
        raise RecipeError(
            f"pretrained-head: class folder(s) {', '.join(unmapped)} map onto none of {backbone}'s "
            f"{len(classes):,} {classes.label_set} classes; map them with task_options.class_map "
            "({folder: [WordNet id or class name, ...]})"
        )
    return mapped


def pretrained_classes_of(backbone: Backbone) -> PretrainedClasses:
    """The backbone's pretrained classifier's classes; a one-line error for a backbone without one."""
    classes = backbone.pretrained_classes
    if classes is None:
        raise InputError(
            f"mode pretrained-head: {backbone.name} has no pretrained classifier (it needs weights that come "
            "with one, e.g. vision/efficientnet-lite0's ImageNet-1k head); use mode linear-probe or finetune"
        )
    return classes


def head_mapping(
    backbone: Backbone, dataset: Any, mode: str, options: Mapping[str, Any]
) -> tuple[PretrainedClasses | None, list[list[int]]]:
    """For mode pretrained-head, the classifier's classes and each data class's mapping onto them
    (`map_classes`); (None, []) for another mode, which takes no ``class_map``."""
    if mode != MODE:
        if "class_map" in options:
            raise RecipeError(f"task_options.class_map applies to mode {MODE}, not {mode}")
        return None, []
    classes = pretrained_classes_of(backbone)
    return classes, map_classes(dataset.label_names, classes, options.get("class_map"), backbone.name)


def head_metrics(logits: torch.Tensor, labels: torch.Tensor, mapped: Sequence[Sequence[int]]) -> dict[str, float]:
    """Top-1 and top-5 accuracy over all classes, and the accuracy among the data's classes only."""
    allowed = torch.zeros(len(mapped), logits.shape[1], dtype=torch.bool)
    for label, positions in enumerate(mapped):
        allowed[label, list(positions)] = True
    rows = allowed[labels]  # [N, classes]: the classes that count as right for each image
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = rows.gather(1, top)
    per_label = torch.stack(
        [logits.masked_fill(~allowed[label], float("-inf")).amax(dim=1) for label in range(len(mapped))], dim=1
    )
    return {
        "accuracy": float(hits[:, 0].double().mean()),
        "top5_accuracy": float(hits.any(dim=1).double().mean()),
        "mapped_accuracy": float((per_label.argmax(dim=1) == labels).double().mean()),
    }


def head_predictions(logits: torch.Tensor, labels: torch.Tensor, mapped: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each image's top-1 as a data class: its own where the top-1 is one of its classes, else the first
    data class the top-1 maps onto, else ``len(mapped)`` (none of them); equal to ``labels`` exactly
    where top-1 is right, so per-item accuracy (bootstrap intervals) is top-1 accuracy."""
    owner = torch.full((logits.shape[1],), len(mapped), dtype=torch.long)
    for label in reversed(range(len(mapped))):
        owner[list(mapped[label])] = label
    top = logits.argmax(dim=1)
    right = torch.tensor([int(t) in mapped[int(y)] for t, y in zip(top, labels, strict=True)], dtype=torch.bool)
    return torch.where(right, labels.long(), owner[top])


def head_chance(labels: Sequence[int], mapped: Sequence[Sequence[int]], num_classes: int) -> dict[str, float]:
    """What each metric reads for a classifier answering classes uniformly at random."""
    if len(labels) == 0:
        return {}

    def top(k: int, right: int) -> float:  # P(one of k distinct random classes is among `right` ones)
        wrong = 1.0
        for j in range(min(k, num_classes)):
            wrong *= max(0, num_classes - right - j) / (num_classes - j)
        return 1 - wrong

    return {
        "accuracy": sum(top(1, len(mapped[label])) for label in labels) / len(labels),
        "top5_accuracy": sum(top(5, len(mapped[label])) for label in labels) / len(labels),
        "mapped_accuracy": 1 / len(mapped),
    }


def describe_map(label_names: Sequence[str], classes: PretrainedClasses, mapped: Sequence[Sequence[int]]) -> dict:
    """What the results file records: each data class and the classifier classes (ids) it maps onto."""
    return {
        "label_set": classes.label_set,
        "classifier_classes": len(classes),
        "class_map": {label: [classes.ids[i] for i in mapped[n]] for n, label in enumerate(label_names)},
    }
