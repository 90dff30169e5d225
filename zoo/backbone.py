"""The `Backbone` interface that every family implements.

A backbone is a ``torch.nn.Module`` that carries its own preprocessing (a
tokenizer or an image transform), so weights and preprocessing can never be
mismatched silently. A family subclasses `Backbone` and fills in only what is
its own: building the model and loading weights, ``encode_*``, preprocessing,
its self-supervised objective, and ``save``. ``pretrain``, ``finetune`` and
``evaluate`` live here once and hand the work to the shared engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.specs import BackboneSpec, Weights


class Backbone(torch.nn.Module):
    """Base class of every backbone returned by `zoo.load`."""

    def __init__(self, spec: BackboneSpec, weights: Weights | str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.weights = weights  # where the parameters came from: a Weights entry, a path, or None (random)
        self.preprocessing: dict[str, Any] = {}  # the config the tokenizer / transform were built from

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def modality(self) -> str:
        """"text", "image" or "multimodal"."""
        return self.spec.modality

    @property
    def embed_dim(self) -> int:
        """Width of the vectors ``encode_*`` returns."""
        if self.spec.embed_dim is None:
            raise NotImplementedError(f"{type(self).__name__} must set embed_dim")
        return self.spec.embed_dim

    # -- what a family implements --------------------------------------------------
    def encode_text(self, texts: Any) -> torch.Tensor:
        """Embed a list of strings (or an already tokenised batch) as a [B, D] tensor."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no text encoder")

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        """Token tensors for a list of strings, as ``encode_text`` takes them (padded on the right)."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no text encoder")

    def encode_image(self, images: Any) -> torch.Tensor:
        """Embed a list of PIL images (or a preprocessed [B, C, H, W] tensor) as a [B, D] tensor."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no image encoder")

    @property
    def pretraining_objective(self) -> str:
        """What ``pretrain`` optimises, which decides the batches the ``pretraining`` task builds:
        "mlm" (masked-language modelling; text default), "causal-lm" (next-token prediction, for
        decoder-only text models), "simclr" (images) or "infonce" (image-text pairs)."""
        return {"text": "mlm", "image": "simclr", "multimodal": "infonce"}[self.modality]

    def pretraining_head(self) -> torch.nn.Module | None:
        """Modules the pretraining objective needs besides the backbone (an MLM head, a projector).

        They train with the backbone but are not part of it: ``save`` leaves them out. The default
        is SimCLR's projector for image backbones (embedding -> 512 -> ReLU -> 128), none otherwise."""
        if self.modality != "image":
            return None
        width = self.embed_dim
        return torch.nn.Sequential(torch.nn.Linear(width, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128))

    def pretrain_loss(self, batch: Any, head: torch.nn.Module | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The family's self-supervised objective on one batch: the loss and per-example outputs.

        ``batch`` is what the ``pretraining`` task builds for the modality: for image backbones two
        augmented views ``(view1, view2)`` (the default here: SimCLR's NT-Xent on the projected
        embeddings, with ``correct``: whether each view found its partner); for text backbones a
        tokenised batch whose ``input_ids`` are masked and whose ``labels`` hold the original tokens
        at masked positions (-100 elsewhere): a text family implements masked-language modelling; for
        "causal-lm" the ``input_ids`` are whole and ``labels`` are the same tokens (-100 at padding)."""
        if self.modality == "image" and head is not None:
            from zoo.engine.distributed import gather_with_grad
            from zoo.tasks.objectives import nt_xent

            view1, view2 = batch
            z1, z2 = head(self.encode_image(torch.cat([view1, view2]))).chunk(2)
            loss, correct = nt_xent(gather_with_grad(z1), gather_with_grad(z2), temperature=0.2)
            return loss, {"correct": correct.float()}
        raise ZooError(f"backbone {self.name!r} has no pretraining objective for its {self.modality} modality")

    def masking_vocabulary(self) -> tuple[int, int, list[int]]:
        """For masked-language modelling: the mask token id, the vocabulary size, and the ids never masked."""
        raise ZooError(f"backbone {self.name!r} has no tokenizer to mask")

    def build_options(self) -> dict[str, Any]:
        """Factory keyword arguments that rebuild this architecture (saved in ``zoo.json``)."""
        return dict(self.spec.options)

    def save_assets(self, directory: Path) -> None:
        """Write what the weights need besides tensors (e.g. a tokenizer) into ``directory``."""

    def save(self, path: str | Path) -> Path:
        """Save to directory ``path``: safetensors weights, ``zoo.json`` (family, spec, preprocessing,
        checksum) and assets, written atomically. ``zoo.load(path)`` restores an identical backbone."""
        from zoo.saving import save_backbone

        return save_backbone(self, path)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- what the engine drives (one implementation for every family) ---------------
    def pretrain(self, data: Any, **recipe: Any) -> dict:
        """Train with the family's self-supervised objective on ``data``; returns the run's results."""
        from zoo.engine import pretrain

        return pretrain(self, data, **recipe)

    def finetune(self, task: str, data: Any, **recipe: Any) -> dict:
        """Attach ``task``'s head and train (fine-tune, or a linear probe on cached features)."""
        from zoo.engine import finetune

        return finetune(self, task, data, **recipe)

    def evaluate(self, task: str, data: Any, **recipe: Any) -> dict:
        """Metrics of this backbone on ``task`` over ``data``."""
        from zoo.engine import evaluate

        return evaluate(self, task, data, **recipe)
