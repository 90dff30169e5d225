"""Cold start of `zoo list` against timm's and open_clip's listings, each in a fresh process.

Runs the commands interleaved (so machine noise hits all of them alike) and
prints the median wall time and the peak resident memory of each, the ratios to
`zoo list`, and whether `zoo list` meets its target (< 0.3 s, < 60 MB).

    python benchmarks/list_cold_start.py [--repeats 15] [--baseline-repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS, TARGET_MB = 0.3, 60.0
ZOO = str(Path(sys.executable).with_name("zoo"))
COMMANDS = {
    "zoo list": [ZOO, "list"],
    "timm.list_models()": [sys.executable, "-c", "import timm; timm.list_models()"],
    "open_clip.list_pretrained()": [sys.executable, "-c", "import open_clip; open_clip.list_pretrained()"],
}


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process running ``argv``."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit status {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="runs of `zoo list`")
    parser.add_argument("--baseline-repeats", type=int, default=3, help="runs of each baseline (they take seconds)")
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    measure(COMMANDS["zoo list"])  # warm the page cache once, as a user's second command would be
    for round_ in range(args.repeats):
        for name, argv in COMMANDS.items():
            if name == "zoo list" or round_ < args.baseline_repeats:
                samples[name].append(measure(argv))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    zoo_wall = statistics.median(w for w, _ in samples["zoo list"])
    zoo_rss = max(r for _, r in samples["zoo list"])
    print(f"{'command':30} {'runs':>4} {'median s':>9} {'peak MB':>8} {'x zoo time':>10} {'x zoo MB':>9}")
    for name, runs in samples.items():
        wall, rss = statistics.median(w for w, _ in runs), max(r for _, r in runs)
        print(f"{name:30} {len(runs):4d} {wall:9.3f} {rss:8.1f} {wall / zoo_wall:10.1f} {rss / zoo_rss:9.1f}")
    ok = zoo_wall < TARGET_SECONDS and zoo_rss < TARGET_MB
    print(f"zoo list target (< {TARGET_SECONDS} s and < {TARGET_MB:.0f} MB): {'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
