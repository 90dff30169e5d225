"""`zoo export --to onnx / pt2`: one graph per tower, checked against `encode_*` by zoo.export itself
(parity on batches of 7 and 1, two sequence lengths), then run again here on new inputs."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

import zoo
from zoo.exporting import MANIFEST, PARITY_FILE, ExportError, verify
from zoo.exporting.folders import sealed
from zoo.runs import Run

from hub_cards import hub_card

onnxruntime = pytest.importorskip("onnxruntime")
PICTURE_SIZES = [(50, 70), (300, 120), (224, 224)]
NEW_TEXTS = ["a dog runs on the beach", "two children play chess in a park at night", "rain"]


def pictures(count: int = 3) -> list:
    from PIL import Image

    generator = np.random.default_rng(1)
    return [Image.fromarray(generator.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in PICTURE_SIZES[:count]]


def random_head(dim: int, classes: int = 3) -> zoo.ClassifierHead:
    generator = torch.Generator().manual_seed(0)
    names = tuple(f"class{i}" for i in range(classes))
    return zoo.ClassifierHead(
        torch.randn(classes, dim, generator=generator), torch.randn(classes, generator=generator), names
    )


def export_once(tmp_path_factory, source, fmt: str = "onnx"):
    folder = tmp_path_factory.mktemp("export") / "x"
    return folder, zoo.export(source, fmt, folder)


def ort_outputs(folder, part: str, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """Run ``{part}.onnx`` in onnxruntime directly, fed by the names preprocessing.json gives."""
    graph = json.loads((folder / "preprocessing.json").read_text())["graphs"][part]
    session = onnxruntime.InferenceSession(str(folder / graph["file"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [i["name"] for i in graph["inputs"]]
    return session.run(graph["outputs"], {i["name"]: inputs[i["name"]].numpy() for i in graph["inputs"]})


def assert_parity(folder, manifest, parts, head: bool = False) -> None:
    """Every tower's batches of 7 and 1 (texts at two padded lengths) within 1e-4 of zoo's outputs."""
    from safetensors.torch import load_file

    outputs = ["embedding", "logits"] if head else ["embedding"]
    assert set(manifest["parity"]) == {f"{p}/{n}/{o}" for p in parts for n in (7, 1) for o in outputs}
    assert max(manifest["parity"].values()) <= 1e-4, manifest["parity"]
    if "text" in parts:
        stored = load_file(str(folder / PARITY_FILE))
        lengths = {stored[f"text.{i}.tokens.input_ids"].shape for i in (0, 1)}
        assert {shape[0] for shape in lengths} == {7, 1} and len({shape[1] for shape in lengths}) == 2


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """MiniLM-L6 with a random 3-class head, exported to ONNX once for the tests below."""
    backbone = zoo.load("text/minilm-l6")
    head = random_head(backbone.embed_dim)
    folder, manifest = export_once(tmp_path_factory, Run(None, backbone, head))
    return backbone, head, folder, manifest


@pytest.mark.slow
def test_minilm_onnx_with_head_matches_encode_text(minilm):
    backbone, head, folder, manifest = minilm
    assert_parity(folder, manifest, ["text"], head=True)
    info = json.loads((folder / "preprocessing.json").read_text())
    assert info["label_names"] == list(head.label_names) and info["preprocessing"] == backbone.preprocessing
    assert info["graphs"]["text"]["inputs"][0] == {
        "name": "input_ids",
        "dtype": "int64",
        "shape": ["batch", "sequence"],
    }
    assert (folder / info["tokenizer"] / "tokenizer_config.json").is_file()
    assert "onnxruntime.InferenceSession('text.onnx'" in (folder / "README.md").read_text()
    # the card names the Hub model the weights are, and the graph's own task: it computes the logits
    front = hub_card((folder / "README.md").read_text())
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and front["license"] == "apache-2.0"
    assert (front["library_name"], front["pipeline_tag"]) == ("onnx", "text-classification")
    tokens = backbone.tokenize(NEW_TEXTS)  # a batch of 3, padded to another length
    embedding, logits = ort_outputs(folder, "text", tokens)
    expected = backbone.encode_text(NEW_TEXTS)
    assert np.abs(embedding - expected.numpy()).max() <= 1e-4
    assert np.abs(logits - head.logits(expected).numpy()).max() <= 1e-4


@pytest.mark.slow
def test_efficientnet_onnx_matches_encode_image(tmp_path_factory):
    backbone = zoo.load("vision/efficientnet-lite0")
    folder, manifest = export_once(tmp_path_factory, backbone)
    assert_parity(folder, manifest, ["image"])
    info = json.loads((folder / "preprocessing.json").read_text())
    assert info["graphs"]["image"]["inputs"] == [
        {"name": "pixels", "dtype": "float32", "shape": ["batch", 3, 224, 224]}
    ]
    assert info["tokenizer"] is None and not (folder / "text.onnx").exists()
    images = pictures(2)
    (embedding,) = ort_outputs(folder, "image", {"pixels": backbone.pixels(images)})
    assert np.abs(embedding - backbone.encode_image(images).numpy()).max() <= 1e-4


@pytest.mark.slow
def test_clip_onnx_has_a_graph_per_tower(tmp_path_factory):
    backbone = zoo.load("clip/lite0-minilm-l6")
    folder, manifest = export_once(tmp_path_factory, backbone)
    assert_parity(folder, manifest, ["image", "text"])
    images = pictures(3)
    (image,) = ort_outputs(folder, "image", {"pixels": backbone.pixels(images)})
    (text,) = ort_outputs(folder, "text", backbone.tokenize(NEW_TEXTS[:2]))
    assert np.abs(image - backbone.encode_image(images).numpy()).max() <= 1e-4
    assert np.abs(text - backbone.encode_text(NEW_TEXTS[:2]).numpy()).max() <= 1e-4
    assert np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)  # normalised, as encode_text returns it


def reseal(folder):
    """Record the folder's files as they are now in its manifest, and seal it again."""
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(sealed(manifest, folder)))


@pytest.mark.slow
def test_a_changed_weight_fails_parity_in_one_line(minilm, tmp_path):
    import onnx
    from onnx import numpy_helper

    folder = tmp_path / "copy"
    shutil.copytree(minilm[2], folder)
    model = onnx.load(str(folder / "text.onnx"))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    largest.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(largest), largest.name))  # the word embeddings
    onnx.save(model, str(folder / "text.onnx"))
    with pytest.raises(ExportError, match="text.onnx: changed since the export") as caught:
        verify(folder)
    reseal(folder)  # the hashes rewritten to match, as a forger would: parity still finds the change
    with pytest.raises(ExportError, match="fails parity: its text embedding") as caught:
        verify(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_truncated_graph_does_not_load_in_one_line(minilm, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(minilm[2], folder)
    data = (folder / "text.onnx").read_bytes()
    (folder / "text.onnx").write_bytes(data[: len(data) // 2])
    reseal(folder)  # past the hash check, to the runtime's own
    with pytest.raises(ExportError, match="the onnx export does not load") as caught:
        verify(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("name", "part"), [("text/bert-tiny", "text"), ("vision/cnn-tiny", "image")])
def test_pt2_programs_take_new_batch_sizes(name, part, tmp_path):
    backbone = zoo.load(name, pretrained=False).train()
    folder = tmp_path / "x"
    manifest = zoo.export(backbone, "pt2", folder)
    assert backbone.training  # the caller's mode comes back after tracing
    assert_parity(folder, manifest, [part])
    program = torch.export.load(folder / f"{part}.pt2").module()
    if part == "text":
        tokens = backbone.tokenize(NEW_TEXTS)
        got = program(*tokens.values())[0]
        expected = backbone.encode_text(NEW_TEXTS)
    else:
        pixels = backbone.pixels(pictures(3))
        got, expected = program(pixels)[0], backbone.encode_image(pixels)
    assert (got - expected).abs().max() <= 1e-4
    assert verify(folder).keys() == manifest["parity"].keys()


def test_onnx_without_onnx_installed_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if it were not installed
    with pytest.raises(ExportError, match="pip install") as caught:
        zoo.export(zoo.load("vision/cnn-tiny", pretrained=False), "onnx", tmp_path / "x")
    assert "\n" not in str(caught.value) and not (tmp_path / "x").exists()
