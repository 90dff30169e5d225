"""The main job's wall time, cold and warm, as a new user meets it (the venv already built).

Runs ``zoo compare recipes/quickstart.yaml --jobs 2`` twice into a fresh output folder with a
fresh ``ZOO_CACHE``: first cold (no cache, no finished cell), then warm (every cell reused). Prints
both times against the targets (cold < 10 min, warm < 1 min), whether any third-party progress bar
or log line leaked into the output, and the numbers the issue asks of the trained CLIP-style row.

    python benchmarks/quickstart_time.py [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = str(Path(sys.executable).with_name("zoo"))
TARGETS = {"cold": 600.0, "warm": 60.0}
LEAKS = ("Loading weights", "LOAD REPORT", "it/s]", "[transformers]", "safetensors")


def run(out: Path, cache: Path, jobs: int) -> tuple[float, str]:
    env = {**os.environ, "ZOO_CACHE": str(cache)}
    started = time.perf_counter()
    result = subprocess.run(
        [ZOO, "compare", str(REPO / "recipes" / "quickstart.yaml"), "--jobs", str(jobs), "--output", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"zoo compare failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="write the results here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="zoo-quickstart-"))
    out, cache = root / "results", root / "cache"
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; output {out}")
    times, outputs = {}, {}
    for name in ("cold", "warm"):
        times[name], outputs[name] = run(out, cache, args.jobs)
        verdict = "met" if times[name] < TARGETS[name] else "NOT met"
        print(f"{name:5} {times[name]:7.1f} s  (target < {TARGETS[name]:.0f} s: {verdict})")
    leaked = [leak for leak in LEAKS if leak in outputs["cold"]]
    print(f"third-party progress bars or log lines in the output: {', '.join(leaked) or 'none'}")
    print(f"warm run reused every cell: {'running' not in outputs['warm'] and ': ok in' not in outputs['warm']}")
    rows = json.loads((out / "table.json").read_text())["rows"]
    for row in rows:
        if "+" in row["backbone"] and row["status"] == "ok":
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in row["metrics"].items() if "R@" in k or k == "accuracy")
            print(f"{row['backbone']} {row['task']} {row['data']}: {metrics} (chance {row.get('chance')})")
    print(f"report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
