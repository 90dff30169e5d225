"""LoRA against full fine-tuning of MiniLM-L6 on SST-2, side by side, after the same steps.

Each configuration runs in a process of its own through the engine (``zoo.engine.run``), so its peak
resident memory (``ru_maxrss``: weights, activations, optimizer state, data) is its alone. Both use the
shipped recipes (``sst2-minilm-finetune.yaml``, ``sst2-minilm-lora.yaml``) with the same steps, batch,
max_length and data order; each is scored on SST-2's test split (dev.tsv, 872 sentences).

    .venv/bin/python benchmarks/lora_vs_full.py --steps 200

prints trainable parameters, the saved model's size (the adapter alone for LoRA; the whole backbone for
full fine-tuning), peak memory, training samples/s and accuracy, and the LoRA / full ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"full": "sst2-minilm-finetune.yaml", "lora": "sst2-minilm-lora.yaml"}


def one(kind: str, steps: int, output: str, eval_limit: int) -> dict:
    """Train one configuration and return its figures (run in a child process)."""
    import zoo
    from zoo.adapters import adapt
    from zoo.engine import run
    from zoo.recipes import load_recipe

    recipe = load_recipe(
        REPO / "recipes" / RECIPES[kind],
        [
            f"max_steps={steps}",
            f"eval_every={steps}",  # one evaluation, at the end: the same steps for both
            f"eval_limit={eval_limit}",
            "keep_best=false",
            "group_by_length=true",  # less padding: both configurations see the same batches
            f"output_dir={output}",
            f"name={kind}",
            "log_every=50",
        ],
    )
    results = run(recipe)
    model_dir = Path(results["run_dir"]) / "model" / "backbone"
    saved = sum(f.stat().st_size for f in model_dir.iterdir() if f.suffix == ".safetensors")
    backbone = zoo.load(recipe.model, **recipe.model_options)  # counted as the run set it up
    if recipe.adapter:
        adapt(backbone, recipe.adapter, {})
    head = backbone.embed_dim * 2 + 2  # the linear head on the embedding, two classes
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad) + head
    total = backbone.num_params() + head  # as peft counts: the adapter's parameters included
    return {
        "kind": kind,
        "steps": results["train"]["steps"],
        "trainable": trainable,
        "trainable_share": trainable / total,
        "saved_mb": saved / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "samples_per_second": results["train"]["train_samples_per_second"],
        "accuracy": results["metrics"]["test"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of batch 32 for each")
    parser.add_argument("--eval-limit", type=int, default=256, help="validation examples scored at the end")
    parser.add_argument("--one", choices=sorted(RECIPES), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.steps, args.output, args.eval_limit)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as output:
        for kind in ("full", "lora"):
            command = [sys.executable, __file__, "--one", kind, "--steps", str(args.steps), "--output", output]
            done = subprocess.run(
                [*command, "--eval-limit", str(args.eval_limit)], capture_output=True, text=True, check=False
            )
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{kind} failed:\n{done.stderr[-3000:]}")
            rows[kind] = json.loads(line[len("RESULT ") :])
    full, lora = rows["full"], rows["lora"]
    print(f"MiniLM-L6 on SST-2, {full['steps']} steps of batch 32, max_length 64 (test: dev.tsv, 872 sentences)")
    print(f"{'':22}{'full':>14}{'lora':>14}{'lora / full':>14}")
    for key, label, fmt in (
        ("trainable", "trainable parameters", "{:,.0f}"),
        ("trainable_share", "trainable share", "{:.2%}"),
        ("saved_mb", "saved model (MB)", "{:.2f}"),
        ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"),
        ("samples_per_second", "train samples/s", "{:.1f}"),
        ("accuracy", "test accuracy", "{:.4f}"),
    ):
        ratio = lora[key] / full[key] if full[key] else float("nan")
        print(f"{label:22}{fmt.format(full[key]):>14}{fmt.format(lora[key]):>14}{ratio:>14.3f}")
    print(f"accuracy difference (lora - full): {100 * (lora['accuracy'] - full['accuracy']):+.2f} points")


if __name__ == "__main__":
    main()
