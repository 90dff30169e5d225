"""Scoring a split: the task's own whole-split evaluation, or batch by batch with each process taking a
shard; with ``items``, the per-item outputs the metrics came from are kept too (for error bars)."""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import Any

import torch
from torch import nn

from zoo.engine.distributed import Context, is_sharded, whole_root
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
    counted: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Metrics of ``split``; every process gets the same metrics. ``items[split]`` gets
    ``(outputs, metric_fn)``: the per-item outputs in the split's order and what recomputes the
    metrics from them, or None where the task returns only metrics. Processes score shards
    ``rank::world_size`` without padding, so each example counts once; ``counted[split]`` gets how
    many were scored (checked to be the split's size)."""
    with whole_root(model):  # whole-split evaluations call the backbone's methods, not the model
        scored = task.score_split(model, split, ctx.device)
        whole = task.evaluate_split(model, split, ctx.device) if scored is None else None
    if scored is not None:
        if items is not None:
            items[split] = (scored[1], item_metrics)
        return scored[0]
    if whole is not None:
        if items is not None:
            items[split] = None
        return whole
    examples = task.examples(split, train=False)
    if not isinstance(examples, Sized):
        raise TrainingError(f"the {split} examples of the {task.name} task have no length; evaluation needs it")
    model.eval()
    indices = list(range(len(examples)))[ctx.rank :: ctx.world_size]
    batches = math.ceil(len(indices) / recipe.eval_batch_size)
    if is_sharded(model):  # every process runs every forward pass of a sharded model: as many as rank 0
        batches = math.ceil(math.ceil(len(examples) / ctx.world_size) / recipe.eval_batch_size)
    collected: dict[str, list[torch.Tensor]] = {}
    losses, count = [], 0
    with torch.no_grad():
        for start in range(0, batches * recipe.eval_batch_size, recipe.eval_batch_size):
            chunk = indices[start : start + recipe.eval_batch_size]
            batch = task.collate([examples[i] for i in (chunk or indices[:1] or [0])])  # an idle pass if empty
            with autocast:
                loss, outputs = task.step(model, to_device(batch, ctx.device))
            if not chunk:  # the pass only kept the shards' forward passes in step: nothing of it counts
                continue
            losses.append(float(loss) * len(chunk))
            count += len(chunk)
            for key, value in outputs.items():
                collected.setdefault(key, []).append(value.detach().cpu())
    shards = ctx.gather(({k: torch.cat(v) for k, v in collected.items()}, sum(losses), count))
    total = sum(shard[2] for shard in shards)
    if total != len(examples):
        raise TrainingError(f"evaluation of {split} scored {total} examples, not its {len(examples)}")
    if counted is not None:
        counted[split] = total
    first: dict[str, torch.Tensor] = next((shard[0] for shard in shards if shard[0]), {})
    outputs = {k: torch.cat([shard[0][k] for shard in shards if k in shard[0]]) for k in first}
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
