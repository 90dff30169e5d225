"""Every model a user already holds loads with plain ``zoo.load(path)``: Hugging Face folders of each text
architecture (encoder-only, decoder-only, encoder-decoder), timm and open_clip folders and a hubconf.py
folder, each with its right pooling and inputs, plus the causal-LM and next-sentence objectives."""

from __future__ import annotations

import functools
import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import OptionError, UnknownNameError
from zoo.tasks.pretraining import sentence_pairs
from zoo.testing import BackboneContract
from zoo.validation import FileError

from conftest import run_zoo
from tiny_models import KINDS, hf_folder, open_clip_folder, timm_folder

HUBCONF = '''
dependencies = ["torch"]
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def tiny_net(pretrained=False, width=8):
    """A tiny CNN (random weights)."""
    torch.manual_seed(0)
    return TinyNet(width)
'''


def hub_folder(root, marker=None):
    folder = root / "hub"
    folder.mkdir(parents=True)
    (folder / "hubconf.py").write_text(HUBCONF + (f"\nopen({str(marker)!r}, 'w').write('ran')\n" if marker else ""))
    return folder


class TestLocalFolders(BackboneContract):
    """The contract kit on folders written by the libraries themselves: plain zoo.load(folder) for each."""

    paths = {
        **{name: functools.partial(hf_folder, name=name) for name in KINDS},
        "timm-vit": functools.partial(timm_folder, arch="vit_tiny_patch16_224"),
        "timm-convnext": functools.partial(timm_folder, arch="convnext_atto"),
        "open-clip-vit": open_clip_folder,
    }


class TestHubconfFolder(BackboneContract):
    paths = {"hubconf": hub_folder}
    load_options = {"trust_repo": True}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: hf_folder(root, name) for name in ("gpt2", "llama", "t5", "bart")}


TEXTS = ["a good film", "the story was very long and not quite funny at all"]


def test_each_architecture_gets_its_own_pooling_and_inputs(folders):
    expected = {
        "gpt2": ("decoder", "last"),
        "llama": ("decoder", "last"),
        "t5": ("encoder-decoder", "mean"),
        "bart": ("encoder-decoder", "mean"),
    }
    for name, (architecture, pooling) in expected.items():
        model = zoo.load(folders[name])
        assert (model.text_preprocessing.architecture, model.text_preprocessing.pooling) == (architecture, pooling)
        assert model.pretraining_objective == ("causal-lm" if architecture == "decoder" else "mlm")
    overridden = zoo.load(folders["gpt2"], pooling="mean")
    assert overridden.text_preprocessing.pooling == "mean"
    with pytest.raises(zoo.ZooError, match="pooling must be one of mean, cls, max, last"):
        zoo.load(folders["gpt2"], pooling="first")


def test_gpt2_pools_the_last_real_token_with_right_and_left_padding(folders):
    model = zoo.load(folders["gpt2"]).eval()
    assert model.tokenizer.pad_token == model.tokenizer.eos_token == "<|endoftext|>"  # it had none: one is set
    embeddings = {}
    for side in ("right", "left"):
        model.tokenizer.padding_side = side
        batch = model.tokenize(TEXTS)
        mask = batch["attention_mask"]
        lengths = mask.sum(dim=1)
        assert lengths[0] < lengths[1]  # the first text is padded
        # the last real token by hand: right padding ends each row at its length, left padding at the end
        last = lengths - 1 if side == "right" else torch.full_like(lengths, mask.shape[1] - 1)
        assert (mask[torch.arange(2), last] == 1).all()
        with torch.no_grad():
            hidden = model.hidden_states(batch)
            embeddings[side] = model.encode_text(batch)
        torch.testing.assert_close(embeddings[side], F.normalize(hidden[torch.arange(2), last], dim=-1))
    # positions count real tokens only, so the padding side does not change an embedding
    torch.testing.assert_close(embeddings["left"], embeddings["right"], rtol=1e-4, atol=1e-5)


def test_a_folder_saved_in_bf16_loads_in_float32_for_training(folders, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    half = tmp_path / "bf16"
    AutoModel.from_pretrained(folders["gpt2"], dtype=torch.bfloat16).save_pretrained(half)
    AutoTokenizer.from_pretrained(folders["gpt2"]).save_pretrained(half)
    model = zoo.load(half)  # transformers 5 would keep the checkpoint's bf16; training wants float32 (autocast)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.encode_text(TEXTS).dtype == torch.float32


def test_t5_runs_its_encoder_only(folders, monkeypatch):
    from transformers.models.t5.modeling_t5 import T5Stack

    model = zoo.load(folders["t5"]).eval()
    assert not [name for name, _ in model.named_modules() if "decoder" in name]
    calls = []
    original = T5Stack.forward
    monkeypatch.setattr(
        T5Stack, "forward", lambda self, *a, **k: calls.append(self.is_decoder) or original(self, *a, **k)
    )
    with torch.no_grad():
        vectors = model.encode_text(TEXTS)
    assert calls == [False] and vectors.shape == (2, 32) and torch.isfinite(vectors).all()


def test_a_plugin_claims_its_own_format_first_and_a_broken_claim_is_skipped(site, tmp_path):
    site.install(
        "zoo_fault_format",
        """
        import json
        import zoo

        def claim(path):
            if (path / "example.json").is_file():
                options = json.loads((path / "example.json").read_text())
                return zoo.PathClaim(backbone="vision/example-convnet", options=options)

        def broken(path):
            raise RuntimeError("bug in a claim")

        @zoo.hookimpl
        def register_path_formats(register):
            register(zoo.PathFormat(name="broken-format", looks_for="nothing, it is broken",
                                    claim="zoo_fault_format:broken"))
            register(zoo.PathFormat(name="example-format", looks_for="a folder with example.json",
                                    claim="zoo_fault_format:claim"))
    """,
        entry_point="myformat",
    )
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "example.json").write_text(json.dumps({"width": 8}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))  # the text family's format too
    with pytest.warns(zoo.PluginWarning, match="path format 'broken-format' .* skipped: RuntimeError: bug"):
        model = zoo.load(folder)
    assert model.name == "vision/example-convnet"  # the third-party format is asked before the built-in one
    with pytest.raises(FileError, match="a Hugging Face bert folder without weights"):
        zoo.load(f"transformers:{folder}")  # a prefix forces one plugin's formats
    (folder / "example.json").unlink()
    with pytest.raises(FileError, match="without weights"), pytest.warns(zoo.PluginWarning):
        zoo.load(folder)
    with pytest.raises(
        UnknownNameError, match=r"nothing claims .*: looked for nothing, it is broken; a folder with example.json\. "
    ):
        zoo.load(f"myformat:{folder}")


def test_a_hubconf_folder_runs_only_when_trust_repo_is_passed(tmp_path):
    marker = tmp_path / "ran"
    folder = hub_folder(tmp_path, marker)
    with pytest.raises(OptionError, match=r"hubconf.py is Python code .* only when you pass trust_repo=True"):
        zoo.load(folder)
    assert not marker.exists(), "hubconf.py ran without trust_repo"
    with pytest.warns(zoo.PreprocessingWarning):
        model = zoo.load(folder, trust_repo=True, entry_options={"width": 12})
    assert marker.exists() and model.embed_dim == 12 and model.encode_image(torch.rand(2, 3, 32, 32)).shape == (2, 12)
    saved = model.save(tmp_path / "saved")
    marker.unlink()
    with pytest.raises(OptionError, match="trust_repo=True"):
        zoo.load(saved)  # rebuilding it runs the repository's code again: the caller's choice again
    assert not marker.exists()
    assert zoo.load(saved, trust_repo=True).embed_dim == 12
    with pytest.raises(zoo.ZooError, match="trust_repo=True"):
        zoo.load("torchhub:pytorch/vision:resnet18")
    (folder / "hubconf.py").write_text("def a(): pass\ndef b(): pass\n")
    with pytest.raises(OptionError, match="has entry points a, b: choose one with entry=NAME"):
        zoo.load(folder, trust_repo=True)


@pytest.mark.parametrize(
    "case",
    [
        "unreadable-config",
        "another-ecosystem",
        "weights-missing",
        "tokenizer-missing",
        "timm-weights-missing",
        "no-such-path",
    ],
)
def test_bad_local_models_are_one_line_and_exit_2(folders, tmp_path, case):
    folder = tmp_path / case
    if case != "no-such-path":
        shutil.copytree(folders["bart"], folder)
    expected = {
        "unreadable-config": "config.json: a model's config.json is not valid JSON",
        "another-ecosystem": "nothing claims",
        "weights-missing": "a Hugging Face bart folder without weights",
        "tokenizer-missing": "a Hugging Face bart folder without a tokenizer",
        "timm-weights-missing": "a timm convnext_atto folder without weights",
        "no-such-path": "not found",
    }[case]
    if case == "unreadable-config":
        (folder / "config.json").write_text("{not json")
    elif case == "another-ecosystem":  # what TensorFlow's SavedModel writes
        shutil.rmtree(folder)
        (folder / "variables").mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    elif case == "weights-missing":
        (folder / "model.safetensors").unlink()
    elif case == "tokenizer-missing":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).unlink()
    elif case == "timm-weights-missing":
        shutil.rmtree(folder)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architecture": "convnext_atto", "num_classes": 10}))
    result = run_zoo("info", str(folder))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr
    if case == "another-ecosystem":
        assert "a Hugging Face model folder" in result.stderr and "a timm model folder" in result.stderr
        assert "timm:, torchhub:, transformers:PATH" in result.stderr


def test_zoo_info_on_a_folder_shows_how_it_loads_and_its_pooling(folders):
    result = run_zoo("info", str(folders["gpt2"]), check=True)
    assert "text/hf-hub (plugin transformers)" in result.stdout
    assert "pooling:" in result.stdout and "last" in result.stdout and "decoder" in result.stdout


# -- objectives --------------------------------------------------------------------------------------
def test_sentence_pairs_are_consecutive_lines_or_random_ones_half_each():
    texts = [f"line {i}" for i in range(400)]
    pairs, is_next = sentence_pairs(texts, seed=3)
    assert len(pairs) == 399 and 0.4 < float(is_next.float().mean()) < 0.6
    for (first, second), label in zip(pairs, is_next.tolist(), strict=False):
        i, j = int(first.split()[1]), int(second.split()[1])
        assert (j == i + 1) == bool(label)
    again, labels = sentence_pairs(texts, seed=3)
    assert again == pairs and torch.equal(labels, is_next)  # seeded: a split's pairs never change


def test_causal_lm_pretraining_learns_and_resumes_exactly(folders, tmp_path, monkeypatch):
    from zoo.tasks.pretraining import Pretraining

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the film number {i % 7} was good and the story was long" for i in range(120)))
    recipe = dict(
        output_dir=str(tmp_path),
        max_steps=12,
        batch_size=16,
        lr=3e-3,
        warmup=0.0,
        log_every=1,
        checkpoint_every=4,
        data_options={"validation_fraction": 0.2},
    )
    whole = zoo.load(folders["gpt2"]).pretrain(str(corpus), name="whole", **recipe)
    metrics = whole["metrics"]["validation"]
    assert set(metrics) >= {"next_token_accuracy", "perplexity", "loss"}
    assert math.isclose(metrics["perplexity"], math.exp(metrics["loss"]), rel_tol=0.05)
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ]
    assert losses[-1] < losses[0] * 0.8, losses
    calls = []
    step = Pretraining.step

    def interrupted(self, model, batch):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return step(self, model, batch)

    monkeypatch.setattr(Pretraining, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.load(folders["gpt2"]).pretrain(str(corpus), name="resumed", **recipe)
    monkeypatch.setattr(Pretraining, "step", step)
    resumed = zoo.load(folders["gpt2"]).pretrain(str(corpus), name="resumed", resume=True, **recipe)
    assert resumed["metrics"] == whole["metrics"]


def test_next_sentence_prediction_trains_beside_mlm_and_its_head_is_saved(tmp_path):
    from safetensors.torch import load_file

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"story {i // 2} part {i % 2} is about the film" for i in range(200)))
    results = zoo.load("text/bert-tiny").pretrain(
        str(corpus),
        output_dir=str(tmp_path),
        max_steps=6,
        batch_size=16,
        log_every=1,
        task_options={"nsp": True},
        data_options={"validation_fraction": 0.2},
    )
    metrics = results["metrics"]["validation"]
    assert 0 <= metrics["nsp_accuracy"] <= 1 and 0 <= metrics["masked_token_accuracy"] <= 1
    assert 0.5 <= results["chance"]["validation"]["nsp_accuracy"] <= 0.75  # about half the pairs are next
    head = load_file(str(tmp_path / results["name"] / "model" / "pretraining_head.safetensors"))
    assert any(key.startswith("next_sentence.") for key in head)
    with pytest.raises(zoo.ZooError, match="next-sentence prediction goes with masked-language modelling"):
        zoo.load("text/gpt-tiny").pretrain(
            str(corpus),
            output_dir=str(tmp_path),
            max_steps=1,
            task_options={"nsp": True},
            data_options={"validation_fraction": 0.2},
        )


def test_an_open_clip_training_checkpoint_loads_with_the_architecture_its_run_names(tmp_path):
    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (tmp_path / "zoo-tiny-vit.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "zoo-tiny-vit.json")  # an architecture as a user's open_clip has it
    torch.manual_seed(0)
    trained = open_clip.create_model("zoo-tiny-vit")
    run = tmp_path / "logs" / "my-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "params.txt").write_text("batch_size: 8\nmodel: zoo-tiny-vit\npretrained: \n")
    checkpoint = run / "checkpoints" / "epoch_3.pt"
    torch.save(
        {
            "epoch": 3,
            "name": "my-run",
            "state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()},
            "optimizer": {"state": {}, "param_groups": []},
        },
        checkpoint,
    )
    model = zoo.load(checkpoint)
    assert model.name == "clip/open-clip" and model.embed_dim == 32
    tokens = open_clip.get_tokenizer("zoo-tiny-vit")(["a red square"])
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(["a red square"]), trained.encode_text(tokens, normalize=True))
    (run / "params.txt").write_text("batch_size: 8\n")
    with pytest.raises(FileError, match="no 'model: ARCH' line"):
        zoo.load(checkpoint)
