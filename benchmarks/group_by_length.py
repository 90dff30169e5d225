"""Training steps with and without ``group_by_length`` on a text recipe, interleaved.

Takes batches spread over one epoch's order (so grouped runs are sampled fairly,
not only each run's longest batches), times forward + backward + AdamW steps of
the recipe's model on the same data, and prints seconds per step, padded tokens
per batch and the speed-up of grouping.

    python benchmarks/group_by_length.py [--recipe recipes/sst2-minilm-finetune.yaml] [--batches 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from zoo.engine import prepare
from zoo.engine.loop import epoch_order, make_optimizer
from zoo.recipes import load_recipe


def timed_steps(task, model, optimizer, order: torch.Tensor, batch_size: int, count: int) -> tuple[float, int]:
    """Mean seconds per optimizer step and mean padded tokens per batch over ``count`` spread batches."""
    examples = task.examples("train", train=True)
    picks = torch.linspace(0, len(order) // batch_size - 1, count).long().tolist()
    seconds, tokens = 0.0, 0
    for k in picks:
        batch = task.collate([examples[i] for i in order[k * batch_size : (k + 1) * batch_size].tolist()])
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        tokens += inputs["input_ids"].numel()
        started = time.perf_counter()
        loss, _ = task.step(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - started
    return seconds / count, tokens // count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/sst2-minilm-finetune.yaml")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of shuffled, then grouped")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe, [])
    task = prepare(recipe)
    lengths = task.lengths("train")
    if lengths is None:
        raise SystemExit(f"{args.recipe}: its task has no example lengths to group by")
    model = task.model().train()
    optimizer = make_optimizer(model, recipe, torch.device("cpu"), task.fresh_parameters)
    group = 50 * recipe.batch_size
    print(
        f"{args.recipe}: batch {recipe.batch_size}, {len(lengths)} examples, mean {lengths.float().mean():.1f} tokens; "
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    results: dict[str, list[tuple[float, int]]] = {"shuffled": [], "grouped": []}
    for round_index in range(args.rounds):
        for name, grouped in (("shuffled", None), ("grouped", lengths)):
            order = epoch_order(recipe.seed, round_index, len(lengths), grouped, group)
            results[name].append(timed_steps(task, model, optimizer, order, recipe.batch_size, args.batches))
            print(
                f"  round {round_index + 1} {name:8s} {results[name][-1][0]:.3f} s/step, "
                f"{results[name][-1][1]} padded tokens per batch",
                flush=True,
            )
    shuffled = min(s for s, _ in results["shuffled"])
    grouped = min(s for s, _ in results["grouped"])
    print(
        f"best of {args.rounds}: shuffled {shuffled:.3f} s/step, grouped {grouped:.3f} s/step, "
        f"speed-up {shuffled / grouped:.2f}x"
    )


if __name__ == "__main__":
    main()
