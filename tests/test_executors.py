"""Where comparison cells run: Ray tasks on a real local Ray, and shards joined by --merge, give the
same table as one process at a time on this machine."""

from __future__ import annotations

import json
import os

import pytest

from zoo.comparisons import merge, plan, run_compare, spec_from_dict
from zoo.comparisons.plan import load_spec, shard
from zoo.recipes import RecipeError

from conftest import run_zoo

SPEC = {
    "name": "spread",
    "backbones": ["vision/example-convnet", "vision/cnn-tiny"],
    "seeds": [0],
    "defaults": {
        "epochs": 1,
        "batch_size": 64,
        "lr": 1e-2,
        "warmup": 0.0,
        "train_limit": 300,
        "resources": {"num_cpus": 1},
    },
    "cells": [
        {"task": "image-classification", "data": "digits", "mode": "linear-probe"},
        {"task": "image-classification", "data": "digits", "mode": "finetune"},
        # a named data set with no data root here (checked up front, it passes): the cell fails when it runs
        {"task": "image-classification", "data": "cifar10", "backbones": ["vision/example-convnet"]},
    ],
    "data_root": "no-data-here",
}


def values(table: dict) -> dict:
    """Each row's status and numbers: what must not depend on where its cells ran."""
    return {(r["backbone"], r["data"], r["mode"]): (r["status"], r.get("mean"), r.get("std")) for r in table["rows"]}


@pytest.fixture(autouse=True)
def one_thread_per_cell(monkeypatch):
    """Every cell on one torch thread, as each Ray task's num_cpus: 1 gives it: a fine-tune's numbers
    depend on the thread count, and the tables here must not depend on where their cells ran."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:  # as one_thread_per_cell (set up after this module's fixture)
        patch.setenv("OMP_NUM_THREADS", "1")
        return run_compare(spec_from_dict({**SPEC, "output_dir": str(out)}), progress=lambda line: None)


def test_cells_as_ray_tasks_give_the_same_table_and_are_reused(local_table, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'zoo[ray]')")
    statuses = {key: status for key, (status, _, _) in values(local_table).items()}
    assert list(statuses.values()).count("ok") == 4 and list(statuses.values()).count("failed") == 1
    spec = spec_from_dict({**SPEC, "output_dir": str(tmp_path / "out")})
    lines: list[str] = []
    table = run_compare(spec, progress=lines.append, executor="ray")  # a real local Ray, started and stopped
    assert values(table) == values(local_table)
    failed = next(r for r in table["rows"] if r["status"] == "failed")
    assert "no-data-here is not a directory" in failed["error"]  # the cell that raised is recorded; the rest finished
    assert sum(": ok in" in line for line in lines) == 4
    again: list[str] = []
    assert values(run_compare(spec, progress=again.append, executor="ray")) == values(local_table)
    assert sum(": reused" in line for line in again) == 4 and not any(": ok in" in line for line in again)


def test_shards_merged_give_the_same_table(local_table, tmp_path):
    out = tmp_path / "out"
    for index in (1, 2):
        run_compare(spec_from_dict({**SPEC, "output_dir": str(out)}), progress=lambda line: None, shard_of=(index, 2))
    parts = [out / "shard-1-of-2", out / "shard-2-of-2"]
    sizes = [len(json.loads((part / "table.json").read_text())["rows"]) for part in parts]
    assert sorted(sizes) == [2, 3]  # whole rows, dealt round-robin
    assert values(merge(parts, out / "all")) == values(local_table)


def test_a_shard_keeps_rows_whole_and_parents_with_the_cells_that_use_them():
    cells = plan(load_spec("recipes/quickstart.yaml"))
    shards = [shard(cells, index, 3) for index in (1, 2, 3)]
    assert sorted(id(c) for part in shards for c in part) == sorted(id(c) for c in cells)  # each cell once
    for part in shards:
        members = {id(c) for c in part}
        assert all(id(c.parent) in members for c in part if c.parent is not None)
        assert not {c.row for c in part} & {c.row for other in shards if other is not part for c in other}
    assert shard(cells, 1, 3) == shards[0]  # stable
    with pytest.raises(RecipeError, match="give I/N with 1 <= I <= N"):
        shard(cells, 4, 3)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--executor", "ray"],
            1,
            "zoo: error: --executor ray needs Ray, which is not installed: pip install 'zoo[ray]'",
        ),
        (["--shard", "3/2"], 2, "Invalid value for '--shard': '3/2' is not I/N with 1 <= I <= N"),
        (["--address", "auto"], 2, "zoo: error: --address is for --executor ray"),
    ],
)
def test_bad_executor_options_are_one_line(tmp_path, args, code, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({**SPEC, "output_dir": str(tmp_path / "out")}))
    hidden = tmp_path / "no-ray" / "ray"  # a Python path on which `import ray` fails, as where it is absent
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])}
    result = run_zoo("compare", str(spec), *args, env=env)
    assert result.returncode == code and message in result.stderr and "Traceback" not in result.stderr
    assert sum("rror" in line for line in result.stderr.splitlines()) == 1  # one line says what is wrong


def test_cell_resources_are_checked(tmp_path):
    bad = {**SPEC, "defaults": {**SPEC["defaults"], "resources": {"num_gpus": 0.5}}, "output_dir": str(tmp_path)}
    with pytest.raises(RecipeError, match="resources.num_gpus must be a whole number"):
        plan(spec_from_dict(bad))
    cells = plan(spec_from_dict({**SPEC, "output_dir": str(tmp_path)}))
    assert {tuple(sorted(c.resources.items())) for c in cells} == {(("num_cpus", 1), ("num_gpus", 0))}


def test_ctrl_c_cancels_the_ray_tasks_and_keeps_the_finished_cells(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'zoo[ray]')")
    import signal
    import subprocess
    import sys
    import time

    spec = tmp_path / "spec.yaml"  # one CPU for the whole Ray: the cells run one after another
    spec.write_text(
        json.dumps(
            {
                **SPEC,
                "cells": SPEC["cells"][:1],
                "output_dir": str(tmp_path / "out"),
                "defaults": {**SPEC["defaults"], "resources": {"num_cpus": os.cpu_count() or 1}},
            }
        )
    )
    with open(tmp_path / "stderr.log", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "zoo", "compare", str(spec), "--executor", "ray"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.time() + 240
        while not list((tmp_path / "out" / "cells").glob("*/cell.json")) and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal's whole group
        process.wait(timeout=120)
    stderr = (tmp_path / "stderr.log").read_text()
    finished = list((tmp_path / "out" / "cells").glob("*/cell.json"))
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert f"zoo: interrupted: {len(finished)} finished cell(s) kept" in stderr
    assert len(finished) == 1 and json.loads(finished[0].read_text())["status"] == "ok"  # two cells, one done
    resumed = run_zoo("compare", str(spec))  # the rest runs here; nothing finished runs again
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count(": reused") == 1 and resumed.stderr.count(": ok in") == 1
