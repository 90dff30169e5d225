"""The one training loop. Every task and objective runs through `train`.

One optimizer step consumes ``batch_size`` examples: ``grad_accum`` micro-batches,
each split across the ``world_size`` processes, so results do not depend on how
many processes share the work. The data order of epoch ``e`` is a permutation
drawn from ``seed`` and ``e`` alone; a checkpoint records the epoch and the
micro-batch position, so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sized
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch
from torch import nn

from zoo.engine.batch_size import micro_batch
from zoo.engine.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint, set_rng_state, weights
from zoo.engine.distributed import Context, all_finite, shard_model
from zoo.engine.evaluation import TrainingError, evaluate
from zoo.engine.report import Logger
from zoo.engine.unfreeze import unfreeze
from zoo.errors import RecipeError
from zoo.files import remove_stale_temporaries
from zoo.recipes import Recipe
from zoo.tasks.base import Task
from zoo.tasks.batches import to_device

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel


class Progress(TypedDict):
    """Where training is (a checkpoint's ``progress``): steps, epoch, micro-batch position, early stopping."""

    step: int
    epoch: int
    position: int
    best: float | None
    bad_evals: int
    best_step: int


def lr_lambda(warmup_steps: int, total_steps: int):
    """Linear warm-up to the peak, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def autocast_for(precision: str, device: torch.device) -> tuple[Any, str]:
    """The autocast context a run of ``recipe.precision`` uses on ``device``, and its name ("bf16" or
    "fp32"): bf16 when asked for, or for "auto" on CUDA; fp32 otherwise. Training and re-evaluating a
    finished run (`zoo evaluate`) both call this, so a run is evaluated in the precision it trained in."""
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16), "bf16"
    return nullcontext(), "fp32"


def head_parameter_names(task: Task, model: nn.Module) -> set[str]:
    """Names in ``model`` of what ``head_lr`` trains: the task's own new modules (``fresh_parameters``)
    and the parameters the backbone declares as its join (`Backbone.join_parameters`), found by identity
    so a family's names never matter. Taken before sharding, which keeps names but not identities."""
    join = {id(param) for param in task.backbone.join_parameters()}
    return {
        name
        for name, param in model.named_parameters()
        if id(param) in join or any(name == part or name.startswith(part + ".") for part in task.fresh_parameters)
    }


def make_optimizer(
    model: nn.Module, recipe: Recipe, device: torch.device, heads: set[str] | frozenset[str] = frozenset({"head"})
) -> torch.optim.Optimizer:
    """Fused AdamW; no weight decay on biases and norms; ``head_lr`` for the parameters named in ``heads``
    (`head_parameter_names`); a ``head_lr`` that no trainable parameter takes is a RecipeError."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    took_head_lr = False
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = 0.0 if param.ndim < 2 else recipe.weight_decay
        lr = recipe.head_lr if recipe.head_lr is not None and name in heads else recipe.lr
        took_head_lr |= recipe.head_lr is not None and name in heads
        groups.setdefault((lr, decay), []).append(param)
    if not groups:
        raise TrainingError("the model has no trainable parameters")
    if recipe.head_lr is not None and not took_head_lr:
        raise RecipeError(
            "head_lr: no trainable parameter of this run takes it (the task trains no new head and the "
            "backbone declares no join parameters that train); drop head_lr or set lr"
        )
    param_groups = [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
    # the fused kernel is ~10x faster than the default per-tensor loop on CPU too (torch >= 2.4)
    return torch.optim.AdamW(param_groups, fused=device.type in ("cuda", "cpu"))


def epoch_order(seed: int, epoch: int, size: int, lengths: torch.Tensor | None = None, group: int = 1) -> torch.Tensor:
    """A seeded shuffle of the training examples; with ``lengths``, each run of ``group`` shuffled
    examples is sorted longest first, so consecutive batches pad to similar lengths (as
    transformers' ``group_by_length``) while epochs stay shuffled."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(size, generator=generator)
    if lengths is None:
        return order
    return torch.cat([run[torch.argsort(lengths[run], descending=True, stable=True)] for run in order.split(group)])


def moving_average(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (torch's ``AveragedModel``),
    updated after each optimizer step; None when ``decay`` is not set."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def micro_batches(examples: int, micro: int) -> int:
    """Micro-batches per epoch. A last one of a single example is merged into the one before (a batch of
    one breaks BatchNorm in training, and merging keeps every example in every epoch, unlike dropping it);
    evaluation batches keep every example as they are."""
    count = math.ceil(examples / micro)
    return count - 1 if count > 1 and examples % micro == 1 else count


def train(
    task: Task,
    recipe: Recipe,
    run_dir: Path,
    ctx: Context,
    resume: bool = False,
    announce: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``task``'s model as ``recipe`` says; return the summary that goes into results.json.
    ``announce`` is called with the plan (steps, steps per epoch, examples, precision) before training."""
    device = ctx.device
    torch.manual_seed(recipe.seed)
    model = task.model().to(device)
    heads = head_parameter_names(task, model)  # what head_lr trains, by identity, before any wrapper
    partial = unfreeze(task, model, recipe)  # unfreeze: N: the last N blocks and the head train, the rest frozen
    is_image = task.backbone.modality == "image"
    if recipe.channels_last or (recipe.channels_last is None and is_image):
        # faster on CPU too: 1.8x per EfficientNet-Lite0 training step, 1.25x for ResNet (oneDNN, 2 cores)
        model = model.to(memory_format=torch.channels_last)
    train_set = task.examples("train", train=True)
    if not isinstance(train_set, Sized):
        raise TrainingError(f"the train examples of the {task.name} task have no length; training needs it")
    if len(train_set) == 0:
        raise TrainingError(f"the train split of {task.data.name} is empty")
    # before batch_size auto measures what a micro-batch takes
    if recipe.gradient_checkpointing and not task.backbone.set_gradient_checkpointing(True):
        raise RecipeError(f"gradient_checkpointing: backbone {task.backbone.name} has none; drop the key")
    autocast, precision = autocast_for(recipe.precision, device)
    # examples per micro-batch, across processes: batch_size / grad_accum, or what fits (batch_size: auto)
    micro, batching = micro_batch(task, model, recipe, ctx, autocast, run_dir, train_set, resume)
    accum = batching["grad_accum"]
    micro_per_epoch = micro_batches(len(train_set), micro)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)  # a step ends each epoch
    total_steps = recipe.max_steps or max(1, math.ceil(recipe.epochs * steps_per_epoch))
    # strategy: fsdp under torchrun: the model's shards (bf16 compute on GPUs); else None
    sharded = shard_model(model, task.backbone, recipe, ctx, autocast_for(recipe.precision, device)[1] == "bf16")
    optimizer = make_optimizer(model, recipe, device, heads)
    average = moving_average(model, recipe.ema_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(int(recipe.warmup * total_steps), total_steps))
    if announce is not None:
        announce(
            {
                "steps": total_steps,
                "steps_per_epoch": steps_per_epoch,
                "examples": len(train_set),
                "precision": precision,
                "batch": batching,
            }
        )
    checkpoint_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    state: Progress = {"step": 0, "epoch": 0, "position": 0, "best": None, "bad_evals": 0, "best_step": 0}
    if resume:
        saved = load_checkpoint(checkpoint_path, recipe.hash(), task.backbone.name)
        if ctx.is_main:
            remove_stale_temporaries(checkpoint_path)
        try:
            restore(saved, checkpoint_path.parent, model, optimizer)  # a state dict each, or a folder of shards
            scheduler.load_state_dict(saved["scheduler"])
            if average is not None:
                average.load_state_dict(saved["ema"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {checkpoint_path} does not fit this run's model or optimizer "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        state = saved["progress"]
        set_rng_state(saved["rng"])
    train_model: nn.Module = model
    ddp = None  # the DistributedDataParallel wrapper, when distributed
    if ctx.distributed and sharded is None:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: encoders carry parts a task never calls (BERT's pooler under mean pooling)
        train_model = ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    if recipe.compile:
        # compiling a module gives a module (an OptimizedModule); torch types it as any callable
        train_model = cast(nn.Module, torch.compile(train_model))

    logger = Logger(run_dir, ctx, total_steps, state["step"])
    first_step = state["step"] + 1
    better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    samples, data_seconds, started = 0, 0.0, time.perf_counter()
    # On a GPU, reading the loss back each step would make the host wait for the GPU to finish it: the
    # loss is summed on the device and read (and checked) at each log line. On the CPU it costs nothing.
    read_each_step = device.type != "cuda"
    loss_sum, loss_count, stop = torch.zeros((), dtype=torch.float64, device=device), 0, False
    train_model.train()

    def last_good() -> str:
        return f"the last good checkpoint is {checkpoint_path}" if checkpoint_path.exists() else "no checkpoint yet"

    def checkpoint() -> None:
        if not all_finite(model, ctx):
            raise TrainingError(
                f"weights became non-finite at step {state['step']} (epoch {state['epoch']}); "
                f"{last_good()}. Lower lr or check the data"
            )
        # under FSDP every process writes its shards into a folder first (named in last.pt)
        kept = weights(checkpoint_path.parent, state["step"], _unwrap(model), optimizer, ctx.broadcast)
        if ctx.is_main:
            save_checkpoint(
                checkpoint_path,
                {
                    **kept,
                    "scheduler": scheduler.state_dict(),
                    "scaler": None,
                    "progress": dict(state),
                    "ema": average.state_dict() if average is not None else None,
                    "recipe_hash": recipe.hash(),
                    "backbone": task.backbone.name,
                },
            )
        ctx.barrier()

    eval_seconds = 0.0
    eval_model = train_model if average is None else average.module  # the weights evaluated and kept

    def epochs_done() -> float:
        """Passes over the training split so far, as a fraction (1.5: half-way through the second)."""
        return round(state["epoch"] + state["position"] / micro_per_epoch, 3)

    def run_eval() -> bool:
        """Evaluate, log, keep the best weights; True when early stopping says stop."""
        nonlocal eval_seconds
        eval_started = time.perf_counter()
        metrics = evaluate(task, eval_model, recipe.eval_split, ctx, recipe, autocast)
        eval_seconds += time.perf_counter() - eval_started
        logger.log({"step": state["step"], "epoch": epochs_done(), "split": recipe.eval_split, **metrics}, echo=True)
        value = metrics[task.primary_metric]
        metrics = {k: v for k, v in metrics.items() if not isinstance(v, str)}
        if state["best"] is None or better(value, state["best"]):
            state["best"], state["bad_evals"], state["best_step"] = value, 0, state["step"]
            full = sharded.full_weights() if sharded is not None else None  # every process gives its part
            if ctx.is_main:
                save_checkpoint(
                    best_path,
                    {
                        "model": full if full is not None else _unwrap(eval_model).state_dict(),
                        "recipe_hash": recipe.hash(),
                        "backbone": task.backbone.name,
                    },
                )
        else:
            state["bad_evals"] += 1
        patience = recipe.early_stopping_patience
        return patience is not None and state["bad_evals"] >= patience

    lengths = task.lengths("train") if recipe.group_by_length else None
    if recipe.group_by_length and lengths is None:
        warnings.warn(
            f"group_by_length: the {task.name} task's examples have no lengths; batches are not grouped", stacklevel=2
        )
    while state["step"] < total_steps and not stop:
        order = epoch_order(recipe.seed, state["epoch"], len(train_set), lengths, 50 * micro)
        micro_index = state["position"]
        while micro_index < micro_per_epoch and state["step"] < total_steps:
            fetch_start = time.perf_counter()
            end = (micro_index + 1) * micro if micro_index + 1 < micro_per_epoch else len(train_set)
            chunk = order[micro_index * micro : end].tolist()
            shard = chunk[ctx.rank :: ctx.world_size]
            batch = to_device(task.collate([train_set[i] for i in shard]), device)
            data_seconds += time.perf_counter() - fetch_start
            last_micro = (micro_index + 1) % accum == 0 or micro_index + 1 == micro_per_epoch
            sync = nullcontext() if (last_micro or ddp is None) else ddp.no_sync()
            if sharded is not None:
                sharded.sync_gradients(last_micro)
            with sync, autocast:
                loss, _ = task.step(train_model, batch)
                # the mean over the global batch: each rank's shard is weighted by its share
                (loss * len(shard) / len(chunk) * ctx.world_size / accum).backward()
            if read_each_step and not torch.isfinite(loss):
                raise TrainingError(
                    f"loss is {float(loss.detach())} at step {state['step'] + 1} "
                    f"(epoch {state['epoch']}); {last_good()}. Lower lr or check the data"
                )
            loss_sum, loss_count = loss_sum + loss.detach().double() * len(shard), loss_count + len(shard)
            samples += len(chunk)
            micro_index += 1
            state["position"] = micro_index
            if not last_micro:
                continue
            if recipe.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update_parameters(model)
            state["step"] += 1
            logger.advance(float(loss_sum) / max(1, loss_count) if read_each_step else None)
            if state["step"] == first_step and state["step"] % recipe.log_every and state["step"] != total_steps:
                logger.first_step(state["step"], float(loss_sum) / max(1, loss_count), time.perf_counter() - started)
            if state["step"] % recipe.log_every == 0 or state["step"] == total_steps:
                total, count = ctx.sum(float(loss_sum), loss_count)  # the mean over every process's examples
                if not math.isfinite(total):
                    raise TrainingError(
                        f"loss is {total / count} in the steps up to {state['step']} "
                        f"(epoch {state['epoch']}); {last_good()}. Lower lr or check the data"
                    )
                logger.log(
                    {
                        "step": state["step"],
                        "epoch": epochs_done(),
                        "split": "train",
                        "loss": total / count,
                        "lr": scheduler.get_last_lr()[0],
                    }
                )
                loss_sum, loss_count = torch.zeros_like(loss_sum), 0
            if recipe.eval_every and state["step"] % recipe.eval_every == 0:
                stop = run_eval()
            if state["step"] % recipe.checkpoint_every == 0 or stop:
                checkpoint()
            if stop:
                break
        if micro_index >= micro_per_epoch:
            state["epoch"], state["position"] = state["epoch"] + 1, 0
            if not recipe.eval_every and not stop:
                stop = run_eval()
    train_seconds = time.perf_counter() - started - eval_seconds
    if (
        recipe.eval_every
        and state["step"] % recipe.eval_every
        and not stop
        or not recipe.eval_every
        and state["position"]
    ):
        run_eval()
    checkpoint()
    logger.close()
    if recipe.keep_best and best_path.exists():  # finish with the best weights seen on the eval split
        ctx.barrier()
        best = load_checkpoint(best_path, recipe.hash(), task.backbone.name, needs=("model",))
        (sharded.load_full_weights if sharded is not None else _unwrap(model).load_state_dict)(best["model"])
    elif average is not None:
        _unwrap(model).load_state_dict(average.module.state_dict())
    return {
        "model": sharded.kept() if sharded is not None else _unwrap(model),  # under FSDP: the full weights
        "train_model": train_model,
        "autocast": autocast,
        "summary": {
            "steps": state["step"],
            # passes over the training examples: whole epochs, and the share of the last one done
            "epochs": round(state["epoch"] + state["position"] / micro_per_epoch, 3),
            "best_step": state["best_step"],
            "best_" + task.primary_metric: state["best"],
            "kept": "best" if recipe.keep_best else "last",
            "train_seconds": round(train_seconds, 2),
            "eval_seconds": round(eval_seconds, 2),
            "train_samples_per_second": round(samples / train_seconds, 2) if train_seconds else None,
            "data_wait_share": round(data_seconds / train_seconds, 4) if train_seconds else None,
            "early_stopped": stop,
            "precision": precision,
            "ema_decay": recipe.ema_decay,
            **({"sharding": sharded.describe(ctx)} if sharded is not None else {}),
            "batch": batching,  # micro-batch and accumulation (and with batch_size auto, how they were found)
            **({"unfreeze": partial} if partial is not None else {}),
        },
    }
