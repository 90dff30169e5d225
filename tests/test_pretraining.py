"""Pretraining objectives: the masking rule and NT-Xent checked by hand, tiny runs that learn,
and pretrain -> finetune end to end through `zoo run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.data import DataError
from zoo.engine import prepare, run
from zoo.recipes import load_recipe
from zoo.tasks.objectives import mask_tokens, maskable_positions, nt_xent

from conftest import DATA_ROOT, REPO, run_zoo

HAS_DATA = (DATA_ROOT / "text").is_dir()


def test_masking_follows_bert_rule():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (400, 128), generator=generator)
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] ... [SEP]
    attention = torch.ones_like(ids)
    attention[:, 100:] = 0
    maskable = maskable_positions(ids, attention, special_ids=[0, 1, 2, 3])
    inputs, labels = mask_tokens(ids, maskable, mask_id=3, vocab_size=1000, generator=generator)
    chosen = labels != -100
    assert not chosen[~maskable].any(), "special or padding tokens were chosen"
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    assert chosen.sum() / maskable.sum() == pytest.approx(0.15, abs=0.01)
    masked = (inputs[chosen] == 3).float().mean()
    unchanged = (inputs[chosen] == ids[chosen]).float().mean()
    assert masked == pytest.approx(0.8, abs=0.02) and unchanged == pytest.approx(0.1 + 0.1 / 1000, abs=0.02)


def test_every_text_gets_at_least_one_masked_token():
    ids = torch.tensor([[1, 7, 2, 0]])
    maskable = maskable_positions(ids, torch.tensor([[1, 1, 1, 0]]), [0, 1, 2, 3])
    _, labels = mask_tokens(ids, maskable, 3, 10, probability=0.0)
    assert labels.tolist() == [[-100, 7, -100, -100]]


def test_sst2_without_phrases_keeps_only_whole_sentences(tmp_path):
    folder = tmp_path / "text" / "sst2"
    folder.mkdir(parents=True)
    rows = ["a good film .", "a good film", "good", "film", "a bad film .", "bad", "the end of it all", "end of it"]
    (folder / "train.tsv").write_text("".join(f"{text}\t{i // len(rows) % 2}\n" for i, text in enumerate(rows * 3)))
    (folder / "dev.tsv").write_text("fine .\t1\npoor .\t0\n")
    whole = zoo.data.load_dataset("sst2", tmp_path, phrases=False, validation_fraction=0.0)
    assert sorted(set(whole.split("train").inputs)) == ["a bad film .", "a good film .", "the end of it all"]
    assert len(whole.split("train").inputs) == 9  # repeated rows stay
    assert len(zoo.data.load_dataset("sst2", tmp_path, validation_fraction=0.0).split("train").inputs) == 24


def test_sst2_sentence_validation_holds_out_whole_sentences_and_their_own_phrases(tmp_path):
    folder = tmp_path / "text" / "sst2"
    folder.mkdir(parents=True)
    rows = {
        "a good film .": 1,
        "good film": 1,
        "a good": 1,
        "a fine cast .": 1,
        "fine cast": 1,
        "fine": 1,
        "a bad film .": 0,
        "bad film": 0,
        "bad": 0,
        "a dull plot .": 0,
        "dull plot": 0,
        "a": 1,
        ".": 1,
    }
    (folder / "train.tsv").write_text("".join(f"{text}\t{label}\n" for text, label in rows.items()))
    (folder / "dev.tsv").write_text("fine .\t1\npoor .\t0\n")
    data = zoo.data.load_dataset("sst2", tmp_path, validation="sentences", validation_fraction=0.5)
    held, train = data.split("validation"), data.split("train").inputs
    sentences = {"a good film .", "a fine cast .", "a bad film .", "a dull plot ."}
    assert len(held.inputs) == 2 and set(held.inputs) < sentences and sorted(held.labels) == [0, 1]
    kept = sentences - set(held.inputs)
    assert set(train) == {row for row in rows if any(f" {row} " in f" {sentence} " for sentence in kept)}
    with pytest.raises(zoo.data.DataError, match="validation='whole' is not a choice; use phrases or sentences"):
        zoo.data.load_dataset("sst2", tmp_path, validation="whole")


def test_nt_xent_matches_a_brute_force_loop():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    loss, correct = nt_xent(z1, z2, temperature=0.5)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    terms = []
    for i in range(12):
        partner = (i + 6) % 12
        others = [j for j in range(12) if j != i]
        logits = torch.stack([z[i] @ z[j] / 0.5 for j in others])
        terms.append(-(logits[others.index(partner)] - torch.logsumexp(logits, 0)))
    assert float(loss) == pytest.approx(float(torch.stack(terms).mean()), abs=1e-5)
    aligned_loss, aligned = nt_xent(z1, z1 + 1e-3, temperature=0.5)
    assert aligned.all() and aligned_loss < loss
    with pytest.raises(zoo.ZooError, match="at least 2 pairs per batch"):
        nt_xent(z1[:1], z2[:1])


def train_losses(run_dir: str) -> list[float]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


def tiny(recipe: str, tmp_path: Path, *extra: str):
    return load_recipe(REPO / "recipes" / recipe, [f"output_dir={tmp_path}", "log_every=2", *extra])


@pytest.mark.skipif(not HAS_DATA, reason="needs ../shared/data")
def test_mlm_pretrain_then_finetune_through_zoo_run(tmp_path):
    results = run(
        tiny(
            "bert-tiny-mlm-pretrain.yaml",
            tmp_path,
            "model=text/bert-tiny",
            "train_limit=600",
            "eval_limit=64",
            "max_steps=24",
            "batch_size=32",
            "data_options.validation_fraction=0.05",
        )
    )
    curve = train_losses(results["run_dir"])
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    assert results["extra_data"] == ["flickr8k"] and results["mode"] == "pretrain"
    assert 0 <= results["metrics"]["validation"]["masked_token_accuracy"] <= 1
    backbone_dir = Path(results["run_dir"]) / "model" / "backbone"
    finetune = run_zoo(
        "run",
        str(REPO / "recipes" / "sst2-bert-tiny-finetune.yaml"),
        "--set",
        f"model={backbone_dir}",
        "--set",
        "train_limit=200",
        "--set",
        "eval_limit=50",
        "--set",
        "max_steps=3",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "name=finetuned",
        "--data-root",
        str(DATA_ROOT),
    )
    assert finetune.returncode == 0, finetune.stderr
    finetuned = json.loads((tmp_path / "finetuned" / "results.json").read_text())
    assert finetuned["provenance"]["weights"] == str(backbone_dir.resolve())
    assert 0 <= finetuned["metrics"]["test"]["accuracy"] <= 1
    # continued pretraining of the saved backbone starts from the MLM head saved beside it
    from safetensors.torch import load_file

    again = prepare(
        tiny("bert-tiny-mlm-pretrain.yaml", tmp_path, f"model={backbone_dir}", "train_limit=64", "eval_limit=16")
    )
    saved, head = load_file(str(backbone_dir.parent / "pretraining_head.safetensors")), again.model().head.state_dict()
    assert saved.keys() == head.keys() and all(torch.equal(head[k], saved[k]) for k in saved)


def test_a_plain_text_file_is_an_unlabelled_corpus(tmp_path):
    corpus, more = tmp_path / "corpus.txt", tmp_path / "more.txt"
    # the words "image" and "caption" in a first line do not make it an image-caption file
    corpus.write_text("".join(f"a caption of image number {i} about a good film\n\n" for i in range(8)))
    more.write_text("good: having desirable or positive qualities\nbad: having undesirable qualities\n")
    dataset = zoo.data.load_dataset(str(corpus), validation_fraction=0.25)
    assert dataset.kind == "text" and len(dataset.split("train")) == 6 and len(dataset.split("validation")) == 2
    assert sorted(dataset.split("train").inputs + dataset.split("validation").inputs) == sorted(
        corpus.read_text().split("\n")[::2][:8]
    )  # blank lines skipped, nothing lost or repeated
    recipe = tiny(
        "bert-tiny-mlm-pretrain.yaml",
        tmp_path,
        "model=text/bert-tiny",
        f"data={corpus}",
        "data_options={validation_fraction: 0.25}",
        f"task_options.extra_data=[{more}]",
        "max_steps=2",
        "batch_size=4",
    )
    assert len(prepare(recipe)._corpus("train")["input_ids"]) == 6 + 2
    results = run(recipe)
    assert results["extra_data"] == [str(more)] and 0 <= results["metrics"]["validation"]["masked_token_accuracy"] <= 1
    with pytest.raises(DataError, match="needs a text-classification data set; 'corpus' is text"):
        zoo.load("text/bert-tiny").finetune("text-classification", str(corpus), output_dir=str(tmp_path), max_steps=1)


def test_simclr_pretrain_learns_and_the_backbone_probes(tmp_path):
    backbone = zoo.load("vision/example-convnet")
    results = backbone.pretrain(
        "digits", output_dir=str(tmp_path), max_steps=30, batch_size=64, lr=3e-3, eval_limit=128, log_every=3
    )
    curve = train_losses(results["run_dir"])
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    assert results["metrics"]["validation"]["partner_top1"] > 1 / 128  # better than picking at random
    saved = zoo.load(str(Path(results["run_dir"]) / "model" / "backbone"))
    head = Path(results["run_dir"]) / "model" / "pretraining_head.safetensors"
    assert head.is_file() and not any("head" in k for k in saved.state_dict())  # the projector is not saved
    metrics = saved.evaluate("image-classification", "digits", output_dir=str(tmp_path), epochs=2.0)
    assert 0 <= metrics["validation"]["accuracy"] <= 1


@pytest.mark.skipif(not HAS_DATA, reason="needs ../shared/data")
def test_clip_style_pretraining_is_infonce_over_pairs(tmp_path):
    results = run(
        load_recipe(
            REPO / "recipes" / "flickr8k-lit.yaml",
            [
                "model=clip/openclip-tiny",
                "task=pretraining",
                "mode=null",
                "task_options={}",  # the LiT recipe's flip_features needs its locked tower
                "data_options.train_images=32",
                "data_options.test_images=16",
                "max_steps=6",
                "batch_size=16",
                "lr=1e-3",
                "log_every=1",
                f"output_dir={tmp_path}",
            ],
        )
    )
    curve = train_losses(results["run_dir"])
    assert results["task"] == "pretraining" and results["mode"] == "pretrain"
    assert sum(curve[-2:]) < sum(curve[:2]), curve
    assert 0 <= results["metrics"]["test"]["text->image R@10"] <= 1
    assert zoo.load(str(Path(results["run_dir"]) / "model" / "backbone")).spec.name == "clip/openclip-tiny"


def test_pretraining_bad_input(tmp_path):
    with pytest.raises(DataError, match="pretraining a text backbone needs texts; 'digits' is image-classification"):
        zoo.load("text/bert-tiny").pretrain("digits", output_dir=str(tmp_path), max_steps=1)
    with pytest.raises(zoo.ZooError, match="at least 2 pairs per batch"):
        zoo.load("vision/example-convnet").pretrain(
            "digits", output_dir=str(tmp_path), max_steps=1, batch_size=1, name="one"
        )
