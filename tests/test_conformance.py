"""The plugin authors' contract kit (`zoo.testing`), run on every built-in family and the example plugin."""

from __future__ import annotations

from zoo.testing import BackboneContract


class TestBuiltinFamilies(BackboneContract):
    # one pretrained and one from-scratch backbone of each family, and the joined CLIP towers
    backbones = [
        "text/minilm-l6",
        "text/bert-tiny",
        "vision/efficientnet-lite0",
        "vision/cnn-tiny",
        "clip/lite0-minilm-l6",
        "clip/openclip-tiny",
    ]


class TestRandomInitialisation(BackboneContract):
    # torchvision's weights come from its hub (online only); the architecture is checked from scratch
    backbones = ["vision/tv-mobilenet-v3-small"]
    pretrained = False


class TestExamplePlugin(BackboneContract):
    backbones = ["vision/example-*"]
