"""Run full recipes one after another and print their results as a Markdown table.

    python benchmarks/run_recipes.py recipes/sst2-minilm-finetune.yaml recipes/cifar10-lite0-probe.yaml ...
    python benchmarks/run_recipes.py --report-only runs/*/results.json

Each recipe runs as `zoo run` in its own process (so one failure does not stop
the rest); results come from each run's results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ZOO = str(Path(sys.executable).with_name("zoo"))


def row(results: dict) -> str:
    metrics = results["metrics"]
    shown = []
    for split, values in metrics.items():
        shown.append(f"{split}: acc {values['accuracy']:.4f}, macro-F1 {values['macro_f1']:.4f}")
    train = results["train"]
    prov = results["provenance"]
    return (
        f"| {results['name']} | {results['backbone']} | {results['data']} | {results['mode']} | "
        f"{'; '.join(shown)} | {train['steps']} steps, {train['epochs']} epochs | "
        f"{results['wall_seconds'] / 60:.1f} min | "
        f"{train['train_samples_per_second']} | seed {prov['seed']}, {prov['device']}, {prov['cpus']} CPUs |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="recipes to run (or results.json files with --report-only)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to every zoo run")
    args = parser.parse_args()
    results_files = []
    for path in args.paths:
        if args.report_only:
            results_files.append(Path(path))
            continue
        command = [ZOO, "run", path, *[f"--set={o}" for o in args.overrides]]
        print("running", " ".join(command), flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"FAILED {path}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
            continue
        results_files.append(Path(json.loads(done.stdout)["run_dir"]) / "results.json")
    print("| run | backbone | data | mode | result (held-out) | training | wall | train samples/s | provenance |")
    print("|---|---|---|---|---|---|---|---|---|")
    for file in results_files:
        print(row(json.loads(file.read_text())), flush=True)


if __name__ == "__main__":
    main()
