"""``unfreeze: N`` (per tower for CLIP-style backbones) and ``freeze_norm_stats``: only the last N
blocks and the head change, BatchNorm statistics of the frozen part stay, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo.engine import run
from zoo.recipes import RecipeError, validate


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str = "") -> set[str]:
    after = module.state_dict()
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def tiny_run(tmp_path: Path, backbone, **values):
    """A few training steps of ``backbone`` on 32 examples, as ``run`` does for a validated recipe."""
    values = {"train_limit": 32, "eval_limit": 16, "lr": 1e-2, "output_dir": str(tmp_path), **values}
    return run(validate(values, "test"), backbone=backbone)


def text_run(tmp_path: Path, backbone, **extra):
    text = {
        "model": "text/bert-tiny",
        "task": "text-classification",
        "data": "sst2",
        "model_options": {"max_length": 16},
    }
    return tiny_run(tmp_path, backbone, **text, batch_size=8, max_steps=3, warmup=0.0, **extra)


def test_only_the_last_blocks_and_the_head_train(tmp_path):
    backbone = zoo.load("text/bert-tiny", pretrained=False, max_length=16)
    before = snapshot(backbone)
    blocks = backbone.blocks()
    assert len(blocks) == 2
    results = text_run(tmp_path, backbone, unfreeze=1)
    moved = changed(before, backbone)
    last = {k for k in before if k.startswith("model.encoder.layer.1.")}
    assert moved and moved <= last  # the last block's weights (those with a gradient) and nothing else
    assert not changed(before, backbone, "model.embeddings.")
    assert not changed(before, backbone, "model.encoder.layer.0.")
    record = results["train"]["unfreeze"]
    assert record["towers"] == {"text": {"blocks": 2, "unfrozen": 1}}
    block_params = sum(p.numel() for p in blocks[1].parameters())
    head = record["trained_params"] - block_params
    assert head == 2 * 128 + 2  # the fresh linear head over 128-d embeddings, 2 classes
    assert record["params"] == sum(p.numel() for p in backbone.parameters()) + head


def test_unfreeze_errors_name_the_count_and_the_tower(tmp_path):
    backbone = zoo.load("text/bert-tiny", pretrained=False, max_length=16)
    with pytest.raises(RecipeError, match=r"^unfreeze: 3 is more than the 2 blocks of text/bert-tiny"):
        text_run(tmp_path, backbone, unfreeze=3, name="a")
    with pytest.raises(RecipeError, match=r"^unfreeze.image: backbone text/bert-tiny has no image tower"):
        text_run(tmp_path, backbone, unfreeze={"image": 1}, name="b")
    with pytest.raises(RecipeError, match="trains no backbone block"):
        text_run(tmp_path, backbone, unfreeze=1, mode="linear-probe", name="c")
    with pytest.raises(RecipeError, match="freeze_norm_stats keeps the frozen blocks' norm statistics"):
        text_run(tmp_path, backbone, freeze_norm_stats=True, name="d")
    with pytest.raises(RecipeError, match="unfreeze: adapter already says what of the backbone trains"):
        text_run(tmp_path, backbone, unfreeze=1, adapter={"r": 4}, name="e")
    base = {"model": "m", "task": "t", "data": "d"}
    for bad in ({"audio": 1}, {"image": -1}, {"text": "two"}):
        with pytest.raises(RecipeError, match=r"unfreeze is N or \{image: N, text: M\}"):
            validate({**base, "unfreeze": bad}, "r")
    with pytest.raises(RecipeError, match="unfreeze must be >= 0"):
        validate({**base, "unfreeze": -1}, "r")


def image_run(tmp_path: Path, backbone, **extra):
    image = {"model": "vision/cnn-tiny", "task": "image-classification", "data": "digits"}
    return tiny_run(tmp_path, backbone, **image, batch_size=16, max_steps=2, **extra)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_norm_stats_keeps_the_frozen_blocks_batchnorm_statistics(tmp_path, freeze):
    backbone = zoo.load("vision/cnn-tiny", pretrained=False)
    before = snapshot(backbone)
    results = image_run(tmp_path, backbone, unfreeze=1, freeze_norm_stats=freeze)
    statistics = {k for k in before if k.endswith(("running_mean", "running_var"))}
    early = {k for k in statistics if not k.startswith("model.layer4.")}
    weights = {k for k in before if k not in statistics and not k.endswith("num_batches_tracked")}
    assert changed(before, backbone) & weights <= {k for k in weights if k.startswith("model.layer4.")}
    # the last block trains in train mode, so its statistics follow the data either way
    assert changed(before, backbone) & statistics - early
    if freeze:
        assert not changed(before, backbone) & early
        assert results["train"]["unfreeze"]["norms_kept"] > 0
    else:  # frozen weights, but BatchNorm in train mode keeps averaging the batches: what the switch stops
        assert changed(before, backbone) & early


def test_per_tower_unfreeze_of_a_clip_model_in_contrastive_training(tmp_path):
    backbone = zoo.load("clip/openclip-tiny", pretrained=False)
    before = snapshot(backbone)
    image_blocks, text_blocks = backbone.blocks("image"), backbone.blocks("text")
    values = {
        "model": "clip/openclip-tiny",
        "task": "retrieval",
        "mode": "contrastive",
        "data": "flickr8k",
        "eval_split": "test",
        "train_limit": 16,
        "eval_limit": 8,
        "batch_size": 8,
        "max_steps": 2,
        "lr": 1e-2,
        "output_dir": str(tmp_path),
        "unfreeze": {"image": 1, "text": 0},
    }
    results = run(validate(values, "test"), backbone=backbone)
    names = {id(p): n for n, p in backbone.state_dict(keep_vars=True).items()}
    last_image = {names[id(p)] for p in image_blocks[-1].parameters()}
    frozen = {names[id(p)] for block in [*image_blocks[:-1], *text_blocks] for p in block.parameters()}
    moved = changed(before, backbone)
    assert moved & last_image and not moved & frozen
    assert not changed(before, backbone, "model.token_embedding.")  # the input side stays
    assert results["train"]["unfreeze"]["towers"] == {
        "image": {"blocks": len(image_blocks), "unfrozen": 1},
        "text": {"blocks": len(text_blocks), "unfrozen": 0},
    }


def test_a_locked_image_tower_is_refused_in_one_line(tmp_path):
    backbone = zoo.load("clip/lite0-minilm-l6", pretrained=False, text_tower="text/bert-tiny")
    values = {
        "model": "clip/lite0-minilm-l6",
        "task": "retrieval",
        "mode": "contrastive",
        "data": "flickr8k",
        "eval_split": "test",
        "train_limit": 8,
        "eval_limit": 8,
        "batch_size": 8,
        "max_steps": 1,
        "output_dir": str(tmp_path),
        "unfreeze": {"image": 1, "text": 1},
    }
    with pytest.raises(RecipeError, match=r"^unfreeze.image: the image tower of clip/lite0-minilm-l6 is locked"):
        run(validate(values, "test"), backbone=backbone)
