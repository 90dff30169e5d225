"""`zoo export --to timm` and `--to open_clip`: the written folders load in timm and open_clip themselves
(from the files alone) and give zoo's embeddings and a run's predictions; what a runtime cannot load
is refused with one line that names the formats that can."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.exporting import verify
from zoo.runs import Run

from conftest import DATA_ROOT
from hub_cards import hub_card
from tiny_models import open_clip_folder

CIFAR = DATA_ROOT / "images" / "cifar10"


def cifar_pictures(count: int = 10) -> tuple[list, list[str]]:
    """One picture of each class from the end of each class folder, and its class."""
    from PIL import Image

    files = [sorted(folder.glob("*.jpg"))[-1] for folder in sorted(p for p in CIFAR.iterdir() if p.is_dir())][:count]
    return [Image.open(file).convert("RGB") for file in files], [file.parent.name for file in files]


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory) -> Path:
    """A tiny timm EfficientNet for 64-px pictures (a save_for_hf folder without a classifier),
    fine-tuned for two epochs on 32 CIFAR-10 pictures."""
    import timm
    from timm.models import save_for_hf

    if not CIFAR.is_dir():
        pytest.skip(f"no CIFAR-10 under {DATA_ROOT}")
    root = tmp_path_factory.mktemp("timm-run")
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    save_for_hf(
        model, str(root / "tiny"), safe_serialization=True, data_config={"input_size": (3, 64, 64), "crop_pct": 1.0}
    )
    results = zoo.load(str(root / "tiny")).finetune(
        "image-classification",
        "cifar10",
        epochs=2,
        lr=1e-2,
        train_limit=32,
        eval_limit=16,
        batch_size=8,
        output_dir=str(root),
        name="cifar",
    )
    return Path(results["run_dir"])


def test_a_fine_tuned_timm_run_loads_in_timm_with_the_run_s_features_and_predictions(cifar_run, tmp_path):
    import timm

    out = tmp_path / "timm-export"
    manifest = zoo.export(cifar_run, "timm", out)
    assert set(manifest["parity"]) == {f"image/{n}/{k}" for n in (7, 1) for k in ("embedding", "logits")}
    assert max(manifest["parity"].values()) <= 1e-4  # seen: 0.0
    run = zoo.load_run(cifar_run)
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 10 and config["label_names"] == run.label_names
    assert run.label_names == sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    pre = run.backbone.image_preprocessing
    written = config["pretrained_cfg"]
    assert written["input_size"] == [3, *pre.size] and written["crop_pct"] == pre.crop_pct == 1.0
    assert (written["mean"], written["std"], written["interpolation"]) == (
        list(pre.mean),
        list(pre.std),
        pre.interpolation,
    )

    # what a timm user does: the folder, timm's own transform from the model's pretrained_cfg
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == run.label_names
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
    pictures, _ = cifar_pictures()
    pixels = torch.stack([transform(picture) for picture in pictures])
    with torch.no_grad():
        features = model.forward_head(model.forward_features(pixels), pre_logits=True)
        probabilities = model(pixels).softmax(dim=-1)
    assert (features - run.embed(pictures)).abs().max() <= 1e-4  # seen: 1.5e-6 (timm's resize and zoo's)
    assert (probabilities - run.probabilities(pictures)).abs().max() <= 1e-4
    labels = [model.pretrained_cfg["label_names"][i] for i in probabilities.argmax(dim=-1)]
    assert labels == [p["label"] for p in run.predict(pictures)]
    readme = (out / "README.md").read_text()
    assert 'timm.create_model("local-dir:' in readme and "10 class logits" in readme
    front = hub_card(readme)  # timm's image-classification pipeline: model(x), the run's logits, as checked above
    assert (front["library_name"], front["pipeline_tag"]) == ("timm", "image-classification")
    assert verify(out)["image/7/logits"] <= 1e-4  # the folder checks out again later
    # and zoo loads the folder back with its classifier and the run's class names
    again = zoo.load(str(out))
    assert again.class_names == run.label_names
    assert again.classify(pictures).argmax(dim=-1).tolist() == probabilities.argmax(dim=-1).tolist()


def test_without_its_head_the_backbone_keeps_its_own_classifier_here_none(cifar_run, tmp_path):
    import timm

    out = tmp_path / "backbone-only"
    zoo.export(cifar_run, "timm", out, with_head=False)
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 0 and "label_names" not in config
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    pictures, _ = cifar_pictures(3)
    pixels = zoo.load_run(cifar_run).backbone.pixels(pictures)
    with torch.no_grad():
        assert torch.equal(model(pixels), model.forward_head(model.forward_features(pixels), pre_logits=True))
    assert "no classifier" in (out / "README.md").read_text()
    front = hub_card((out / "README.md").read_text())
    assert (front["library_name"], front["pipeline_tag"]) == ("timm", "image-feature-extraction")


def test_an_open_clip_model_exports_to_a_folder_open_clip_loads_with_zoo_s_embeddings(tmp_path):
    import open_clip

    backbone = zoo.load(str(open_clip_folder(tmp_path)))
    out = tmp_path / "open-clip-export"
    manifest = zoo.export(backbone, "open_clip", out)
    assert max(manifest["parity"].values()) <= 1e-4 and len(manifest["parity"]) == 4  # seen: 0.0 for each
    config = json.loads((out / "open_clip_config.json").read_text())
    assert config["preprocess_cfg"]["resize_mode"] == "shortest" and config["preprocess_cfg"]["size"] == 32

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    model.eval()
    texts = ["a photo of a cat", "two dogs playing in the snow on a bright winter morning"]
    pictures, _ = cifar_pictures(3) if CIFAR.is_dir() else ([], [])
    with torch.no_grad():
        text = model.encode_text(tokenizer(texts), normalize=True)
        assert (text - backbone.encode_text(texts)).abs().max() <= 1e-5
        if pictures:
            image = model.encode_image(torch.stack([preprocess(p) for p in pictures]), normalize=True)
            assert (image - backbone.encode_image(pictures)).abs().max() <= 1e-4
    front = hub_card((out / "README.md").read_text())
    assert (front["library_name"], front["pipeline_tag"]) == ("open_clip", "zero-shot-image-classification")
    reloaded = zoo.load(str(out))  # zoo reads its own export back
    assert torch.equal(reloaded.encode_text(texts), backbone.encode_text(texts))


def test_formats_refuse_what_their_runtime_cannot_load_in_one_line(tmp_path):
    joined = zoo.load(
        "clip/lite0-minilm-l6", pretrained=False, image_tower="vision/cnn-tiny", text_tower="text/bert-tiny"
    )
    torchvision = zoo.load("vision/tv-mobilenet-v3-small", pretrained=False)
    clip = zoo.load(str(open_clip_folder(tmp_path)))
    head = zoo.ClassifierHead(torch.zeros(2, clip.embed_dim), torch.zeros(2), ("cat", "dog"))
    cases = [
        (
            joined,
            "open_clip",
            "clip/lite0-minilm-l6 joins a vision/cnn-tiny image tower and a text/bert-tiny text tower",
        ),
        (
            torchvision,
            "timm",
            "vision/tv-mobilenet-v3-small is a torchvision mobilenet_v3_small, which timm cannot build",
        ),
        (joined, "timm", "clip/lite0-minilm-l6 is a multimodal backbone (JoinedCLIP), not a timm model"),
        (Run(None, clip, head), "open_clip", "an open_clip folder has no place for a classification head"),
    ]
    for source, to, reason in cases:
        out = tmp_path / f"refused-{to}"
        with pytest.raises(zoo.ZooError) as refused:
            zoo.export(source, to, out)
        message = str(refused.value)
        assert reason in message and "--to onnx" in message and "\n" not in message, message
        assert not out.exists()
