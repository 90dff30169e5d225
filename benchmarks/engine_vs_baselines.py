"""The engine's training loop against a plain PyTorch loop and Hugging Face `Trainer`.

Same model (a backbone plus a linear head), same examples (pre-tokenised, the
same order), same batch size, optimizer (AdamW) and precision. The three are
run interleaved, round after round, so machine noise hits all of them alike;
the median training throughput of each is compared. Also reports the share of
the engine's step time spent waiting for data.

    python benchmarks/engine_vs_baselines.py [--model text/minilm-l6] [--examples 512] [--rounds 3]
                                             [--device cpu|cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import zoo
from zoo.engine import prepare, run
from zoo.recipes import validate
from zoo.tasks.classification import Classifier


def recipe(args, output_dir: str):
    return validate(
        {
            "model": args.model,
            "task": "text-classification",
            "data": "sst2",
            "train_limit": args.examples,
            "eval_limit": 32,
            "batch_size": args.batch,
            "epochs": 1.0,
            "lr": 5e-5,
            "warmup": 0.0,
            "log_every": 10,
            "checkpoint_every": 10_000,
            "model_options": {"max_length": 64},
            "output_dir": output_dir,
            "name": "bench",
            "precision": args.precision,
            "device": args.device,
            "task_options": {"dropout": 0.0},
        },
        "benchmark",
    )


def engine(args) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        summary = run(recipe(args, directory))["train"]
    return summary["train_samples_per_second"], summary["data_wait_share"]


def batches(args, device):
    """The task's own training examples, collated in a fixed order, moved to ``device``."""
    with tempfile.TemporaryDirectory() as directory:
        task = prepare(recipe(args, directory), device=device)
    examples = task.examples("train", train=True)
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0)).tolist()
    out = []
    for start in range(0, len(order), args.batch):
        inputs, labels = task.collate([examples[i] for i in order[start : start + args.batch]])
        out.append(({k: v.to(device) for k, v in inputs.items()}, labels.to(device)))
    return task, out, [examples[i] for i in order]


def plain_loop(args, device) -> float:
    """What a careful person writes by hand: forward, loss, backward, fused AdamW, no extras."""
    task, data, _ = batches(args, device)
    model = Classifier(task.backbone, task.data.num_classes, "encode_tokens", dropout=0.0).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    started = time.perf_counter()
    for inputs, labels in data:
        with autocast:
            loss = F.cross_entropy(model(inputs).float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(len(labels) for _, labels in data) / (time.perf_counter() - started)


class _ForTrainer(torch.nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, labels=None, **inputs):
        logits = self.classifier(inputs)
        return {"loss": F.cross_entropy(logits.float(), labels), "logits": logits}


def hf_trainer(args, device, defaults: bool) -> float:
    """transformers.Trainer on the same examples; ``defaults`` leaves its own settings (bf16 off)."""
    from transformers import Trainer, TrainingArguments

    task, _, items = batches(args, torch.device("cpu"))
    rows = [{**inputs, "labels": label} for inputs, label in items]  # the same examples, in the same order
    model = _ForTrainer(Classifier(task.backbone, task.data.num_classes, "encode_tokens", dropout=0.0))
    with tempfile.TemporaryDirectory() as directory:
        settings = TrainingArguments(
            output_dir=directory,
            per_device_train_batch_size=args.batch,
            num_train_epochs=1,
            learning_rate=5e-5,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            use_cpu=device.type == "cpu",
            dataloader_num_workers=0,
            disable_tqdm=True,
            remove_unused_columns=False,
            **({} if defaults else {"bf16": args.precision == "bf16", "optim": "adamw_torch_fused"}),
        )

        def collate(items):
            width = max(int(item["attention_mask"].sum()) for item in items)
            return {k: torch.stack([item[k][:width] if k != "labels" else item[k] for item in items]) for k in items[0]}

        trainer = Trainer(model=model, args=settings, train_dataset=rows, data_collator=collate)
        metrics = trainer.train().metrics
    return metrics["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="text/minilm-l6")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    device = torch.device(args.device)
    zoo.load(args.model)  # warm the file cache before timing anything
    results: dict[str, list[float]] = {"zoo engine": [], "plain loop": [], "HF Trainer": []}
    if device.type == "cuda":
        results["HF Trainer (defaults)"] = []
    waits = []
    for round_ in range(args.rounds):
        rate, wait = engine(args)
        results["zoo engine"].append(rate)
        waits.append(wait)
        results["plain loop"].append(plain_loop(args, device))
        results["HF Trainer"].append(hf_trainer(args, device, defaults=False))
        if device.type == "cuda":
            results["HF Trainer (defaults)"].append(hf_trainer(args, device, defaults=True))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in results.items()), flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n{args.model}, SST-2 {args.examples} examples, batch {args.batch}, {args.precision}, {name}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds"
    )
    ours = statistics.median(results["zoo engine"])
    print(f"{'loop':24} {'samples/s':>10} {'engine / this':>14}")
    for loop, rates in results.items():
        print(f"{loop:24} {statistics.median(rates):10.1f} {ours / statistics.median(rates):14.3f}")
    print(f"engine data-wait share of step time: {statistics.median(waits):.2%} (target < 5%)")


if __name__ == "__main__":
    main()
