"""LoRA adapters (peft): a text run trains a small adapter that reloads onto its base alone and merges
for export; per-tower LoRA on tiny CLIP-style backbones lowers the contrastive loss and leaves a frozen
tower as it was; bad adapter keys are one-line RecipeErrors before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, tower_paths, weights_digest
from zoo.engine import evaluate_run, run
from zoo.recipes import RecipeError, load_recipe
from zoo.runs import load_run

from conftest import DATA_ROOT, REPO

SST2 = DATA_ROOT / "text" / "sst2"
FLICKR = DATA_ROOT / "image_text" / "flickr8k"


def train_losses(run_dir: str) -> list[float]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> dict:
    """bert-tiny (random weights, seeded) with rank-4 LoRA and a head, a few steps on SST-2."""
    output = tmp_path_factory.mktemp("lora")
    recipe = load_recipe(
        REPO / "recipes" / "sst2-minilm-lora.yaml",
        [
            "model=text/bert-tiny",
            "adapter.r=4",
            "train_limit=256",
            "eval_limit=64",
            "max_steps=8",
            "eval_every=8",
            "test_split=null",
            "lr=1e-3",
            f"output_dir={output}",
            "log_every=1",
        ],
    )
    return run(recipe)


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
def test_lora_trains_a_small_adapter_that_reloads_onto_its_base_and_predicts_identically(lora_run):
    run_dir = Path(lora_run["run_dir"])
    saved = run_dir / "model" / "backbone"
    assert sorted(p.name for p in saved.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    config = json.loads((saved / ADAPTER_CONFIG).read_text())
    assert config["base"]["name"] == "text/bert-tiny" and config["settings"]["r"] == 4
    base = zoo.load("text/bert-tiny", max_length=64)  # what the run started from: the same seed's weights?
    base_bytes = sum(t.numel() * t.element_size() for t in base.state_dict().values())
    assert (saved / ADAPTER_WEIGHTS).stat().st_size < 0.05 * base_bytes
    reloaded = zoo.load(str(saved))
    trainable = sum(p.numel() for p in reloaded.parameters() if p.requires_grad)
    assert 0 < trainable < 0.02 * reloaded.num_params()
    lora_b = [p for n, p in reloaded.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "LoRA's B starts at zero: training moved it"
    assert {n for n, p in reloaded.named_parameters() if p.requires_grad} == {
        n for n, _ in reloaded.named_parameters() if "lora_" in n
    }
    # the finished run, reloaded, scores its validation split exactly as the run did (loss included)
    assert evaluate_run(run_dir) == lora_run["metrics"]["validation"]
    first, second = load_run(run_dir), load_run(run_dir)
    texts = ["a good film", "an awful , dreadful plot", "quite warm"]
    assert torch.equal(first.probabilities(texts), second.probabilities(texts))


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
def test_zoo_info_names_the_adapter_and_its_base(lora_run, capsys):
    from zoo.cli.app import main

    def info(*args: str) -> str:  # in-process: the function the `zoo` script calls
        assert main(["info", *args]) == 0
        return capsys.readouterr().out

    saved = Path(lora_run["run_dir"]) / "model" / "backbone"
    config = json.loads((saved / ADAPTER_CONFIG).read_text())
    adapter = json.loads(info(str(saved), "--json"))["adapter"]
    assert adapter["method"] == "lora" and adapter["r"] == 4 and adapter["layers"] == len(config["targets"])
    assert adapter["base"] == "text/bert-tiny" and adapter["base_sha256"] == config["base"]["sha256"]
    text = info(str(saved))
    assert f"adapter:        lora rank 4, alpha 16, on {len(config['targets'])} layers; base text/bert-tiny" in text


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
def test_an_adapter_is_refused_on_another_base_naming_both(lora_run):
    saved = Path(lora_run["run_dir"]) / "model" / "backbone"
    with pytest.raises(zoo.WeightsError, match=r"trained on text/bert-tiny; this backbone is text/bert-mini"):
        zoo.load("text/bert-mini").load_adapter(saved)
    torch.manual_seed(12345)  # the same architecture at other random weights
    with pytest.raises(zoo.WeightsError, match=r"text/bert-tiny with weights \w{12}; this text/bert-tiny has weights"):
        zoo.load("text/bert-tiny").load_adapter(saved)


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
def test_a_lora_run_exports_merged_weights_with_parity(lora_run, tmp_path):
    manifest = zoo.export(lora_run["run_dir"], "hf", tmp_path / "hf")
    assert manifest["parity"]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as handle:
        names = list(handle.keys())
    assert names and not any("lora_" in n or "base_layer" in n for n in names)
    adapted = zoo.load(str(Path(lora_run["run_dir"]) / "model" / "backbone"))
    texts = ["a good film", "bad"]
    before = adapted.encode_text(texts)
    merged = adapted.merge_adapter()
    assert merged.adapter is None and not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged.encode_text(texts), before, atol=1e-5, rtol=1e-4)


def tiny_contrastive(model: str, tmp_path: Path, *extra: str):
    return load_recipe(
        REPO / "recipes" / "flickr8k-lit.yaml",
        [
            f"model={model}",
            "data_options.train_images=48",
            "data_options.test_images=24",
            "task_options={}",
            "epochs=4",
            "batch_size=16",
            "lr=1e-3",
            "head_lr=1e-3",
            "log_every=1",
            f"output_dir={tmp_path}",
            *extra,
        ],
    )


@pytest.mark.skipif(not FLICKR.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize(
    "model, extra",
    [
        ("clip/openclip-tiny", ()),  # open_clip's towers: nn.MultiheadAttention, wrapped by peft's own layer
        ("clip/lite0-minilm-l6", ("model_options.text_tower=text/bert-tiny", "pretrained=false")),
    ],
)
def test_lora_on_the_text_tower_lowers_the_contrastive_loss_and_leaves_a_frozen_image_tower(model, extra, tmp_path):
    recipe = tiny_contrastive(model, tmp_path, "towers={image: frozen, text: lora}", "adapter.r=4", *extra)
    results = run(recipe)
    curve = train_losses(results["run_dir"])
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    saved = Path(results["run_dir"]) / "model" / "backbone"
    adapted = zoo.load(str(saved))
    image = tower_paths(adapted)["image"]
    stored = json.loads((saved / ADAPTER_CONFIG).read_text())
    assert stored["towers"] == {"image": "frozen", "text": "lora"}
    assert stored["targets"] and all(not t.startswith(image + ".") for t in stored["targets"])
    if model == "clip/openclip-tiny":
        assert any(
            isinstance(adapted.get_submodule(t).base_layer, torch.nn.MultiheadAttention) for t in stored["targets"]
        )
    torch.manual_seed(recipe.seed)  # the run's base, as the engine built it
    base = zoo.load(model, pretrained=recipe.pretrained, **recipe.model_options)
    assert weights_digest(adapted.image_tower) == weights_digest(base.image_tower)
    from safetensors.torch import load_file

    assert not any(k.startswith(image + ".") for k in load_file(str(saved / ADAPTER_WEIGHTS)))


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
def test_lora_pretraining_keeps_the_base_and_saves_the_adapter(tmp_path):
    recipe = load_recipe(
        REPO / "recipes" / "bert-tiny-mlm-pretrain.yaml",
        [
            "task_options={}",
            "train_limit=128",
            "eval_limit=32",
            "max_steps=4",
            "batch_size=32",
            "adapter={r: 4}",
            f"output_dir={tmp_path}",
        ],
    )
    results = run(recipe)
    saved = Path(results["run_dir"]) / "model" / "backbone"
    assert (saved / ADAPTER_CONFIG).is_file()
    assert (Path(results["run_dir"]) / "model" / "pretraining_head.safetensors").is_file()
    assert zoo.load(str(saved)).adapter.base["name"] == "text/bert-tiny"


@pytest.mark.parametrize(
    "override, message",
    [
        ("adapter={rank: 4}", r"adapter has no key 'rank'; did you mean 'r'"),
        ("adapter={method: prefix}", r"adapter.method must be lora, got 'prefix'"),
        ("adapter={dropout: 1.5}", r"adapter.dropout must be >= 0 and < 1"),
        ("adapter={target_modules: []}", r"adapter.target_modules must be null"),
        ("towers={image: lora, txt: full}", r"towers has no tower 'txt'; did you mean 'text'"),
        ("towers={image: partial}", r"towers.image must be frozen, lora or full, got 'partial'"),
    ],
)
def test_bad_adapter_keys_are_one_line_recipe_errors(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(REPO / "recipes" / "sst2-minilm-lora.yaml", [override])


@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize(
    "override, message",
    [
        ("mode=linear-probe", r"adapter: a linear probe trains its head alone on cached features"),
        ("towers={text: lora}", r"towers: model text/bert-tiny is a text backbone; towers are a multimodal"),
        ("adapter.target_modules=[nowhere]", r"no module of text/bert-tiny is named nowhere"),
    ],
)
def test_adapter_mistakes_against_the_model_are_refused_before_training(override, message, tmp_path):
    recipe = load_recipe(
        REPO / "recipes" / "sst2-minilm-lora.yaml",
        [
            "model=text/bert-tiny",
            "train_limit=64",
            "eval_limit=16",
            "max_steps=1",
            "test_split=null",
            f"output_dir={tmp_path}",
            override,
        ],
    )
    with pytest.raises(RecipeError, match=message):
        run(recipe)
    assert not (tmp_path / "sst2-minilm-lora" / "metrics.jsonl").exists()
