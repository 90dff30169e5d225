"""The example backbone: a small CNN, imported only when it is loaded.

A family fills in what is its own, on tensors: the model, its typed preprocessing and
``encode_pixels``. zoo turns images into that tensor batch itself (``encode_image`` on PIL
images, every task and ``zoo compare`` use the same transform), so a family never
preprocesses pictures.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import zoo


class ExampleConvNet(zoo.Backbone):
    """Three conv blocks and a global average pool over 32x32 RGB images."""

    def __init__(self, spec: zoo.BackboneSpec, width: int = 16, image_size: int = 32) -> None:
        super().__init__(spec, weights=None)
        # the preprocessing travels with the model (and is saved with its weights): the whole picture
        # squashed to 32x32, as CIFAR-sized images are usually fed
        self.image_preprocessing = zoo.ImagePreprocessing(
            size=(image_size, image_size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_mode="squash"
        )

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, spec.embed_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 64] features of a normalised [B, 3, 32, 32] batch."""
        return self.features(pixels)


def build(spec: zoo.BackboneSpec, weights: Any, width: int = 16, saved_dir: str | None = None) -> ExampleConvNet:
    """zoo calls this as build(spec, weights, **options); saved_dir is set when rebuilding a saved model."""
    if weights is not None:
        raise zoo.ZooError(f"{spec.name} has no pretrained weights: load it with pretrained=False")
    return ExampleConvNet(spec, width=width)
