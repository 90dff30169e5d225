"""The example backbone: a small CNN, imported only when it is loaded."""

from __future__ import annotations

import torch
from torch import nn

import zoo


class ExampleConvNet(zoo.Backbone):
    """Three conv blocks and a global average pool; embeds [B, C, H, W] images."""

    def __init__(self, spec: zoo.BackboneSpec, width: int = 16, in_channels: int = 3) -> None:
        super().__init__(spec, weights=None)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, spec.embed_dim), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def build(spec: zoo.BackboneSpec, weights, width: int = 16) -> ExampleConvNet:
    if weights is not None:
        raise zoo.ZooError(f"{spec.name} has no pretrained weights: load it with pretrained=False")
    return ExampleConvNet(spec, width=width)
