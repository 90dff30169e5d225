"""`torchrun --nproc_per_node=2 -m zoo run` on CPU (gloo) matches one process with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.engine import run
from zoo.recipes import load_recipe

from conftest import REPO, TINY_CONTRASTIVE

OPTIONS = [
    "train_limit=128",
    "eval_limit=64",
    "batch_size=32",
    "epochs=3",
    "log_every=1",
    "checkpoint_every=4",
    "lr=1e-2",
    "name=ddp",
]
RECIPE = REPO / "recipes" / "sst2-minilm-probe.yaml"


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="needs torchrun")
def test_two_processes_match_one_and_only_rank_zero_writes(tmp_path):
    single = run(load_recipe(RECIPE, [*OPTIONS, f"output_dir={tmp_path / 'one'}"]))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun,
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "zoo",
        "run",
        str(RECIPE),
        "--json",
        *[f"--set={o}" for o in OPTIONS],
        f"--set=output_dir={tmp_path / 'two'}",
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [line for line in done.stdout.splitlines() if line.startswith('  "run_dir"')]
    assert len(printed) == 1, "only rank 0 prints the results"
    assert done.stderr.count("zoo run ddp:") == 1, "only rank 0 prints the run's summary"
    two = json.loads((tmp_path / "two" / "ddp" / "results.json").read_text())
    assert two["provenance"]["world_size"] == 2 and single["provenance"]["world_size"] == 1
    one_rows, two_rows = rows(tmp_path / "one" / "ddp"), rows(tmp_path / "two" / "ddp")
    assert len(one_rows) == len(two_rows), "each row is written once, by rank 0"
    for a, b in zip(one_rows, two_rows, strict=False):
        assert a["step"] == b["step"] and a["split"] == b["split"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
    for name, value in single["metrics"]["validation"].items():
        assert two["metrics"]["validation"][name] == pytest.approx(value, rel=1e-4, abs=1e-5)
    # per-item outputs in the split's order, whatever the processes: two runs pair item by item
    from zoo.tasks.uncertainty import load_items

    one_items, _ = load_items(tmp_path / "one" / "ddp" / "items" / "validation.safetensors")
    two_items, _ = load_items(tmp_path / "two" / "ddp" / "items" / "validation.safetensors")
    assert torch.equal(one_items["targets"], two_items["targets"])
    assert (one_items["preds"] == two_items["preds"]).float().mean() > 0.97  # fp differences may flip a rare tie
    written = sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert written == sorted(
        p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*") if p.is_file()
    )


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="needs torchrun")
@pytest.mark.skipif(
    not (REPO.parent / "shared" / "data" / "image_text").is_dir() and "ZOO_DATA" not in os.environ,
    reason="needs ../shared/data",
)
def test_contrastive_retrieval_runs_under_torchrun(tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    options = [
        *TINY_CONTRASTIVE,
        "log_every=1",
        f"output_dir={tmp_path}",
        "name=lit",
    ]
    command = [
        torchrun,
        "--nproc_per_node=2",
        "--master_port=29534",
        "-m",
        "zoo",
        "run",
        str(REPO / "recipes" / "flickr8k-minilm-text2text.yaml"),
        *[f"--set={o}" for o in options],
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "lit" / "results.json").read_text())
    assert results["provenance"]["world_size"] == 2 and results["train"]["steps"] == 3
    assert 0 <= results["metrics"]["test"]["text->text R@1"] <= 1
