"""What each executor adds per cell: local processes against Ray tasks, on the same tiny cells.

The same spec (a tiny convnet's linear probe on scikit-learn digits, one cell per seed) runs
with the local executor one cell at a time and as Ray tasks asking for every core (so they also
run one at a time), interleaved over rounds, each into a fresh folder. A cell's own process
time is in its record; what the executor adds is the rest of the wall time, per cell. Ray is
started before the timed runs ("once started"), as on a cluster that is already up.

    python benchmarks/executor_overhead.py [--cells 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from zoo.comparisons import run_compare, spec_from_dict


def spec(cells: int, cores: int, out: str) -> dict:
    return {
        "name": "overhead",
        "output_dir": out,
        "backbones": ["vision/example-convnet"],
        "seeds": list(range(cells)),
        "defaults": {
            "epochs": 1,
            "batch_size": 64,
            "warmup": 0.0,
            "train_limit": 100,
            "eval_limit": 50,
            "resources": {"num_cpus": cores},
        },
        "cells": [{"task": "image-classification", "data": "digits", "mode": "linear-probe"}],
    }


def overhead(executor: str, cells: int, cores: int) -> float:
    """Seconds per cell that ``executor`` adds to the cells' own process time."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run_compare(spec_from_dict(spec(cells, cores, out)), progress=lambda line: None, executor=executor)
        wall = time.perf_counter() - started
        own = sum(json.loads(path.read_text())["seconds"] for path in Path(out).glob("cells/*/cell.json"))
    return (wall - own) / cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray

    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(
        f"machine: {platform.node()}, {cores} CPUs, ray {ray.__version__} (local, started in "
        f"{time.perf_counter() - started:.1f} s); {args.cells} cells a run, {args.rounds} rounds"
    )
    results: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        for round_ in range(1, args.rounds + 1):
            for executor in results:
                results[executor].append(overhead(executor, args.cells, cores))
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:.2f} s/cell" for k, v in results.items()))
    finally:
        ray.shutdown()
    local, remote = (statistics.median(results[name]) for name in ("local", "ray"))
    print(f"\n{'executor':10} {'added s/cell (median)':>22}")
    print(f"{'local':10} {local:22.2f}")
    print(f"{'ray':10} {remote:22.2f}")
    print(f"Ray adds {remote - local:+.2f} s per cell over local processes (target: under 1 s once started)")


if __name__ == "__main__":
    main()
