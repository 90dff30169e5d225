"""``batch_size: auto``: the largest micro-batch that fits the device, the global batch kept by gradient
accumulation.

As timm's benchmark and Lightning's ``BatchSizeFinder`` do, each trial runs one real training
micro-batch (forward and backward, the optimizer's two AdamW moments held in memory beside it) and an
out-of-memory error sends the search lower: it doubles from the recipe's micro-batch while trials fit,
and halves while they do not. Only micro-batches that divide the global batch are tried, so a step
always takes ``global / micro`` whole micro-batches. The longest training examples are drawn (text
pads to the longest), so the batch that fits them fits every batch of the run. Trials leave no
trace: weights untouched (no optimizer step), gradients dropped, BatchNorm statistics and every random
generator restored. A CPU gives no out-of-memory signal (it swaps, or the kernel kills the process), so
there the recipe's micro-batch is kept and the record says so.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.engine.checkpoint import rng_state, set_rng_state
from zoo.engine.distributed import Context
from zoo.engine.evaluation import TrainingError
from zoo.files import atomic_write
from zoo.recipes import Recipe
from zoo.tasks.base import Task
from zoo.tasks.batches import to_device

RECORD = "batch_size.json"  # in the run folder: a resumed run keeps the micro-batch it started with

# what CUDA and cuDNN raise when memory runs out, besides torch.OutOfMemoryError (Lightning's list)
OOM_MESSAGES = ("CUDA out of memory", "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED", "CUBLAS_STATUS_ALLOC_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in OOM_MESSAGES)


def search(fits: Callable[[int], bool], global_batch: int, start: int) -> tuple[int, list[dict[str, Any]]]:
    """The largest micro-batch ``fits`` accepts, among the divisors of ``global_batch``: from ``start``,
    doubling while it fits (halving while it does not), then a binary search between the largest size
    that fitted and the smallest that did not (Lightning's ``binsearch``); and the trials made."""
    divisors = [d for d in range(1, global_batch + 1) if global_batch % d == 0]
    trials: list[dict[str, Any]] = []

    def tried(size: int) -> bool:
        trials.append({"micro_batch": size, "fits": fits(size)})
        return trials[-1]["fits"]

    best, failed, size = 0, global_batch + 1, start
    while size:
        if tried(size):
            best = size
            size = next((d for d in divisors if d >= 2 * size), 0)
            size = size if size < failed else 0
        else:
            failed = size
            size = 0 if best else max((d for d in divisors if d <= size // 2), default=0)
    if not best and failed == 1:
        raise TrainingError(
            "batch_size auto: a micro-batch of 1 does not fit the device's memory; free memory, "
            "use a smaller model or turn on what saves memory"
        )
    between = [d for d in divisors if best < d < failed]
    while between:
        middle = between[len(between) // 2]
        if tried(middle):
            best, between = middle, [d for d in between if d > middle]
        else:
            between = [d for d in between if d < middle]
    return best, trials


def free_memory(device: torch.device) -> None:
    """Return what a failed trial left behind to the allocator (as Lightning's garbage_collection_cuda)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def trial(task: Task, model: nn.Module, examples: list[Any], autocast: Any, device: torch.device) -> bool:
    """One training micro-batch of ``examples`` through ``model`` (forward and backward): False when the
    device runs out of memory. The gradients are dropped either way."""
    ok = True
    try:
        batch = to_device(task.collate(examples), device)
        with autocast:
            loss, _ = task.step(model, batch)
        loss.backward()
        del batch, loss
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        ok = False  # freed below, outside the except block, whose traceback still holds the tensors
    model.zero_grad(set_to_none=True)
    free_memory(device)
    return ok


def micro_batch(
    task: Task,
    model: nn.Module,
    recipe: Recipe,
    ctx: Context,
    autocast: Any,
    run_dir: Path,
    train_set: Sized,
    resume: bool = False,
    search_on: tuple[str, ...] = ("cuda",),
) -> tuple[int, dict[str, Any]]:
    """The micro-batch (examples across processes) a run takes, and what results.json records of it:
    the recipe's ``batch_size / grad_accum``, or with ``batch_size: auto`` the largest that fits where
    the device signals out-of-memory (``search_on``: device types). A resumed run keeps its first one."""
    start = recipe.global_batch // recipe.grad_accum
    if not recipe.auto_batch:
        return start, {"micro_batch": start, "grad_accum": recipe.grad_accum}
    record_path = run_dir / RECORD
    if resume and record_path.is_file():
        record = json.loads(record_path.read_text())
        return int(record["micro_batch"]), record
    if ctx.device.type not in search_on:
        record = {
            "micro_batch": start,
            "grad_accum": recipe.grad_accum,
            "search": f"kept batch_size / grad_accum: the {ctx.device.type} gives no out-of-memory signal",
        }
    else:
        fits = _fits(task, model, ctx, autocast, train_set)
        size, trials = search(fits, recipe.global_batch, start)
        record = {"micro_batch": size, "grad_accum": recipe.global_batch // size, "search": trials}
    record["global_batch"] = recipe.global_batch
    if ctx.is_main:
        text = json.dumps(record, indent=2)
        atomic_write(record_path, lambda handle: handle.write(text.encode()))
    return int(record["micro_batch"]), record


def _fits(task: Task, model: nn.Module, ctx: Context, autocast: Any, train_set: Any) -> Callable[[int], bool]:
    """The trial of one micro-batch size on every process (each its share of the longest examples);
    it fits when it fits on all of them."""
    lengths = task.lengths("train")
    order = torch.argsort(lengths, descending=True, stable=True).tolist() if lengths is not None else None

    def fits(size: int) -> bool:
        count = min(math.ceil(size / ctx.world_size), len(train_set))
        indices = order[:count] if order is not None else list(range(count))
        buffers = {name: value.clone() for name, value in model.named_buffers()}
        # AdamW keeps two fp32 moments per trained weight: held during the trial, they count as they will
        trained = [p for p in model.parameters() if p.requires_grad]
        moments = [torch.empty_like(p, dtype=torch.float32) for p in trained for _ in range(2)]
        randomness = rng_state()
        try:
            ok = trial(task, model, [train_set[i] for i in indices], autocast, ctx.device)
        finally:
            del moments
            set_rng_state(randomness)
            with torch.no_grad():
                for name, value in model.named_buffers():
                    value.copy_(buffers[name])
            free_memory(ctx.device)
        return not ctx.sum(0.0 if ok else 1.0)[0]

    return fits
