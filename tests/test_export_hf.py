"""`zoo export --to hf`: a fine-tuned text backbone, written as a Hugging Face folder, loads in plain
transformers and in sentence-transformers and gives zoo's own vectors; its head predicts what zoo
predicts. Tiny models of each architecture are made and fine-tuned on the spot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.runs import Run

from hub_cards import hub_card
from tiny_models import hf_folder

TEXTS = [
    "a good film",
    "the plot was very long and not quite funny at all, a grim and slow story",
    "awful",
    "the actor is great",
]
# the class each folder's config.json names, and the class plain transformers loads it with
CLASSES = {"bert": "BertModel", "gpt2": "GPT2Model", "t5": "T5EncoderModel", "bart": "BartEncoder"}
EXACT = 1e-5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-export")
    (root / "reviews.tsv").write_text(
        "".join(
            f"{'a good fine film' if i % 2 else 'an awful grim plot'} {i}\t{'pos' if i % 2 else 'neg'}\n"
            for i in range(24)
        )
    )
    return root


@pytest.fixture(scope="module", params=list(CLASSES))
def finetuned(request, root):
    """A classification run of a tiny model of architecture ``request.param``, one epoch."""
    torch.manual_seed(0)
    backbone = zoo.load(str(hf_folder(root, request.param)))
    results = backbone.finetune(
        "text-classification", str(root / "reviews.tsv"), epochs=1, batch_size=8, output_dir=str(root / request.param)
    )
    return request.param, Path(results["run_dir"])


def pooled(hidden, mask, pooling):
    """The pooling the export's README states, from its words."""
    if pooling == "last":
        return hidden[torch.arange(len(hidden)), torch.stack([row.nonzero().max() for row in mask])]
    keep = mask.unsqueeze(-1).float()
    return (hidden * keep).sum(1) / keep.sum(1)


def transformers_embedding(folder: Path, name: str, route: dict) -> torch.Tensor:
    from transformers import AutoModel, AutoTokenizer, T5EncoderModel
    from transformers.models.bart.modeling_bart import BartEncoder

    model_class = {"T5EncoderModel": T5EncoderModel, "BartEncoder": BartEncoder}.get(name, AutoModel)
    model = model_class.from_pretrained(str(folder)).eval()
    batch = AutoTokenizer.from_pretrained(str(folder))(TEXTS, padding=True, truncation=True, return_tensors="pt")
    assert type(model).__name__ == name
    with torch.no_grad():
        vectors = pooled(model(**batch).last_hidden_state, batch["attention_mask"], route["pooling"])
    return F.normalize(vectors, dim=-1) if route["normalize"] else vectors


def test_a_finetuned_run_loads_in_transformers_and_sentence_transformers_and_predicts_as_zoo(finetuned, tmp_path):
    from safetensors.torch import load_file

    arch, run_dir = finetuned
    out = tmp_path / "hf"
    manifest = zoo.export(str(run_dir), "hf", out)
    assert max(manifest["parity"].values()) <= EXACT, manifest["parity"]
    run = zoo.load_run(run_dir)
    zoos = run.backbone.encode_text(TEXTS)
    route = json.loads((out / "zoo-hf.json").read_text())
    assert json.loads((out / "config.json").read_text())["architectures"] == [CLASSES[arch]]
    assert not any(key.startswith("model.") for key in load_file(str(out / "model.safetensors")))
    embeddings = {"transformers": transformers_embedding(out, CLASSES[arch], route)}
    readme = (out / "README.md").read_text()
    if arch == "bart":  # sentence-transformers would load BartModel and pool its decoder: plain transformers only
        assert route["embedding"] == "transformers" and not (out / "modules.json").exists()
        assert "sentence-transformers does not reproduce it" in readme and "would build `BartModel`" in readme
    else:
        from sentence_transformers import SentenceTransformer

        assert route["embedding"] == "sentence-transformers"
        model = SentenceTransformer(str(out), device="cpu")
        embeddings["sentence-transformers"] = model.encode(TEXTS, convert_to_tensor=True)
    for how, got in embeddings.items():
        assert (got - zoos).abs().max() <= EXACT, how
    # the head: classifier/ over the embedding, as the README says; fine-tuned heads have a bias, which no
    # ...ForSequenceClassification of these families computes on zoo's embedding
    head = load_file(str(out / "classifier" / "model.safetensors"))
    labels = json.loads((out / "classifier" / "config.json").read_text())["id2label"]
    logits = F.linear(embeddings["transformers"], head["weight"], head["bias"])
    assert (logits - run.head.logits(zoos)).abs().max() <= EXACT
    assert [labels[str(int(i))] for i in logits.argmax(-1)] == [p["label"] for p in run.predict(TEXTS)]
    assert route["sequence_classification"] is None and "No `AutoModelForSequenceClassification` form" in readme
    # so the card does not advertise text-classification, whose pipeline would load a random classifier: it
    # declares the embedding's pipeline, which loads as checked above
    front = hub_card(readme)
    expected = (
        ("transformers", "feature-extraction") if arch == "bart" else ("sentence-transformers", "sentence-similarity")
    )
    assert (front["library_name"], front["pipeline_tag"]) == expected
    assert f"`pipeline_tag` is `{expected[1]}`, not `text-classification`" in readme
    assert front["model-index"][0]["results"][0]["dataset"]["name"] == "reviews"  # a name, not a path


def test_a_head_that_maps_exactly_loads_with_its_labels_and_zoo_says_it_drops_them(root, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # GPT2ForSequenceClassification scores the last real token's state without a bias: zoo's last-token
    # pooling without normalisation and a head without bias are exactly that
    backbone = zoo.load(str(hf_folder(tmp_path, "gpt2")), normalize=False)
    backbone.tokenizer.padding_side = "left"  # zoo counts positions over real tokens; the export pads right
    torch.manual_seed(0)
    head = zoo.ClassifierHead(torch.randn(3, backbone.embed_dim), torch.zeros(3), ("neg", "neutral", "pos"))
    out = tmp_path / "hf"
    manifest = zoo.export(Run(None, backbone, head), "hf", out)
    assert max(manifest["parity"].values()) <= EXACT
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert type(model).__name__ == "GPT2ForSequenceClassification"
    assert model.config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.padding_side == "right"
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    zoos = backbone.encode_text(TEXTS)
    assert (logits - head.logits(zoos)).abs().max() <= EXACT
    # the card declares text-classification, and transformers' pipeline for it predicts what zoo predicts
    front = hub_card((out / "README.md").read_text())
    assert (front["library_name"], front["pipeline_tag"]) == ("transformers", "text-classification")
    from transformers import pipeline

    classify = pipeline(front["pipeline_tag"], model=str(out), device="cpu")
    predicted = classify(TEXTS, top_k=None)
    probabilities = torch.softmax(head.logits(zoos), dim=-1)
    for row, expected in zip(predicted, probabilities, strict=True):
        got = torch.tensor([next(p["score"] for p in row if p["label"] == name) for name in head.label_names])
        assert (got - expected).abs().max() <= EXACT
    with pytest.warns(zoo.WeightsWarning) as caught:
        again = zoo.load(str(out))
    assert [str(w.message) for w in caught] == [
        f"text/hf-hub: {out} is a GPT2ForSequenceClassification checkpoint; its head and its 3 labels "
        "(neg, neutral, pos) are dropped: zoo loads the backbone alone"
    ]
    assert again.text_preprocessing.pooling == "last" and not again.text_preprocessing.normalize
    assert (again.encode_text(TEXTS) - zoos).abs().max() <= EXACT


def test_a_backbone_of_another_family_is_refused_in_one_line(tmp_path):
    with pytest.raises(zoo.ZooError) as caught:
        zoo.export("vision/example-convnet", "hf", tmp_path / "hf")
    message = str(caught.value)
    assert "\n" not in message and "--to onnx" in message and "--to pt2" in message
    assert "vision/example-convnet" in message and not (tmp_path / "hf").exists()


@pytest.mark.slow
def test_minilm_exports_as_the_sentence_transformers_model_it_came_from(tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "minilm"
    manifest = zoo.export("text/minilm-l6", "hf", out)
    assert max(manifest["parity"].values()) <= EXACT
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    zoos = zoo.load("text/minilm-l6").encode_text(TEXTS)
    vectors = SentenceTransformer(str(out), device="cpu").encode(TEXTS, convert_to_tensor=True)
    assert (vectors - zoos).abs().max() <= EXACT
    assert (zoo.load(str(out)).encode_text(TEXTS) - zoos).abs().max() <= EXACT


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_an_encoder_export_loads_back_into_zoo_with_every_weight(arch, root, tmp_path):
    # config.json names T5EncoderModel / BartEncoder: zoo loads that class, not the whole model with a random decoder
    import warnings

    backbone = zoo.load(str(hf_folder(tmp_path, arch)))
    zoo.export(backbone, "hf", tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("error", zoo.WeightsWarning)
        again = zoo.load(str(tmp_path / "out"))
    assert torch.equal(again.encode_text(TEXTS), backbone.encode_text(TEXTS))
