"""`zoo compare`: the table across modalities, reuse of finished cells, failures in cells, merging."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from zoo.comparisons import load_spec, merge, run_compare, spec_from_dict
from zoo.comparisons.executors import cell_environments
from zoo.errors import ZooError
from zoo.recipes import RecipeError

from conftest import run_zoo

SPEC = """
name: tiny
output_dir: {out}
backbones: [text/bert-tiny, "vision/example-*"]
seeds: [0, 1]
defaults: {{epochs: 3, batch_size: 64, lr: 1.0e-2, warmup: 0.0, eval_limit: 40, test_split: test}}
cells:
  - {{task: text-classification, data: sst2, mode: linear-probe, train_limit: 100}}
  - {{task: image-classification, data: digits, mode: linear-probe, train_limit: 100}}
"""


def write_spec(tmp_path: Path, text: str = SPEC, out: str = "results") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text.format(out=tmp_path / out))
    return path


def test_compare_writes_one_table_across_modalities_and_reuses_cells(tmp_path):
    lines: list[str] = []
    table = run_compare(load_spec(write_spec(tmp_path)), progress=lines.append, jobs=2)  # two cells at once
    out = tmp_path / "results"
    for name in (
        "table.md",
        "table.csv",
        "table.json",
        "metric_vs_params.png",
        "metric_vs_throughput.png",
        "per_task.png",
    ):
        assert (out / name).stat().st_size > 0, name
    rows = {(r["backbone"], r["task"]): r for r in table["rows"]}
    text_row = rows[("text/bert-tiny", "text-classification")]
    assert text_row["status"] == "ok" and text_row["seeds"] == [0, 1] and text_row["metric"] == "test accuracy"
    # the row aggregates its cells' runs: the mean and sample std of their test accuracies, against their chance
    runs = [json.loads((out / run / "results.json").read_text()) for run in text_row["runs"]]
    accuracies = [result["metrics"]["test"]["accuracy"] for result in runs]
    assert len(accuracies) == 2 and text_row["mean"] == pytest.approx(statistics.mean(accuracies))
    assert text_row["std"] == pytest.approx(statistics.stdev(accuracies))
    assert text_row["chance"] == pytest.approx(runs[0]["chance"]["test"]["accuracy"], abs=1e-6)
    assert text_row["below_chance"] == (text_row["mean"] < text_row["chance"])
    image_row = rows[("vision/example-convnet", "image-classification")]  # seen: 0.30 (0.28, 0.33), chance 0.10
    assert image_row["status"] == "ok" and image_row["mean"] > 2 * image_row["chance"] > 0.2
    prov = text_row["provenance"]
    assert prov["versions"]["torch"] and prov["device"] and prov["data_fingerprint"] and len(prov["recipe_hash"]) == 2
    threads = os.environ.get("OMP_NUM_THREADS") or max(1, os.cpu_count() // 2)  # jobs=2: half the cores each
    assert prov["threads"] == int(threads)
    assert text_row["params"] == 4_385_920 and text_row["gflops_per_sample"] > 0
    assert text_row["inference_samples_per_s"] > 0 and text_row["peak_rss_mb"] > 0
    skipped = rows[("vision/example-convnet", "text-classification")]
    assert skipped["status"] == "skipped" and "needs a text or multimodal backbone" in skipped["error"]
    # its 95% interval: a bootstrap over the test items of the mean over both seeds, shown after "± std"
    interval = text_row["interval"]
    assert interval["low"] < text_row["mean"] < interval["high"] and "each of 2 seeds" in interval["method"]
    markdown = (out / "table.md").read_text()
    assert markdown.startswith("# tiny\n") and "| text/bert-tiny |" in markdown and "±" in markdown
    shown = f"{text_row['mean']:.3f} ± {text_row['std']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"
    assert shown in markdown and "[low, high] = 95% interval, a percentile bootstrap over the test items" in markdown
    assert (
        "skipped: text-classification needs a text or multimodal backbone; vision/example-convnet is an image backbone"
        in markdown
    )
    assert "| 4,385,920 |" in markdown  # bert-tiny's parameters, with thousands separators
    assert sum(": ok in" in line for line in lines) == 4 and len(lines) == 4  # one line per cell run
    again: list[str] = []  # one at a time now: the same cells, so all reused and the same table
    assert run_compare(load_spec(write_spec(tmp_path)), progress=again.append)["rows"] == table["rows"]
    assert not any(": ok in" in line for line in again) and sum("reused" in line for line in again) == 4
    tampered = next((out / "cells").glob("*/cell.json"))  # a finished cell's record, edited: never trusted
    record = json.loads(tampered.read_text())
    record["metrics"][next(iter(record["metrics"]))]["accuracy"] = ["<script>"]
    tampered.write_text(json.dumps(record))
    third: list[str] = []
    assert run_compare(load_spec(write_spec(tmp_path)), progress=third.append)["rows"][0]["status"] == "ok"
    assert sum("is not of type" in line and "running it again" in line for line in third) == 1
    assert sum("reused" in line for line in third) == 3


def test_concurrent_cells_share_the_cores_and_get_a_gpu_each_where_there_are_several():
    assert cell_environments(1, {"PATH": "/bin"}, 16, ["0", "1"]) == [None]  # one at a time: this process's own
    four = cell_environments(4, {"PATH": "/bin"}, 16, ["GPU-a1", "3"])  # entries as CUDA_VISIBLE_DEVICES lists them
    assert [env["CUDA_VISIBLE_DEVICES"] for env in four] == ["GPU-a1", "3", "GPU-a1", "3"]
    assert {env["OMP_NUM_THREADS"] for env in four} == {"4"} and all(env["PATH"] == "/bin" for env in four)
    one_gpu = cell_environments(3, {"OMP_NUM_THREADS": "2"}, 2, ["0"])  # a user's thread count is kept
    assert one_gpu == [{"OMP_NUM_THREADS": "2"}] * 3
    assert cell_environments(4, {}, 2, []) == [{"OMP_NUM_THREADS": "1"}] * 4


def test_bad_specs(tmp_path):
    with pytest.raises(ZooError, match="unknown backbone 'text/nope'"):
        run_compare(load_spec(write_spec(tmp_path, SPEC.replace("text/bert-tiny", "text/nope"))))
    with pytest.raises(ZooError, match="unknown task 'text-clasification'"):
        run_compare(
            load_spec(write_spec(tmp_path, SPEC.replace("task: text-classification", "task: text-clasification")))
        )
    with pytest.raises(RecipeError, match="unknown key.s. colour"):
        load_spec(write_spec(tmp_path, SPEC + "colour: red\n"))
    with pytest.raises(RecipeError, match="no backbone matches 'vision/none-\\*'"):
        run_compare(load_spec(write_spec(tmp_path, SPEC.replace("vision/example-*", "vision/none-*"))))


def test_merge_joins_tables_and_shows_missing_cells(tmp_path):
    first = {
        "schema": 1,
        "name": "a",
        "rows": [
            {
                "backbone": "text/a",
                "task": "t",
                "data": "d",
                "mode": "m",
                "status": "ok",
                "seeds": [0],
                "mean": 0.5,
                "std": 0.0,
                "metric": "test accuracy",
                "error": None,
            }
        ],
    }
    second = {
        "schema": 1,
        "name": "b",
        "rows": [
            {
                "backbone": "text/b",
                "task": "t2",
                "data": "d",
                "mode": "m",
                "status": "ok",
                "seeds": [0],
                "mean": 0.7,
                "std": 0.0,
                "metric": "test accuracy",
                "error": None,
            }
        ],
    }
    for name, table in (("a", first), ("b", second)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "table.json").write_text(json.dumps(table))
    merged = merge([tmp_path / "a", tmp_path / "b"], tmp_path / "all")
    assert len(merged["rows"]) == 2
    markdown = (tmp_path / "all" / "table.md").read_text()
    assert "| text/a | 0.500 | — |" in markdown and "| text/b | — | 0.700 |" in markdown
    assert markdown.startswith("# a + b\n") and merged["name"] == "a + b"  # no spec name of its own: theirs
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "table.json").write_text(json.dumps({**first, "schema": 0}))
    with pytest.raises(ZooError, match="table schema 0 cannot be merged with schema 1"):
        merge([tmp_path / "a", tmp_path / "old"], tmp_path / "x")
    result = run_zoo("compare", "--merge", str(tmp_path / "a"), str(tmp_path / "old"), "-o", str(tmp_path / "y"))
    assert result.returncode == 1 and "cannot be merged" in result.stderr and "Traceback" not in result.stderr


DIGITS = {
    "backbones": ["vision/example-convnet"],
    "seeds": [0, 1, 2],
    "defaults": {"epochs": 2, "batch_size": 64, "lr": 1e-2, "warmup": 0.0},
    "cells": [{"task": "image-classification", "data": "digits", "mode": "linear-probe"}],
}


def test_python_api_takes_a_dict_spec_and_a_failing_cell_leaves_the_rest(tmp_path):
    import zoo

    lines: list[str] = []
    cells = [*DIGITS["cells"], {"task": "image-classification", "data": "cifar10", "mode": "linear-probe"}]
    table = zoo.compare(
        {**DIGITS, "seeds": [0], "cells": cells, "data_root": str(tmp_path / "missing")},
        output_dir=str(tmp_path / "api"),
        progress=lines.append,
    )
    row, failed = table["rows"]
    assert row["status"] == "ok" and row["metric"] == "validation accuracy" and 0 < row["mean"] <= 1
    assert failed["status"] == "failed" and "is not a directory" in failed["error"]  # the rest still completes
    assert lines[0].startswith("zoo: warning: data root") and "The cells on cifar10 will fail" in lines[0]
    assert "failed: " in (tmp_path / "api" / "table.md").read_text() and any(": failed in" in line for line in lines)
    with pytest.raises(RecipeError, match="compare spec: cells must be a non-empty list"):
        zoo.compare({**DIGITS, "cells": []})


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"], ids=["killed", "ctrl-c"])
def test_a_compare_killed_mid_table_resumes_where_it_stopped(tmp_path, signal_name):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    spec = tmp_path / "digits.yaml"
    spec.write_text(yaml.safe_dump({**DIGITS, "seeds": [0, 1], "output_dir": str(tmp_path / "out")}))
    with open(tmp_path / "stderr.log", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "zoo", "compare", str(spec)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.time() + 240
        while not list((tmp_path / "out" / "cells").glob("*/cell.json")) and time.time() < deadline:
            time.sleep(0.2)
        # the compare and the cell it is running, mid-table; Ctrl-C reaches the terminal's whole group
        os.killpg(process.pid, getattr(signal, signal_name))
        process.wait(timeout=60)
    finished = list((tmp_path / "out" / "cells").glob("*/cell.json"))
    assert len(finished) == 1 and not (tmp_path / "out" / "table.md").exists()
    if signal_name == "SIGINT":
        stderr = (tmp_path / "stderr.log").read_text()
        assert process.returncode == 130 and "Traceback" not in stderr, stderr
        assert "zoo: interrupted: 1 finished cell(s) kept in " in stderr and "run the same command again" in stderr
    resumed = run_zoo("compare", str(spec))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count(": reused") == len(finished) and resumed.stderr.count(": ok in") == 1
    assert "| vision/example-convnet |" in resumed.stdout


TRAINED = {
    "backbones": ["vision/example-convnet", {"trained": "tuned"}],
    "defaults": {"epochs": 2, "batch_size": 64, "lr": 1e-2, "warmup": 0.0},
    "cells": [
        {
            "id": "tuned",
            "label": "digits fine-tune",
            "backbones": ["vision/example-convnet"],
            "task": "image-classification",
            "data": "digits",
            "mode": "finetune",
        },
        {"task": "image-classification", "data": "digits", "mode": "linear-probe", "train_limit": 300},
    ],
}


def test_a_relative_output_dir_holds_the_runs_of_trained_and_child_cells(tmp_path, monkeypatch):
    # a cell's recipe.yaml sits deep in OUTPUT/cells/KEY/ and zoo run reads its paths from there: the output
    # folder and a parent's trained backbone, relative to the current folder, must still land where they should
    monkeypatch.chdir(tmp_path)
    spec = {**TRAINED, "defaults": {**TRAINED["defaults"], "epochs": 1}, "output_dir": "out"}
    table = run_compare(spec_from_dict(spec), progress=lambda line: None)
    assert [row["status"] for row in table["rows"]] == ["ok"] * 3, [row.get("error") for row in table["rows"]]
    assert not list((tmp_path / "out" / "cells").glob("*/out"))  # nothing nested under a cell
    assert len(list((tmp_path / "out" / "cells").glob("*/run/results.json"))) == 3


def test_a_cell_can_evaluate_what_another_cell_trained(tmp_path):
    lines: list[str] = []
    table = run_compare(spec_from_dict({**TRAINED, "output_dir": str(tmp_path / "out")}), progress=lines.append, jobs=2)
    rows = {(r["backbone"], r["mode"]): r for r in table["rows"]}
    child = rows[("vision/example-convnet + digits fine-tune", "linear-probe")]
    parent = rows[("vision/example-convnet", "finetune")]
    assert child["status"] == parent["status"] == rows[("vision/example-convnet", "linear-probe")]["status"] == "ok"
    assert child["provenance"]["parent"]["cell"] == "tuned"
    assert child["provenance"]["parent"]["key"] == parent["runs"][0].split("/")[1]
    assert child["provenance"]["weights"].endswith("run/model/backbone")  # the parent's saved backbone
    assert child["chance"] == pytest.approx(0.1, abs=0.02) and child["below_chance"] is False
    order = [line for line in lines if ": ok in" in line]
    assert "+ digits fine-tune" in order[-1]  # the cell using what "tuned" trained ran after it
    again: list[str] = []
    run_compare(spec_from_dict({**TRAINED, "output_dir": str(tmp_path / "out")}), progress=again.append)
    assert sum(": reused" in line for line in again) == 3 and not any(": ok in" in line for line in again), again
    page = (tmp_path / "out" / "report.html").read_text()
    assert "vision/example-convnet + digits fine-tune" in page and 'href="cells/' in page


@pytest.mark.parametrize(
    "cells, message",
    [
        (
            [
                {"id": "a", "backbones": [{"trained": "b"}], "task": "image-classification", "data": "digits"},
                {"id": "b", "backbones": [{"trained": "a"}], "task": "image-classification", "data": "digits"},
            ],
            "cells a -> b -> a depend on each other's trained backbones",
        ),
        (
            [{"backbones": [{"trained": "nope"}], "task": "image-classification", "data": "digits"}],
            r"\{trained: nope\} names no cell; the cells' ids: none has an id",
        ),
        (
            [
                {"id": "a", "task": "image-classification", "data": "digits", "mode": "linear-probe"},
                {"backbones": [{"trained": "a"}], "task": "image-classification", "data": "digits"},
            ],
            "cell 'a' runs mode linear-probe, which trains no backbone",
        ),
    ],
    ids=["cycle", "missing-parent", "probe-parent"],
)
def test_a_bad_dependency_is_one_line_before_anything_runs(tmp_path, cells, message):
    spec = {"backbones": ["vision/example-convnet"], "cells": cells, "output_dir": str(tmp_path / "out")}
    with pytest.raises(RecipeError, match=message):
        run_compare(spec_from_dict(spec))
    assert not list((tmp_path / "out" / "cells").glob("*"))
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    result = run_zoo("compare", str(tmp_path / "spec.yaml"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_failed_parent_skips_its_cells_with_the_reason_and_the_rest_run(tmp_path):
    # its data set's root is missing here: checked up front it passes, and the cell fails when it runs
    failing = {**TRAINED["cells"][0], "data": "cifar10"}
    spec = {
        **TRAINED,
        "cells": [failing, TRAINED["cells"][1]],
        "output_dir": str(tmp_path / "out"),
        "data_root": str(tmp_path / "no-data-here"),
    }
    lines: list[str] = []
    table = run_compare(spec_from_dict(spec), progress=lines.append)
    rows = {(r["backbone"], r["mode"]): r for r in table["rows"]}
    assert rows[("vision/example-convnet", "finetune")]["status"] == "failed"
    child = rows[("vision/example-convnet + digits fine-tune", "linear-probe")]
    assert child["status"] == "skipped" and child["error"].startswith("its parent cell 'tuned' failed: ")
    assert rows[("vision/example-convnet", "linear-probe")]["status"] == "ok"
    assert any("skipped (its parent cell 'tuned' failed" in line for line in lines)


FAILING = """
name: my digits table
output_dir: {out}
backbones: [vision/example-convnet, text/bert-tiny]
data_root: {out}/no-data-here
defaults: {{epochs: 2, batch_size: 64, lr: 1.0e-2, warmup: 0.0}}
cells:
  - {{task: image-classification, data: digits, mode: linear-probe, train_limit: 300}}
  - {{task: image-classification, data: cifar10, mode: linear-probe}}
"""


def test_a_failing_cell_exits_1_naming_it_and_the_table_reads_well(tmp_path):
    spec = write_spec(tmp_path, FAILING)
    result = run_zoo("compare", str(spec))
    assert result.returncode == 1, result.stderr
    assert "zoo: error: 1 cell(s) failed; the table marks them (--allow-failures to exit 0):\n" in result.stderr
    failed_line = "  vision/example-convnet · image-classification / cifar10 / linear-probe, seed 0: "
    assert failed_line in result.stderr and "is not a directory" in result.stderr.split(failed_line)[1]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr  # no matplotlib warning either
    out = tmp_path / "results"
    table = json.loads((out / "table.json").read_text())
    markdown = (out / "table.md").read_text()
    assert table["name"] == "my digits table" and markdown.startswith("# my digits table\n")
    assert "<h1>my digits table</h1>" in (out / "report.html").read_text()
    ok = next(r for r in table["rows"] if r["status"] == "ok")
    matrix_row = next(line for line in markdown.splitlines() if line.startswith("| vision/example-convnet |"))
    # one seed: the value and its bootstrap interval, three decimals, no "±"; the failed cell with its reason;
    # the skipped with its own
    low, high = ok["interval"]["low"], ok["interval"]["high"]
    assert f"| {ok['mean']:.3f} [{low:.3f}, {high:.3f}] | failed: " in matrix_row and "±" not in markdown
    assert (
        "skipped: image-classification needs an image or multimodal backbone; text/bert-tiny is a text backbone"
        in markdown
    )
    assert f"| {ok['params']:,} |" in markdown and "e+0" not in markdown
    assert ok["run_names"] == ["vision/example-convnet · image-classification / digits / linear-probe, seed 0"]
    csv_rows = list(__import__("csv").DictReader((out / "table.csv").open()))
    assert {r["status"]: r["error"] for r in csv_rows}.keys() == {"ok", "failed", "skipped"}
    assert all(r["error"] for r in csv_rows if r["status"] != "ok") and all(r["std"] == "" for r in csv_rows)
    allowed = run_zoo("compare", str(spec), "--allow-failures")
    assert allowed.returncode == 0, allowed.stderr
    assert (
        "zoo: warning: 1 cell(s) failed" in allowed.stderr and ": reused" in allowed.stderr
    )  # still said, and the rest reused


@pytest.mark.parametrize(
    "change, message",
    [
        (("data: digits", "data: digts"), "cell 1: unknown dataset 'digts': did you mean 'digits'?"),
        (("vision/example-convnet,", "vision/example-convnt,"), "cell 1: unknown backbone 'vision/example-convnt'"),
        (("mode: linear-probe, train", "mode: linear-prob, train"), "has no mode 'linear-prob'; did you mean"),
        (("train_limit: 300", "task_options: {{image_sise: 64}}"), "has no option 'image_sise'; did you mean"),
        (("data: cifar10,", "data: cifar10, data_options: {{test_fractoin: 0.1}},"), "cell 2: data_options: "),
    ],
    ids=["data", "backbone", "mode", "task-option", "data-option"],
)
def test_a_misspelt_name_in_any_cell_is_exit_2_before_anything_runs(tmp_path, change, message):
    spec = write_spec(tmp_path, FAILING.replace(*change))
    result = run_zoo("compare", str(spec))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "compare spec 'spec'" not in result.stderr  # named by its name
    assert "my digits table" in result.stderr and not (tmp_path / "results").exists()  # nothing ran


def test_a_label_without_an_id_is_one_error(tmp_path):
    cells = [{**DIGITS["cells"][0], "label": "my probe"}]
    with pytest.raises(RecipeError, match="cell 1: label 'my probe' names the rows of what this cell trains"):
        run_compare(spec_from_dict({**DIGITS, "cells": cells, "output_dir": str(tmp_path / "out")}))
    assert not (tmp_path / "out").exists()


def test_a_local_model_folder_is_a_backbone_named_by_the_folder(tmp_path):
    import zoo
    from zoo.comparisons import plan

    zoo.load("vision/example-convnet").save(tmp_path / "models" / "my-convnet")
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "local.yaml"
    spec.write_text(
        "backbones: [../models/my-convnet]\n"
        f"output_dir: {tmp_path / 'out'}\n"
        "defaults: {epochs: 2, batch_size: 64, lr: 1.0e-2, warmup: 0.0}\n"
        "cells:\n  - {task: image-classification, data: digits, mode: linear-probe, train_limit: 300}\n"
        "  - {task: text-classification, data: sst2, mode: linear-probe}\n"
    )
    cell, skipped = plan(load_spec(spec))
    assert cell.backbone == "my-convnet" and cell.recipe["model"] == str(tmp_path / "models" / "my-convnet")
    assert skipped.skip == "text-classification needs a text or multimodal backbone; my-convnet is an image backbone"
    key = cell.key
    table = run_zoo("compare", str(spec))  # run from the repository: the folder is found beside the spec
    assert table.returncode == 0, table.stderr
    row = next(r for r in json.loads((tmp_path / "out" / "table.json").read_text())["rows"] if r["status"] == "ok")
    assert row["backbone"] == "my-convnet" and row["family"] and row["params"] > 0 and 0 < row["mean"] <= 1
    assert "| my-convnet |" in table.stdout
    assert key == plan(load_spec(spec))[0].key  # the same folder, the same cell: reused
    zoo.load("vision/example-convnet").save(tmp_path / "models" / "my-convnet")  # saved again: run again
    assert key != plan(load_spec(spec))[0].key
    missing = tmp_path / "specs" / "missing.yaml"
    missing.write_text(spec.read_text().replace("my-convnet", "no-such-model"))
    result = run_zoo("compare", str(missing))
    assert result.returncode == 2 and "backbone '../models/no-such-model' is no file or folder" in result.stderr


def test_the_spec_format_in_help_is_a_spec_that_plans(tmp_path):
    import textwrap

    import yaml

    import zoo
    from zoo.comparisons import plan

    text = run_zoo("compare", "--help", check=True).stdout
    example = textwrap.dedent(text.split("is a full one):\n")[1].split("\n  Every cell")[0])
    values = yaml.safe_load(example)
    assert {"name", "output_dir", "seeds", "data_root", "defaults", "backbones", "cells"} <= set(values)
    zoo.load("vision/example-convnet").save(tmp_path / "my-model")
    (tmp_path / "spec.yaml").write_text(example)
    cells = plan(load_spec(tmp_path / "spec.yaml"))
    shown = {cell.backbone for cell in cells}
    assert {"text/bert-tiny", "vision/example-convnet", "my-model", "vision/example-convnet + digits tuned"} <= shown


def test_paths_in_cells_are_relative_to_the_spec_file(tmp_path):
    from zoo.comparisons import plan

    (tmp_path / "specs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.tsv").write_text("text\tlabel\ngood\tpos\nbad\tneg\n")
    spec = tmp_path / "specs" / "paths.yaml"
    spec.write_text(
        "backbones: [text/bert-tiny]\ndata_root: some/data\n"
        "cells:\n  - {task: text-classification, data: ../data/mine.tsv, mode: linear-probe}\n"
    )
    (cell,) = plan(load_spec(spec))
    assert cell.recipe["data"] == str(tmp_path / "data" / "mine.tsv")  # where the cell's run finds it
    assert cell.recipe["data_root"] == os.path.abspath("some/data")  # the spec's data_root: from here


def test_a_two_cell_table_shows_intervals_and_marks_the_best_row_against_the_other(tmp_path):
    spec = spec_from_dict(
        {
            "name": "marks",
            "output_dir": str(tmp_path / "out"),
            "backbones": ["text/bert-tiny", "text/gpt-tiny"],
            "seeds": [0],
            "defaults": {"epochs": 2, "batch_size": 64, "lr": 1e-2, "warmup": 0.0, "train_limit": 100},
            "cells": [{"task": "text-classification", "data": "sst2", "mode": "linear-probe", "eval_limit": 200}],
        }
    )
    table = run_compare(spec, progress=lambda line: None)
    rows = sorted(table["rows"], key=lambda row: -row["mean"])
    best, other = rows
    assert best["best"] and not other.get("best")
    for row in rows:  # one seed: the bootstrap interval of the run, as its results.json records it
        run = json.loads((tmp_path / "out" / row["runs"][0] / "results.json").read_text())
        assert row["interval"] == run["intervals"]["validation"]["accuracy"]
        assert row["interval"]["low"] <= row["mean"] <= row["interval"]["high"]
    found = other["significance"]
    assert found["against"] == best["backbone"] and found["difference"] == pytest.approx(other["mean"] - best["mean"])
    assert found["low"] <= found["difference"] <= found["high"] and 0 < found["p_value"] <= 1
    assert other.get("not_significant", False) == (not found["significant"])
    assert found["significant"] == (found["high"] < 0)
    markdown = (tmp_path / "out" / "table.md").read_text()
    mark = " ≈" if other.get("not_significant") else ""
    interval = other["interval"]
    assert f"| {other['mean']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]{mark}" in markdown
    assert f"| {best['mean']:.3f} [{best['interval']['low']:.3f}, {best['interval']['high']:.3f}] ★" in markdown
    assert "★ = the best row of its column; ≈ = not significantly different from it" in markdown
    page = (tmp_path / "out" / "report.html").read_text()
    assert "★ = the best row of its column" in page and f"p {found['p_value']:.3f}" in page
    saved = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [row.get("best", False) for row in saved["rows"]] == [row.get("best", False) for row in table["rows"]]
