"""Error bars and significance: bootstrap intervals of known cases, paired bootstraps that tell a 10-point gap
from identical predictions, intervals written by a real run, and the marks a comparison table gives."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
import torch

from zoo.comparisons.significance import add_uncertainty
from zoo.comparisons.table import BEST, SAME, csv_text, markdown
from zoo.tasks.retrieval_metrics import relevant_ranks, summarize
from zoo.tasks.uncertainty import (
    ItemsError,
    bootstrap_interval,
    item_metrics,
    load_items,
    paired_bootstrap,
    save_items,
)


def predictions(items: int, correct: int, classes: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """``items`` labelled items of which exactly ``correct`` are predicted right."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(classes, (items,), generator=generator)
    preds = targets.clone()
    wrong = torch.randperm(items, generator=generator)[: items - correct]
    preds[wrong] = (preds[wrong] + 1) % classes
    return {"preds": preds, "targets": targets}


def test_the_interval_of_80_percent_on_1000_items_is_about_2_5_points_each_side_and_seeded():
    outputs = predictions(1000, 800)
    found = bootstrap_interval(outputs, item_metrics, "accuracy")
    assert found["value"] == pytest.approx(0.8)
    # the normal approximation: 1.96 * sqrt(0.8 * 0.2 / 1000) = 0.0248
    assert 0.020 < 0.8 - found["low"] < 0.030 and 0.020 < found["high"] - 0.8 < 0.030
    assert found["method"] == "percentile bootstrap over 1000 test items, 1000 resamples, seed 0"
    assert bootstrap_interval(outputs, item_metrics, "accuracy") == found  # seeded: the same again
    other = bootstrap_interval(outputs, item_metrics, "accuracy", seed=1)
    assert other["low"] != found["low"] or other["high"] != found["high"]
    narrow = bootstrap_interval(outputs, item_metrics, "accuracy", level=0.5)
    assert found["low"] < narrow["low"] < 0.8 < narrow["high"] < found["high"]


def test_a_metric_that_is_not_a_mean_over_items_is_recomputed_per_resample():
    outputs = predictions(300, 240, classes=3)
    found = bootstrap_interval(outputs, item_metrics, "macro_f1", resamples=200)
    assert found["low"] < found["value"] < found["high"]
    assert found["value"] == pytest.approx(item_metrics(outputs)["macro_f1"])
    assert 0.03 < found["high"] - found["low"] < 0.15


def test_1000_resamples_of_2000_items_take_well_under_a_second():
    outputs = predictions(2000, 1500)
    bootstrap_interval(outputs, item_metrics, "accuracy")  # warm-up
    started = time.perf_counter()
    bootstrap_interval(outputs, item_metrics, "accuracy")
    assert time.perf_counter() - started < 0.3


def test_identical_predictions_are_not_significantly_different_and_a_10_point_gap_is():
    a = predictions(1000, 800)
    same = paired_bootstrap(a, {k: v.clone() for k, v in a.items()}, item_metrics, "accuracy")
    assert same["difference"] == 0 and same["low"] == same["high"] == 0
    assert not same["significant"] and same["p_value"] == 1.0
    worse = {"preds": a["preds"].clone(), "targets": a["targets"]}
    right = torch.nonzero(worse["preds"] == worse["targets"]).flatten()[:100]  # 100 right answers made wrong
    worse["preds"][right] = (worse["preds"][right] + 1) % 4
    gap = paired_bootstrap(a, worse, item_metrics, "accuracy")
    assert gap["difference"] == pytest.approx(0.1) and gap["significant"] and gap["p_value"] < 0.01
    assert 0.07 < gap["low"] < 0.1 < gap["high"] < 0.13
    assert gap["method"].startswith("paired percentile bootstrap over 1000 test items")
    # two seeds: pairs seed by seed, the mean difference over seeds
    two = paired_bootstrap([a, a], [worse, a], item_metrics, "accuracy")
    assert two["difference"] == pytest.approx(0.05) and "each of 2 seeds" in two["method"]


def test_cells_scored_on_different_items_are_refused():
    a = predictions(1000, 800)
    with pytest.raises(ItemsError, match="different items \\(1000 against 999\\)"):
        paired_bootstrap(a, {k: v[:999] for k, v in a.items()}, item_metrics, "accuracy")
    shuffled = {k: v.flip(0) for k, v in a.items()}
    with pytest.raises(ItemsError, match="labels differ"):
        paired_bootstrap(a, shuffled, item_metrics, "accuracy")
    with pytest.raises(ItemsError, match="no items"):
        bootstrap_interval({"preds": torch.zeros(0), "targets": torch.zeros(0)}, item_metrics, "accuracy")


def test_retrieval_ranks_recompute_r_at_k_and_each_direction_resamples_its_own_queries():
    generator = torch.Generator().manual_seed(0)
    texts, images = torch.randn(60, 16, generator=generator), torch.randn(20, 16, generator=generator)
    image_of = [i // 3 for i in range(60)]
    t2i = relevant_ranks(texts, images, [[img] for img in image_of])
    i2t = relevant_ranks(images, texts, [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(20)])
    outputs = {
        "text->image rank": torch.tensor([r[0] for r in t2i]),
        "image->text rank": torch.tensor([r[0] for r in i2t]),
    }
    recomputed = item_metrics(outputs)
    for direction, ranks in (("text->image", t2i), ("image->text", i2t)):
        for name, value in summarize(ranks).items():
            if name != "mAP":  # needs every relevant item's rank, not kept
                assert recomputed[f"{direction} {name}"] == pytest.approx(value), name
    found = bootstrap_interval(outputs, item_metrics, "image->text R@5")
    assert "over 20 test items" in found["method"] and found["low"] <= found["value"] <= found["high"]
    assert "over 60 test items" in bootstrap_interval(outputs, item_metrics, "text->image R@1")["method"]


def test_items_round_trip_with_what_says_which_items_they_are(tmp_path):
    outputs = predictions(50, 40)
    save_items(tmp_path / "items" / "test.safetensors", outputs, "test", "abc123")
    loaded, metadata = load_items(tmp_path / "items" / "test.safetensors")
    assert all(torch.equal(loaded[k], outputs[k]) for k in outputs)
    assert metadata == {"split": "test", "data_fingerprint": "abc123", "items": "50"}


def cell(out: Path, name: str, outputs: dict[str, torch.Tensor], fingerprint: str = "abc") -> dict:
    """A finished table row whose one run saved ``outputs`` as its test items."""
    save_items(out / "cells" / name / "run" / "items" / "test.safetensors", outputs, "test", fingerprint)
    accuracy = item_metrics(outputs)["accuracy"]
    return {
        "backbone": f"text/{name}",
        "task": "text-classification",
        "data": "sst2",
        "mode": "linear-probe",
        "seeds": [0],
        "status": "ok",
        "metric": "test accuracy",
        "mean": accuracy,
        "std": 0.0,
        "runs": [f"cells/{name}/run"],
        "run_seeds": [0],
    }


def test_a_table_marks_the_best_row_and_rows_not_significantly_different_from_it(tmp_path):
    best = predictions(1000, 800)
    same = {k: v.clone() for k, v in best.items()}
    worse = {"preds": best["preds"].clone(), "targets": best["targets"]}
    right = torch.nonzero(worse["preds"] == worse["targets"]).flatten()[:100]
    worse["preds"][right] = (worse["preds"][right] + 1) % 4
    rows = [cell(tmp_path, "worse", worse), cell(tmp_path, "best", best), cell(tmp_path, "same", same)]
    rows.append(cell(tmp_path, "other-data", best, fingerprint="def"))  # other items: never paired
    rows[-1]["mean"] -= 0.01  # below the best, and its recomputed value is off: no interval either
    table = add_uncertainty({"schema": 1, "name": "marks", "rows": rows}, tmp_path)
    worse_row, best_row, same_row, other_row = table["rows"]
    assert best_row["best"] and not same_row.get("best")
    assert same_row["not_significant"] and same_row["significance"]["p_value"] == 1.0
    assert "not_significant" not in worse_row and worse_row["significance"]["significant"]
    assert worse_row["significance"]["difference"] == pytest.approx(-0.1)
    assert other_row["significance"]["note"].startswith("not compared: no seed of both rows scored the same")
    assert other_row["interval"]["method"] is None and "differs" in other_row["interval"]["note"]
    low, high = best_row["interval"]["low"], best_row["interval"]["high"]
    assert low < 0.8 < high
    text = markdown(table)
    assert f"| text/best | 0.800 [{low:.3f}, {high:.3f}] {BEST} |" in text
    assert f"0.800 [{low:.3f}, {high:.3f}] {SAME}" in text  # the identical row
    assert "0.700 [" in text and f"0.700 [{worse_row['interval']['low']:.3f}" in text
    assert f"{BEST} = the best row of its column; {SAME} = not significantly different from it" in text
    assert "-0.100 [" in text and ": significant |" in text and "p 1.000: not significant" in text
    same_line = list(csv.DictReader(io.StringIO(csv_text(table))))[2]
    assert same_line["not_significant"] == "True" and same_line["best"] == "False"
    assert float(same_line["interval_low"]) == pytest.approx(same_row["interval"]["low"])
    again = add_uncertainty(json.loads(json.dumps(table)), tmp_path)  # recomputed as it was (merge does this)
    assert again["rows"] == json.loads(json.dumps(table["rows"]))


def test_a_row_whose_runs_kept_no_items_says_so_and_is_not_marked(tmp_path):
    rows = [cell(tmp_path, "a", predictions(100, 80)), cell(tmp_path, "b", predictions(100, 60))]
    (tmp_path / "cells" / "b" / "run" / "items" / "test.safetensors").unlink()
    table = add_uncertainty({"schema": 1, "name": "old", "rows": rows}, tmp_path)
    a, b = table["rows"]
    assert a["best"] and "interval" in a and a["interval"]["low"] < 0.8
    assert b["interval"]["method"] is None and "no per-item outputs" in b["interval"]["note"]
    assert b["significance"] == {"against": "text/a", "note": "not compared: no per-item outputs"}
    assert "not_significant" not in b


def test_a_real_run_records_intervals_and_its_items(tmp_path):
    from zoo.engine import run
    from zoo.recipes import validate
    from zoo.validation import RESULTS_SCHEMA, read_json_file

    values = {
        "model": "vision/example-convnet",
        "task": "image-classification",
        "data": "digits",
        "mode": "linear-probe",
        "train_limit": 200,
        "eval_limit": 150,
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "output_dir": str(tmp_path),
        "name": "digits",
    }
    results = run(validate(values, "test"))
    run_dir = Path(results["run_dir"])
    saved = read_json_file(run_dir / "results.json", RESULTS_SCHEMA, "results.json")
    interval = saved["intervals"]["validation"]["accuracy"]
    accuracy = saved["metrics"]["validation"]["accuracy"]
    assert interval["low"] <= accuracy <= interval["high"] and interval["high"] - interval["low"] > 0.05
    items = saved["examples"]["validation"]  # digits' validation split holds 143
    assert interval["method"] == f"percentile bootstrap over {items} test items, 1000 resamples, seed 0"
    assert saved["items"] == {"validation": "items/validation.safetensors"}
    outputs, metadata = load_items(run_dir / saved["items"]["validation"])
    assert item_metrics(outputs)["accuracy"] == pytest.approx(accuracy)
    assert metadata["data_fingerprint"] == saved["data_fingerprint"] and metadata["items"] == str(items)
