"""What a run tells its user: a summary block before training, progress from the first step
(metrics.jsonl, a bar on a terminal, log lines otherwise), and one closing line. Rank 0 alone speaks."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from zoo.engine.distributed import Context
from zoo.files import atomic_write
from zoo.tasks.protocols import get_protocol


class Logger:
    """metrics.jsonl (and TensorBoard when installed) on rank 0; a progress bar on a terminal."""

    def __init__(self, run_dir: Path, ctx: Context, total_steps: int, resume_step: int):
        self.ctx, self.path, self.total_steps = ctx, run_dir / "metrics.jsonl", total_steps
        self.tty = sys.stderr.isatty()
        self.writer = self.bar = None
        if not ctx.is_main:
            return
        if resume_step and self.path.exists():  # drop what the interrupted run logged after its checkpoint
            rows = [line for line in self.path.read_text().splitlines() if _logged_step(line) <= resume_step]
            atomic_write(self.path, lambda out: out.write("".join(row + "\n" for row in rows).encode()))
        elif not resume_step:
            self.path.write_text("")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            pass
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=resume_step, desc="training", dynamic_ncols=True)

    def log(self, row: dict[str, Any], echo: bool = False) -> None:
        if not self.ctx.is_main:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{row.get('split', 'train')}/{key}", value, row["step"])
        if self.bar and row.get("split") == "train" and "loss" in row:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}")
        if echo or not self.tty:
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            if self.bar:
                self.bar.write(shown)
            else:
                print(shown, file=sys.stderr)

    def first_step(self, step: int, loss: float, seconds: float) -> None:
        """Without a terminal's bar, one line once the first step is done (log lines come every
        ``log_every`` steps), so a slow start is seen to be moving."""
        if self.ctx.is_main and not self.tty:
            print(f"step {step}/{self.total_steps} loss={loss:.4g} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    def advance(self, loss: float | None) -> None:
        if self.bar:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        if self.writer:
            self.writer.close()


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; a line that is not a logged row (a torn write) sorts last: dropped."""
    try:
        step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf
    return step if isinstance(step, int) and not isinstance(step, bool) else math.inf


def _count(number: int, what: str) -> str:
    return f"{number:,} {what}{'' if number == 1 else 'es' if what.endswith('s') else 's'}"


def _role(split: str, task: Any, recipe: Any) -> str:
    if split == "train":
        return "the protocol draws its training examples from them" if recipe.protocol else "trains"
    if split == recipe.eval_split:
        return "picks the best weights" if task.trains and recipe.keep_best else "evaluated"
    return "scored once, at the end"


def summary(task: Any, recipe: Any, ctx: Context, run_dir: Path, plan: dict[str, Any], test_split: str | None) -> str:
    """The block printed before training: what trains on what, on which splits, for how long, where."""
    data = task.data
    weights = task.backbone.weights
    tag = getattr(weights, "tag", weights) if weights is not None else "random initialisation"
    protocol = get_protocol(recipe.protocol) if recipe.protocol else None
    scored = [test_split or "test"] if protocol else [recipe.eval_split, *([test_split] if test_split else [])]
    splits = [s for s in dict.fromkeys(["train", *scored])]
    if not task.trains:
        splits = [s for s in splits if s != "train"]
    rows = [("backbone", f"{task.backbone.name} ({tag})"), ("task", f"{task.name}, {task.mode}")]
    if protocol is not None:
        rows.append(("protocol", f"{protocol.name}: {protocol.description}"))
    classes = data.label_names
    shown = ", ".join(classes[:8]) + (f", ... ({len(classes)})" if len(classes) > 8 else "")
    rows.append(("data", f"{data.name}" + (f": {_count(len(classes), 'class')} ({shown})" if classes else "")))
    for split in splits:
        if split in data.splits:
            origin = data.origins.get(split)
            text = f"{_count(len(data.splits[split]), 'example')}, {_role(split, task, recipe)}"
            rows.append((split, text + (f"; from {origin}" if origin else "")))
    if test_split is None and recipe.eval_split != "test":
        rows.append(("test", "none: the reported numbers are the validation split's (set test_split to add one)"))
    if plan.get("steps"):
        epochs = plan["steps"] / plan["steps_per_epoch"]
        batch = plan.get("batch") or {}
        found = f" as {batch['grad_accum']} x {batch['micro_batch']}" if "search" in batch else ""
        rows.append(
            (
                "training",
                f"{_count(plan['steps'], 'step')} of batch {recipe.global_batch}{found} ({epochs:.3g} epochs of "
                f"{_count(plan['steps_per_epoch'], 'step')}), lr {recipe.lr:g}",
            )
        )
        if isinstance(batch.get("search"), str):
            rows.append(("batch", f"auto: {batch['search']}"))
    device = ctx.device.type + (f" x{ctx.world_size}" if ctx.world_size > 1 else "")
    rows.append(("device", f"{device}, {plan.get('precision', 'fp32')}"))
    rows.append(("output", str(run_dir)))
    width = max(len(key) for key, _ in rows)
    return "\n".join([f"zoo run {run_dir.name}:", *(f"  {key:<{width}}  {value}" for key, value in rows)])


def announce(text: str, ctx: Context) -> None:
    """``text`` on stderr, from rank 0 only."""
    if ctx.is_main:
        print(text, file=sys.stderr, flush=True)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def closing_line(results: dict[str, Any]) -> str:
    """One line: each evaluated split's headline metric (with chance where known) and the run folder."""
    primary = results.get("primary_metric")
    parts = []
    for split, metrics in results["metrics"].items():
        key = primary if primary in metrics else next(iter(metrics), None)
        if key is None:
            continue
        chance = results.get("chance", {}).get(split, {}).get(key)
        extra = f" (chance {_number(chance)})" if chance is not None else ""
        if _at_or_below_chance(metrics[key], chance, results.get("higher_is_better", True)):
            extra = f" (chance {_number(chance)}: AT OR BELOW CHANCE, the model tells nothing apart)"
        parts.append(f"{split} {key} {_number(metrics[key])}{extra}")
    steps = results.get("train", {}).get("steps")
    trained = f" after {_count(steps, 'step')}" if steps else ""
    return f"done{trained}: {'; '.join(parts) or 'no metrics'}; results in {results['run_dir']}"


def _at_or_below_chance(value: Any, chance: Any, higher_is_better: bool) -> bool:
    if not isinstance(value, (int, float)) or not isinstance(chance, (int, float)):
        return False
    return value <= chance if higher_is_better else value >= chance
