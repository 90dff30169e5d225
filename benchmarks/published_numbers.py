"""Check zoo's numbers against the leaderboards' published ones, on data kept outside the repository.

    python benchmarks/published_numbers.py --banking77 DIR --stsb FILE --imagenet DIR

Each check runs the shipped backbone through zoo under the protocol the number was published with and
prints zoo's number beside the published one (from the reference files shipped in recipes/references):

- ``--banking77 DIR``: MTEB's Banking77 (``train.jsonl`` and ``test.jsonl`` with ``text`` and ``label``,
  e.g. the ``mteb/banking77`` data set written with ``Dataset.to_json``); text/minilm-l6 under
  ``mteb-classification`` against all-MiniLM-L6-v2's MTEB result (accuracy 0.8004).
- ``--stsb FILE``: STS-B's test pairs (``sentence1``, ``sentence2``, ``score``; ``mteb/stsbenchmark-sts``);
  text/minilm-l6 under ``mteb-sts`` against its MTEB result (Spearman 0.8203).
- ``--imagenet DIR``: a labelled ImageNet sample (class folders named by WordNet id, e.g. ``n01440764``);
  vision/efficientnet-lite{0,1,2} under ``mode: pretrained-head`` against timm's results-imagenet.csv
  top-1. A sample's top-1 differs from the whole validation set's by sampling error: the check passes
  when the published number lies in zoo's 95% bootstrap interval.

MTEB's numbers are reproduced when zoo's equals the published one to 1e-4 (float differences across
machines; on the same embeddings zoo equals the ``mteb`` package exactly, which the tests check). Exit 1
when a check fails; data not given is reported as not checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MTEB = REPO / "recipes/references/mteb/sentence-transformers__all-MiniLM-L6-v2/8b3219a92973c328a8e22fadcfa821b5dc75636a"
TIMM = REPO / "recipes/references/timm-results-imagenet-lite.csv"
MTEB_TOLERANCE = 1e-4


def published_mteb(task: str, metric: str) -> float:
    return float(json.loads((MTEB / f"{task}.json").read_text())["scores"]["test"][0][metric])


def published_timm(arch: str) -> float:
    with TIMM.open() as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    return float(rows[f"tf_efficientnet_{arch}.in1k"]["top1"]) / 100


def run(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    from zoo.engine import run as run_recipe
    from zoo.recipes import validate

    return run_recipe(validate({**recipe, "output_dir": str(out), "name": recipe.get("name", "check")}, "check"))


def check_banking77(folder: Path, out: Path) -> list[dict[str, Any]]:
    for split in ("train", "test"):
        if not (folder / f"{split}.jsonl").is_file():
            raise SystemExit(f"--banking77 {folder}: no {split}.jsonl there (text and label per line)")
    results = run(
        {
            "model": "text/minilm-l6",
            "task": "text-classification",
            "data": str(folder / "train.jsonl"),
            "data_options": {"test_file": str(folder / "test.jsonl")},  # the plain recipe: the protocol owns the splits
            "protocol": "mteb-classification",
            "name": "banking77",
        },
        out,
    )
    ours, theirs = results["metrics"]["test"]["accuracy"], published_mteb("Banking77Classification", "accuracy")
    return [mteb_row("MiniLM-L6, Banking77, mteb-classification accuracy", ours, theirs, results)]


def check_stsb(path: Path, out: Path) -> list[dict[str, Any]]:
    results = run(
        {
            "model": "text/minilm-l6",
            "task": "semantic-similarity",
            "data": str(path),
            "data_options": {"test_file": str(path), "test_fraction": 0},  # the whole file is the test split
            "protocol": "mteb-sts",
            "name": "stsb",
        },
        out,
    )
    ours, theirs = results["metrics"]["test"]["cosine_spearman"], published_mteb("STSBenchmark", "cosine_spearman")
    return [mteb_row("MiniLM-L6, STS-B test, mteb-sts Spearman", ours, theirs, results)]


def mteb_row(what: str, ours: float, theirs: float, results: dict[str, Any]) -> dict[str, Any]:
    items = results["examples"].get("test")
    return {"check": what, "zoo": ours, "published": theirs, "passed": abs(ours - theirs) <= MTEB_TOLERANCE, "n": items}


def check_imagenet(folder: Path, out: Path) -> list[dict[str, Any]]:
    rows = []
    for arch in ("lite0", "lite1", "lite2"):
        results = run(
            {
                "model": f"vision/efficientnet-{arch}",
                "task": "image-classification",
                "mode": "pretrained-head",
                "data": str(folder),
                "data_options": {"test_fraction": 0, "validation_fraction": 0},
                "eval_split": "train",  # nothing trains: the whole sample is scored
                "name": f"imagenet-{arch}",
            },
            out,
        )
        ours, theirs = results["metrics"]["train"]["accuracy"], published_timm(arch)
        interval = results["intervals"]["train"].get("accuracy", {})
        low, high = interval.get("low"), interval.get("high")
        passed = low is not None and low <= theirs <= high
        rows.append(
            {
                "check": f"EfficientNet-{arch.capitalize()}, ImageNet sample, pretrained-head top-1",
                "zoo": ours,
                "published": theirs,
                "passed": passed,
                "n": sum(1 for path in folder.rglob("*") if path.is_file()),
                "interval": (low, high),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77", type=Path, help="folder with MTEB Banking77's train.jsonl and test.jsonl")
    parser.add_argument("--stsb", type=Path, help="STS-B's test pairs file (sentence1, sentence2, score)")
    parser.add_argument("--imagenet", type=Path, help="a labelled ImageNet sample: class folders named by WordNet id")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="zoo-published-"))
    checks = [("banking77", check_banking77), ("stsb", check_stsb), ("imagenet", check_imagenet)]
    rows: list[dict[str, Any]] = []
    for option, check in checks:
        given = getattr(args, option)
        if given is None:
            print(f"--{option}: not given, not checked")
            continue
        if not given.exists():
            raise SystemExit(f"--{option} {given}: not found")
        rows += check(given, out)
    if not rows:
        parser.error("give at least one of --banking77, --stsb, --imagenet (the data is not in the repository)")
    print("\n| check | items | zoo | published | difference | passed |\n|---|---|---|---|---|---|")
    for row in rows:
        extra = " (95% interval [{:.4f}, {:.4f}])".format(*row["interval"]) if row.get("interval", (None,))[0] else ""
        print(
            f"| {row['check']} | {row['n']} | {row['zoo']:.4f}{extra} | {row['published']:.4f} | "
            f"{row['zoo'] - row['published']:+.4f} | {'yes' if row['passed'] else 'NO'} |"
        )
    print(f"\nruns in {out}")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
