"""A trained classification head as one linear map over a backbone's embedding.

A classification run saves its head in ``model/head.safetensors`` (a fine-tune's linear layer, or a
linear probe's standardisation and linear layer) with the class names in ``model/head.json``.
`ClassifierHead` reads either into the same form, ``logits = embedding @ weight.T + bias`` on what
``encode_*`` returns, which is what prediction serves and what an export writes beside (or into)
the backbone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.validation import FileError, read_json_file

HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head.json"
HEAD_SCHEMA = {
    "type": "object",
    "required": ["label_names"],
    "properties": {
        "task": {"type": "string"},
        "mode": {"type": "string"},
        "label_names": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "backbone": {"type": "string"},
    },
}


@dataclass(frozen=True)
class ClassifierHead:
    """``weight`` [C, D] and ``bias`` [C] over the backbone's embedding, and the C class names."""

    weight: torch.Tensor
    bias: torch.Tensor
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        classes, _ = self.weight.shape
        if self.bias.shape != (classes,) or len(self.label_names) != classes:
            raise ValueError(
                f"a head of {classes} classes needs {classes} biases and names; got {tuple(self.bias.shape)} "
                f"and {len(self.label_names)}"
            )

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, C] class scores of [B, D] embeddings."""
        return F.linear(embeddings, self.weight.to(embeddings), self.bias.to(embeddings))

    def linear(self) -> torch.nn.Linear:
        """The head as a ``torch.nn.Linear`` (a copy), to put into a module or a graph."""
        layer = torch.nn.Linear(self.weight.shape[1], self.num_classes)
        with torch.no_grad():
            layer.weight.copy_(self.weight)
            layer.bias.copy_(self.bias)
        return layer

    @classmethod
    def from_directory(cls, directory: str | os.PathLike) -> ClassifierHead:
        """The head a classification run saved in ``directory`` (its ``model/`` folder); a linear probe's
        standardisation ``(x - mean) / std`` is folded into the weights, so every head is one linear map."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        config = read_json_file(directory / HEAD_CONFIG, HEAD_SCHEMA, "a classification head's head.json")
        try:
            state = load_file(str(directory / HEAD_FILE))
        except (SafetensorError, OSError) as exc:
            raise FileError(f"{directory / HEAD_FILE}: cannot read the head ({exc})") from None
        if "head.weight" not in state or "head.bias" not in state:
            raise FileError(f"{directory / HEAD_FILE}: no head.weight and head.bias; it is not a classification head")
        weight, bias = state["head.weight"].float(), state["head.bias"].float()
        if "mean" in state and "std" in state:  # a linear probe: W ((x - m) / s) + b = (W / s) x + (b - (W / s) m)
            weight = weight / state["std"].float()
            bias = bias - weight @ state["mean"].float()
        try:
            return cls(weight, bias, tuple(config["label_names"]))
        except ValueError as exc:
            raise FileError(f"{directory}: {exc}") from None
