"""FSDP against DDP: two processes under ``torchrun`` on the CPU (gloo), the same recipe and steps.

Runs ``zoo run`` of a fine-tuning recipe (MiniLM-L6 on SST-2 by default) once per strategy, each under
``torchrun --nproc_per_node=2``, interleaved over ``--rounds``, and prints side by side for each
process: the bytes of trainable weights and AdamW moments it holds after the last step (its shards'
under FSDP), resident memory when training starts (model loaded, and sharded for FSDP), the peak during
the training steps (Linux's VmHWM, reset when training starts and read at the first evaluation, which
comes after the last step) and the rise between them, the whole run's peak (``ru_maxrss``: loading,
checkpoints and saving too); the parameter values each process held, training samples/s, and the
last logged training loss (the two strategies should agree).

    python benchmarks/fsdp_vs_ddp.py [--steps 40] [--batch 32] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"/proc/self/status has no {field}")


def worker(recipe_path: str, options: list[str], out: Path) -> None:
    """One process of the torchrun job: run the recipe, then write this rank's memory figures."""
    import torch

    import zoo.engine.loop as loop
    from zoo.engine import run
    from zoo.recipes import load_recipe

    rank = int(os.environ.get("RANK", "0"))
    marks: dict[str, int] = {}
    make_optimizer, evaluate = loop.make_optimizer, loop.evaluate

    from zoo.engine.distributed import local_tensor

    held: list = []

    def starting(*args, **kwargs):  # the engine builds the optimizer once the model is on its device (and sharded)
        marks["start"] = status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident memory
        held.append(make_optimizer(*args, **kwargs))
        return held[0]

    def evaluating(*args, **kwargs):
        if "training_peak" not in marks:  # after the last step: the weights and AdamW's moments this process holds
            marks["training_peak"] = status("VmHWM")
            params = [p for group in held[0].param_groups for p in group["params"]]
            state = [t for p in params for t in held[0].state.get(p, {}).values() if isinstance(t, torch.Tensor)]
            marks["state_bytes"] = sum(local_tensor(t).nbytes for t in params + state)
        return evaluate(*args, **kwargs)

    loop.make_optimizer, loop.evaluate = starting, evaluating
    results = run(load_recipe(recipe_path, options))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    sharding = results["train"].get("sharding")
    rows = [json.loads(line) for line in (Path(results["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if row["split"] == "train"]
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "peak": peak,
                "start": marks["start"],
                "training_peak": marks["training_peak"],
                "state_bytes": marks["state_bytes"],
                "samples_per_second": results["train"]["train_samples_per_second"],
                "local_parameters": sharding["local_parameters"][rank] if sharding else None,
                "parameters": sharding["parameters"] if sharding else None,
                "loss": losses[-1],
            }
        )
    )


def launch(strategy: str, args: argparse.Namespace, folder: Path, port: int) -> list[dict]:
    out = folder / strategy
    out.mkdir(parents=True, exist_ok=True)
    options = [
        f"strategy={strategy}",
        f"max_steps={args.steps}",
        f"train_limit={args.steps * args.batch}",
        f"batch_size={args.batch}",
        "eval_limit=64",
        "test_split=null",
        "keep_best=false",
        f"log_every={args.steps}",
        "checkpoint_every=1000000",  # the one checkpoint comes at the end, after the first evaluation
        f"output_dir={folder / 'runs'}",
        f"name={strategy}-{port}",
    ]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--nproc_per_node=2", f"--master_port={port}", __file__, "--worker", str(out)]
    command += [args.recipe, *options]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{strategy} failed:\n{done.stderr[-3000:]}")
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[3], sys.argv[4:], Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "sst2-minilm-finetune.yaml"))
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=32, help="global batch (half per process)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of DDP then FSDP")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    args = parser.parse_args()
    mib = 1 / 2**20
    print(
        f"{Path(args.recipe).name}: {args.steps} steps of batch {args.batch}, 2 processes x {args.threads} thread(s), "
        f"gloo; {platform.machine()}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        table: dict[str, list[list[dict]]] = {"ddp": [], "fsdp": []}
        for round_ in range(args.rounds):
            for k, strategy in enumerate(("ddp", "fsdp")):
                table[strategy].append(launch(strategy, args, Path(tmp) / str(round_), 29700 + 2 * round_ + k))
    print(f"{'':34}{'DDP':>14}{'FSDP':>14}{'FSDP/DDP':>10}")

    def row(label: str, value, unit: str = "") -> None:
        ddp, fsdp = value(table["ddp"]), value(table["fsdp"])
        ratio = f"{fsdp / ddp:.2f}x" if ddp else ""
        print(f"{label:34}{ddp:>12.1f}{unit:2}{fsdp:>12.1f}{unit:2}{ratio:>10}")

    def mean(key: str, scale: float = 1.0, rank: int | None = None, minus: str | None = None):
        def value(rounds: list[list[dict]]) -> float:
            ranks = [rank] if rank is not None else [0, 1]
            picks = [r[i][key] - (r[i][minus] if minus else 0) for r in rounds for i in ranks]
            return sum(picks) / len(picks) * scale

        return value

    for rank in (0, 1):
        row(f"rank {rank}: weights + AdamW state (MiB)", mean("state_bytes", mib, rank))
        row("  RSS at training start (MiB)", mean("start", mib, rank))
        row("  peak during the steps (MiB)", mean("training_peak", mib, rank))
        row("  rise during the steps (MiB)", mean("training_peak", mib, rank, minus="start"))
        row("  whole run's peak (MiB)", mean("peak", mib, rank))
    row("samples/s (rank 0)", mean("samples_per_second", 1.0, 0))
    fsdp_local = [r[i]["local_parameters"] for r in table["fsdp"] for i in (0, 1)]
    total = table["fsdp"][0][0]["parameters"]
    print(f"{'parameter values held per process':34}{total:>14,}{str(fsdp_local[:2]):>26}")
    print(f"{'last training loss':34}{table['ddp'][-1][0]['loss']:>14.4f}{table['fsdp'][-1][0]['loss']:>14.4f}")


if __name__ == "__main__":
    main()
