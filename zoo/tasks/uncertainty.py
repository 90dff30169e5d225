"""Error bars and significance from per-item outputs: a percentile bootstrap over test items.

A split's per-item outputs are the tensors its metrics came from, items first (classification:
``preds`` and ``targets``; retrieval: ``DIRECTION rank``, each query's rank of its first relevant
item). Resampling the items with replacement and recomputing the metric gives its sampling spread:
`bootstrap_interval` for one result, `paired_bootstrap` for the difference of two results on the
same items (the same resampled items for both, as lm-evaluation-harness compares two models).
Several seeds: each seed's items are resampled with their own draw and each resample's metric is the
mean over seeds. A metric that is a mean over items (accuracy, R@K) is resampled with one index
matrix; any other is recomputed resample by resample. Runs save their outputs with `save_items`;
`zoo compare` reads them back with `load_items`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

Outputs = Mapping[str, torch.Tensor]
MetricFn = Callable[[Outputs], Mapping[str, Any]]

RESAMPLES = 1000
LEVEL = 0.95
_CELLS_PER_CHUNK = 4_000_000  # resamples x items drawn at once (32 MB of indices)
_RANK = " rank"
_ITEM = " item"


class ItemsError(ValueError):
    """Per-item outputs that cannot be resampled (no items, ragged tensors) or paired (different items)."""


def item_metrics(outputs: Outputs) -> dict[str, float]:
    """Metrics recomputed from zoo's per-item outputs: accuracy and macro-F1 from ``preds`` and
    ``targets``; R@1/5/10 and median rank from each ``DIRECTION rank``; Spearman and Pearson from
    ``cosine`` and ``gold``; ``METRIC`` as the mean of a ``METRIC item`` tensor (a protocol's headline:
    MTEB's accuracy averaged over experiments, clip_benchmark's acc1 or hit rate). What a compare
    recomputes."""
    from zoo.tasks.metrics import classification_metrics

    metrics: dict[str, float] = {
        key[: -len(_ITEM)]: float(values.double().mean()) for key, values in outputs.items() if key.endswith(_ITEM)
    }
    if "cosine" in outputs and "gold" in outputs:
        from zoo.tasks.mteb_methods import correlation_scores

        metrics.update(correlation_scores(outputs["cosine"].numpy(), outputs["gold"].numpy()))
    if "preds" in outputs and "targets" in outputs:
        preds, targets = outputs["preds"].long(), outputs["targets"].long()
        classes = int(torch.cat([preds, targets]).max()) + 1 if len(preds) else 1
        metrics.update(classification_metrics(preds, targets, classes))
    for key, ranks in outputs.items():
        if key.endswith(_RANK) and len(ranks):
            direction = key[: -len(_RANK)]
            first = ranks.double()
            metrics.update({f"{direction} R@{k}": float((first <= k).double().mean()) for k in (1, 5, 10)})
            metrics[f"{direction} median_rank"] = float(first.median())
    return metrics


def item_scores(outputs: Outputs, metric: str) -> torch.Tensor | None:
    """Per-item values whose mean is ``metric`` (accuracy: correct or not; R@K: rank <= K), so that it
    is resampled with one index matrix; None when the metric is not such a mean of these outputs."""
    if metric + _ITEM in outputs:
        return outputs[metric + _ITEM].double()
    if metric == "accuracy" and "preds" in outputs and "targets" in outputs:
        return (outputs["preds"].long() == outputs["targets"].long()).double()
    found = re.fullmatch(r"(.+) R@(\d+)", metric)
    if found and found[1] + _RANK in outputs:
        return (outputs[found[1] + _RANK].double() <= int(found[2])).double()
    return None


def items_for(outputs: Outputs, metric: str) -> dict[str, torch.Tensor]:
    """The outputs ``metric`` is computed from: a retrieval direction's own (``text->image R@1``: the
    ``text->image ...`` tensors; the other direction has other items), else all; ItemsError when they
    do not share one number of items."""
    direction = metric.rsplit(" ", 1)[0] if "->" in metric else None
    chosen = {k: v for k, v in outputs.items() if direction and k.startswith(direction + " ")} or dict(outputs)
    sizes = {len(v) for v in chosen.values()}
    if len(sizes) != 1:
        raise ItemsError(f"the outputs for {metric} have different numbers of items ({sorted(sizes)})")
    if not sizes.pop():
        raise ItemsError(f"no items to resample for {metric}")
    return chosen


def _size(outputs: Outputs) -> int:
    return len(next(iter(outputs.values())))


def _draws(size: int, resamples: int, seed: int) -> Iterator[torch.Tensor]:
    """Index matrices [chunk, size] of items drawn with replacement, ``resamples`` rows in all."""
    generator = torch.Generator().manual_seed(seed)
    rows = max(1, _CELLS_PER_CHUNK // size)
    for start in range(0, resamples, rows):
        yield torch.randint(size, (min(rows, resamples - start), size), generator=generator)


def _resampled(outputs: Outputs, metric_fn: MetricFn, metric: str, draw: torch.Tensor) -> torch.Tensor:
    """``metric`` on each resample (row of ``draw``)."""
    scores = item_scores(outputs, metric)
    if scores is not None:
        return scores[draw].mean(dim=1)
    return torch.tensor(
        [float(metric_fn({k: v[row] for k, v in outputs.items()})[metric]) for row in draw], dtype=torch.float64
    )


def _per_seed(outputs: Outputs | Sequence[Outputs], metric: str) -> list[dict[str, torch.Tensor]]:
    listed = [outputs] if isinstance(outputs, Mapping) else list(outputs)
    if not listed:
        raise ItemsError("no per-item outputs")
    return [items_for(one, metric) for one in listed]


def _method(sizes: list[int], resamples: int, seed: int, paired: bool = False) -> str:
    what = f"{sizes[0]} test items" if len(set(sizes)) == 1 else f"{'/'.join(map(str, sizes))} test items"
    seeds = f" (each of {len(sizes)} seeds resampled, the mean over seeds)" if len(sizes) > 1 else ""
    kind = "paired percentile bootstrap" if paired else "percentile bootstrap"
    return f"{kind} over {what}{seeds}, {resamples} resamples, seed {seed}"


def _quantiles(samples: torch.Tensor, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = torch.quantile(samples, torch.tensor([tail, 1 - tail], dtype=samples.dtype)).tolist()
    return low, high


def bootstrap_interval(
    outputs: Outputs | Sequence[Outputs],
    metric_fn: MetricFn,
    metric: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """The ``level`` percentile-bootstrap interval of ``metric`` over the test items of ``outputs``
    (one seed's outputs, or a list of several seeds': the interval of their mean), with its method."""
    seeds = _per_seed(outputs, metric)
    total = torch.zeros(resamples, dtype=torch.float64)
    for number, one in enumerate(seeds):
        draws = [_resampled(one, metric_fn, metric, draw) for draw in _draws(_size(one), resamples, seed + number)]
        total += torch.cat(draws)
    low, high = _quantiles(total / len(seeds), level)
    value = sum(float(metric_fn(one)[metric]) for one in seeds) / len(seeds)
    sizes = [_size(one) for one in seeds]
    return {
        "value": value,
        "low": low,
        "high": high,
        "level": level,
        "method": _method(sizes, resamples, seed),
    }


def paired_bootstrap(
    a_outputs: Outputs | Sequence[Outputs],
    b_outputs: Outputs | Sequence[Outputs],
    metric_fn: MetricFn,
    metric: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Whether ``a`` and ``b`` differ in ``metric`` beyond chance: both scored on the same items, each
    resample draws the same items for both. ``difference`` is a - b; ``significant`` when the ``level``
    interval of the difference leaves out zero; ``p_value`` two-sided. Lists pair seed by seed.
    ItemsError when the items differ (in number, or in their labels)."""
    a_seeds, b_seeds = _per_seed(a_outputs, metric), _per_seed(b_outputs, metric)
    if len(a_seeds) != len(b_seeds):
        raise ItemsError(f"{len(a_seeds)} seed(s) against {len(b_seeds)}: pair the seeds both have")
    total = torch.zeros(resamples, dtype=torch.float64)
    for number, (a, b) in enumerate(zip(a_seeds, b_seeds, strict=True)):
        if _size(a) != _size(b):
            raise ItemsError(f"scored on different items ({_size(a)} against {_size(b)})")
        if "targets" in a and "targets" in b and not torch.equal(a["targets"].long(), b["targets"].long()):
            raise ItemsError("scored on different items (their labels differ item by item)")
        for start, draw in _chunks(_draws(_size(a), resamples, seed + number)):
            difference = _resampled(a, metric_fn, metric, draw) - _resampled(b, metric_fn, metric, draw)
            total[start : start + len(draw)] += difference
    samples = total / len(a_seeds)
    low, high = _quantiles(samples, level)
    pairs = zip(a_seeds, b_seeds, strict=True)
    observed = sum(float(metric_fn(a)[metric]) - float(metric_fn(b)[metric]) for a, b in pairs)
    below, above = int((samples <= 0).sum()), int((samples >= 0).sum())
    p_value = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return {
        "difference": observed / len(a_seeds),
        "low": low,
        "high": high,
        "p_value": p_value,
        "significant": not low <= 0 <= high,
        "level": level,
        "method": _method([_size(a) for a in a_seeds], resamples, seed, paired=True),
    }


def _chunks(draws: Iterator[torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
    start = 0
    for draw in draws:
        yield start, draw
        start += len(draw)


def intervals(
    items: Mapping[str, tuple[Outputs, MetricFn] | None], metric: str, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """results.json's ``intervals``: for each scored split, ``metric``'s bootstrap interval (or a
    ``note`` saying why it has none)."""
    out: dict[str, dict[str, Any]] = {}
    for split, entry in items.items():
        if entry is None:
            note = "no per-item outputs: the task returns only metrics for a whole split"
            out[split] = {metric: {"method": None, "note": note}}
            continue
        outputs, metric_fn = entry
        try:
            found = bootstrap_interval(outputs, metric_fn, metric, seed=seed)
        except (ItemsError, KeyError) as exc:
            out[split] = {metric: {"method": None, "note": f"no interval: {exc}"}}
            continue
        out[split] = {metric: {k: v for k, v in found.items() if k != "value"}}
    return out


def save_items(path: Path, outputs: Outputs, split: str, data_fingerprint: str | None) -> None:
    """Write a split's per-item outputs (safetensors, atomically) with the split and data fingerprint
    that say which items they are."""
    from safetensors.torch import save

    from zoo.files import atomic_write

    tensors = {k: v.detach().cpu().contiguous() for k, v in outputs.items()}
    size = {str(len(v)) for v in tensors.values()}
    metadata = {"split": split, "data_fingerprint": data_fingerprint or "", "items": ",".join(sorted(size))}
    payload = save(tensors, metadata=metadata)
    atomic_write(path, lambda handle: handle.write(payload))


def load_items(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """What `save_items` wrote: the outputs and their metadata (tensors only: nothing in it runs)."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), no iteration
            tensors[key] = handle.get_tensor(key)
    return tensors, metadata


def record_uncertainty(
    results: dict[str, Any], items: Mapping[str, tuple[Outputs, MetricFn] | None], directory: Path | None
) -> None:
    """Add ``intervals`` (the headline metric's, per scored split) to a run's ``results``; with
    ``directory`` (the run folder, on the main process), save each split's per-item outputs in
    ``items/SPLIT.safetensors`` and name them in ``results["items"]``."""
    results["intervals"] = intervals(items, results["primary_metric"])
    if directory is None:
        return
    saved = {}
    for split, entry in items.items():
        if entry is not None and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", split):
            save_items(directory / "items" / f"{split}.safetensors", entry[0], split, results.get("data_fingerprint"))
            saved[split] = f"items/{split}.safetensors"
    results["items"] = saved
