"""Retrieval and zero-shot: metrics against brute force, tiny recipes that learn, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.data import DataError, Dataset, Split
from zoo.engine import run
from zoo.recipes import load_recipe
from zoo.tasks.objectives import info_nce
from zoo.tasks.retrieval import Retrieval
from zoo.tasks.retrieval_metrics import relevant_ranks, summarize

from conftest import DATA_ROOT, REPO

FLICKR = DATA_ROOT / "image_text" / "flickr8k"


def brute_force(queries, gallery, relevant):
    from sklearn.metrics import average_precision_score

    scores = queries @ gallery.T
    order = scores.argsort(dim=1, descending=True)
    firsts, aps = [], []
    for q, rel in enumerate(relevant):
        positions = [int((order[q] == r).nonzero()) + 1 for r in rel]
        firsts.append(min(positions))
        truth = torch.zeros(len(gallery))
        truth[rel] = 1
        aps.append(average_precision_score(truth.numpy(), scores[q].numpy()))
    firsts = torch.tensor(firsts, dtype=torch.float)
    return {
        **{f"R@{k}": float((firsts <= k).float().mean()) for k in (1, 5, 10)},
        "median_rank": float(firsts.median()),
        "mAP": sum(aps) / len(aps),
    }


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_recall_median_rank_and_map_match_brute_force(chunk):
    generator = torch.Generator().manual_seed(0)
    queries, gallery = torch.randn(60, 16, generator=generator), torch.randn(40, 16, generator=generator)
    relevant = [torch.randperm(40, generator=generator)[: 1 + q % 5].tolist() for q in range(60)]
    ours = summarize(relevant_ranks(queries, gallery, relevant, chunk=chunk))
    expected = brute_force(queries, gallery, relevant)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def test_ties_count_against_the_query():
    ranks = relevant_ranks(torch.ones(3, 2), torch.ones(5, 2), [[0], [2], [4]])
    assert summarize(ranks)["R@1"] == 0.0 and summarize(ranks)["median_rank"] == 5.0


def tiny(path: str, tmp_path: Path, *extra: str):
    return load_recipe(
        REPO / "recipes" / path,
        [
            "data_options.train_images=48",
            "data_options.test_images=24",
            "epochs=4",
            "batch_size=16",
            "log_every=1",
            f"output_dir={tmp_path}",
            *extra,
        ],
    )


def train_losses(run_dir: str) -> list[float]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


@pytest.mark.skipif(not FLICKR.is_dir(), reason="needs ../shared/data")
def test_tiny_lit_tuning_learns_and_reports_both_directions(tmp_path):
    results = run(
        tiny("flickr8k-lit.yaml", tmp_path, "model_options.text_tower=text/bert-tiny", "pretrained=false", "lr=1e-3")
    )
    curve = train_losses(results["run_dir"])
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    test = results["metrics"]["test"]
    for direction in ("text->image", "image->text"):
        assert 0 <= test[f"{direction} R@1"] <= test[f"{direction} R@5"] <= test[f"{direction} R@10"] <= 1
        assert test[f"{direction} median_rank"] >= 1
    assert test["definition"].startswith("R@K = fraction of queries with at least one relevant item")
    saved = zoo.load(str(Path(results["run_dir"]) / "model" / "backbone"))
    assert saved.lock_image and saved.spec.name == "clip/lite0-minilm-l6"


@pytest.mark.skipif(not FLICKR.is_dir(), reason="needs ../shared/data")
def test_tiny_text_to_text_contrastive_learns(tmp_path):
    results = run(tiny("flickr8k-minilm-text2text.yaml", tmp_path, "model=text/bert-tiny", "lr=1e-3"))
    curve = train_losses(results["run_dir"])
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    assert 0 < results["metrics"]["test"]["text->text R@10"] <= 1


@pytest.mark.skipif(not FLICKR.is_dir(), reason="needs ../shared/data")
def test_zero_shot_classification_reports_chance(tmp_path):
    results = run(
        load_recipe(
            REPO / "recipes" / "cifar10-zeroshot.yaml",
            ["eval_limit=30", f"output_dir={tmp_path}", "model=clip/openclip-tiny"],
        )
    )
    test = results["metrics"]["test"]
    assert (
        results["chance"]["test"] == {"accuracy": 0.1} and 0 <= test["accuracy"] <= 1 and results["train"]["steps"] == 0
    )


def caption_data(tmp_path: Path, rows: list[tuple[str, str]], images: list[str]) -> Path:
    from PIL import Image

    for name in images:
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "captions.csv").write_text("image,caption\n" + "".join(f"{i},{c}\n" for i, c in rows))
    return tmp_path / "captions.csv"


def test_bad_retrieval_data(tmp_path):
    missing = caption_data(tmp_path, [("a.png", "a dog"), ("gone.png", "a cat")], ["a.png"])
    with pytest.raises(DataError, match=r"captions.csv: line 3 refers to a missing image .*gone.png"):
        run(load_recipe(REPO / "recipes" / "flickr8k-lit.yaml", [f"data={missing}", f"output_dir={tmp_path}"]))
    clip = zoo.load("clip/openclip-tiny")
    duplicated = Dataset("d", "image-text", {"test": Split(["x", "y"], None, [(0, "a dog"), (1, "a dog")])})
    with pytest.raises(DataError, match="the caption 'a dog' belongs to two images"):
        Retrieval(clip, duplicated, "zero-shot", {"eval_split": "test"}).prepare()
    uncaptioned = Dataset("u", "image-text", {"test": Split(["x", "y"], None, [(0, "a dog")])})
    with pytest.raises(DataError, match="1 image.s. have no caption, first y"):
        Retrieval(clip, uncaptioned, "zero-shot", {"eval_split": "test"}).prepare()
    with pytest.raises(zoo.ZooError, match="a contrastive loss needs at least 2 pairs per batch"):
        info_nce(torch.ones(1, 4), torch.ones(1, 4), torch.tensor(1.0))
    with pytest.raises(zoo.ZooError, match="image<->text retrieval needs a CLIP-style backbone"):
        Retrieval(zoo.load("text/bert-tiny"), duplicated, "zero-shot", {"direction": "image-text"})
    from zoo.tasks import get_task

    with pytest.raises(
        zoo.ZooError,
        match="task 'retrieval' needs a multimodal or text backbone; vision/example-convnet is an image backbone",
    ):
        spec, task_class = get_task("retrieval")
        task_class(zoo.load("vision/example-convnet"), duplicated, "zero-shot", spec=spec)


@pytest.mark.skipif(not FLICKR.is_dir(), reason="needs ../shared/data")
def test_flip_features_give_a_locked_tower_mirrored_copies(tmp_path):
    from zoo.engine import prepare

    task = prepare(
        tiny(
            "flickr8k-lit.yaml",
            tmp_path,
            "model_options.text_tower=text/bert-tiny",
            "pretrained=false",
            "task_options.flip_features=true",
        )
    )
    entry = task._split("train")
    features, mirrored = entry["image_features"], entry["mirrored_features"]
    assert features.shape == mirrored.shape and not torch.allclose(features, mirrored)
    pairs = task.examples("train", train=True)
    drawn = [pairs[0][0] for _ in range(40)]
    assert any(torch.equal(d, features[0]) for d in drawn) and any(torch.equal(d, mirrored[0]) for d in drawn)
