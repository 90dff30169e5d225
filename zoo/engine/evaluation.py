"""Scoring a split: the task's own whole-split evaluation, or batch by batch with each process taking a
shard; with ``items``, the per-item outputs the metrics came from are kept too (for error bars)."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import torch
from torch import nn

from zoo.engine.distributed import Context
from zoo.errors import ZooError
from zoo.recipes import Recipe
from zoo.tasks.base import Task
from zoo.tasks.batches import to_device
from zoo.tasks.uncertainty import item_metrics


class TrainingError(ZooError):
    """Training cannot go on (a non-finite loss, an empty split, a split without a length, ...)."""


def evaluate(
    task: Task,
    model: nn.Module,
    split: str,
    ctx: Context,
    recipe: Recipe,
    autocast: Any,
    items: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of ``split``; every process gets the same metrics. ``items[split]`` gets
    ``(outputs, metric_fn)``: the per-item outputs in the split's order and what recomputes the
    metrics from them, or None where the task returns only metrics."""
    scored = task.score_split(model, split, ctx.device)
    if scored is not None:
        if items is not None:
            items[split] = (scored[1], item_metrics)
        return scored[0]
    whole = task.evaluate_split(model, split, ctx.device)
    if whole is not None:
        if items is not None:
            items[split] = None
        return whole
    examples = task.examples(split, train=False)
    if not isinstance(examples, Sized):
        raise TrainingError(f"the {split} examples of the {task.name} task have no length; evaluation needs it")
    model.eval()
    indices = list(range(len(examples)))[ctx.rank :: ctx.world_size]
    collected: dict[str, list[torch.Tensor]] = {}
    losses = []
    with torch.no_grad():
        for start in range(0, len(indices), recipe.eval_batch_size):
            chunk = indices[start : start + recipe.eval_batch_size]
            batch = task.collate([examples[i] for i in chunk])
            with autocast:
                loss, outputs = task.step(model, to_device(batch, ctx.device))
            losses.append(float(loss) * len(chunk))
            for key, value in outputs.items():
                collected.setdefault(key, []).append(value.detach().cpu())
    shards = ctx.gather(({k: torch.cat(v) for k, v in collected.items()}, sum(losses)))
    outputs = {k: torch.cat([shard[0][k] for shard in shards if k in shard[0]]) for k in shards[0][0]}
    metrics = task.metrics(outputs)
    metrics["loss"] = sum(shard[1] for shard in shards) / max(1, len(examples))
    if items is not None:
        items[split] = (in_split_order(outputs, len(examples), ctx.world_size), task.metrics)
    model.train()
    return metrics


def in_split_order(outputs: dict[str, torch.Tensor], size: int, world_size: int) -> dict[str, torch.Tensor]:
    """Gathered outputs (rank 0's shard, then rank 1's: examples ``r::world_size``) back in the split's
    order, so two runs pair item by item however many processes scored them. Tensors that are not one
    row per example (per token, say) are kept as they are."""
    if world_size == 1:
        return outputs
    order = torch.cat([torch.arange(size)[rank::world_size] for rank in range(world_size)])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(size)
    return {k: (v[inverse] if len(v) == size else v) for k, v in outputs.items()}
