"""Several `zoo` processes sharing one cache directory and one compare results directory:
no corrupted cache entry, no lost or duplicated result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from zoo.data.cache import CACHE_MAGIC, load_checksummed

from conftest import DATA_ROOT, REPO

PROCESSES = 3  # more than the 2 cores of the build machine, so they truly interleave


def start(args: list[str], cache) -> subprocess.Popen:
    env = {**os.environ, "ZOO_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(processes: list[subprocess.Popen]) -> list[str]:
    errors = []
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-2000:]
        errors.append(stderr)
    return errors


@pytest.mark.skipif(not (DATA_ROOT / "text").is_dir(), reason="needs ../shared/data")
def test_concurrent_runs_share_one_cache_without_corrupting_it(tmp_path):
    cache = tmp_path / "cache"
    recipe = str(REPO / "recipes" / "sst2-minilm-probe.yaml")
    runs = [
        start(
            [
                "run",
                recipe,
                "--set",
                "model=text/bert-tiny",
                "--set",
                "train_limit=300",
                "--set",
                "eval_limit=60",
                "--set",
                "epochs=2",
                "--set",
                "test_split=null",
                "--set",
                f"output_dir={tmp_path / 'runs'}",
                "--set",
                f"name=r{i}",
            ],
            cache,
        )
        for i in range(PROCESSES)
    ]
    finish(runs)
    metrics = [
        json.loads((tmp_path / "runs" / f"r{i}" / "results.json").read_text())["metrics"] for i in range(PROCESSES)
    ]
    assert all(m == metrics[0] for m in metrics)  # same data, same cached features, same result
    entries = list(cache.rglob("*.pt"))
    assert {p.parent.name for p in entries} >= {"tokens", "features"}
    for entry in entries:  # every entry whole: its checksum (over key and payload) matches
        load_checksummed(entry, CACHE_MAGIC, entry.stem.encode())
    assert not [p for p in cache.rglob(".*") if p.is_file()], "temporary files left behind"


def test_concurrent_compares_on_one_results_directory_run_each_cell_once(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "backbones": ["vision/example-convnet"],
                "seeds": [0, 1],
                "output_dir": str(tmp_path / "out"),
                "defaults": {"epochs": 2, "batch_size": 64, "lr": 1e-2, "warmup": 0.0},
                "cells": [{"task": "image-classification", "data": "digits", "mode": "linear-probe"}],
            }
        )
    )
    logs = finish([start(["compare", str(spec)], tmp_path / "cache") for _ in range(PROCESSES)])
    assert sum(log.count(": ok in") for log in logs) == 2  # two cells, each run by one process
    assert sum(log.count(": reused") for log in logs) == 2 * (PROCESSES - 1)
    (row,) = json.loads((tmp_path / "out" / "table.json").read_text())["rows"]
    assert row["status"] == "ok" and row["seeds"] == [0, 1]
