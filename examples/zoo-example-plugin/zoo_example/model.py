"""The example backbone: a small CNN, imported only when it is loaded."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

import zoo


class ExampleConvNet(zoo.Backbone):
    """Three conv blocks and a global average pool over 32x32 RGB images."""

    def __init__(self, spec: zoo.BackboneSpec, width: int = 16, image_size: int = 32) -> None:
        super().__init__(spec, weights=None)
        # the preprocessing travels with the model (and is saved with its weights)
        self.preprocessing = {"input_size": [3, image_size, image_size], "mean": [0.5] * 3, "std": [0.5] * 3}

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(3, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, spec.embed_dim), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> a normalised [B, 3, H, W] batch."""
        from torchvision.transforms import v2

        size = self.preprocessing["input_size"][1:]
        transform = v2.Compose([v2.Resize(size), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize(self.preprocessing["mean"], self.preprocessing["std"])])
        return torch.stack([transform(image.convert("RGB")) for image in images])

    def encode_image(self, images: Any) -> torch.Tensor:
        batch = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        return self.features(batch.to(next(self.parameters()).device))


def build(spec: zoo.BackboneSpec, weights: Any, width: int = 16, saved_dir: str | None = None) -> ExampleConvNet:
    """zoo calls this as build(spec, weights, **options); saved_dir is set when rebuilding a saved model."""
    if weights is not None:
        raise zoo.ZooError(f"{spec.name} has no pretrained weights: load it with pretrained=False")
    return ExampleConvNet(spec, width=width)
