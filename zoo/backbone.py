"""The `Backbone` contract that every family implements.

A backbone is a ``torch.nn.Module`` that carries its own typed preprocessing
(`zoo.ImagePreprocessing`, `zoo.TextPreprocessing`), so weights and preprocessing can
never be mismatched silently. A family subclasses `Backbone` and fills in only what is
its own, on tensors: ``encode_pixels`` (normalised image batches), ``tokenize`` and
``encode_tokens`` (token batches), its preprocessing, its self-supervised objective,
and what rebuilds and saves it. The core owns the rest once, here:

- ``encode_image`` / ``encode_text`` take PIL images, paths or strings, turn them into
  tensors through the one input path, and embed them in eval mode without autograd;
- ``forward`` is the same embedding with autograd, for training and export;
- ``pretrain``, ``finetune`` and ``evaluate`` hand the work to the shared engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.backbone_types import FrozenImageEncoder, PretrainedClasses, evaluating
from zoo.errors import PreprocessingWarning, ZooError
from zoo.preprocessing import ImagePreprocessing, TextPreprocessing, legacy_preprocessing, preprocessing_from_json
from zoo.specs import BackboneSpec, Weights

ENCODE_BATCH = 64  # encode_image / encode_text embed long lists this many at a time


class Backbone(torch.nn.Module):
    """Base class of every backbone returned by `zoo.load`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # zoo API 1.x: a family overrode encode_image / encode_text, taking PIL images or strings and
        # also tensors. Its override becomes the tensor encoder, and the core's input path serves the
        # rest, so the family's own picture preprocessing can no longer disagree with the tasks'.
        super().__init_subclass__(**kwargs)
        for old, new in (("encode_image", "encode_pixels"), ("encode_text", "encode_tokens")):
            legacy = cls.__dict__.get(old)
            if legacy is None or getattr(cls, new) is not getattr(Backbone, new):
                continue
            warnings.warn(
                f"{cls.__module__}.{cls.__qualname__} overrides {old}, as zoo API 1.x families did; "
                f"implement {new} (on tensors) instead: zoo now turns inputs into tensors itself",
                DeprecationWarning,
                stacklevel=2,
            )
            setattr(cls, new, legacy)
            delattr(cls, old)

    def __init__(self, spec: BackboneSpec, weights: Weights | str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.weights = weights  # where the parameters came from: a Weights entry, a path, or None (random)
        self.image_preprocessing: ImagePreprocessing | None = None
        self.text_preprocessing: TextPreprocessing | None = None
        self.adapter: Any = None  # the LoRA adapter it carries (a zoo.adapters.Adapter), set by zoo.adapters

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def modality(self) -> str:
        """The kind of input it encodes: "text", "image" or "multimodal"."""
        return self.spec.modality

    @property
    def embed_dim(self) -> int:
        """Width of the vectors ``encode_*`` returns."""
        if self.spec.embed_dim is None:
            raise NotImplementedError(f"{type(self).__name__} must set embed_dim")
        return self.spec.embed_dim

    @property
    def device(self) -> torch.device:
        """Where the parameters are (the CPU for a model without any)."""
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    # -- preprocessing ------------------------------------------------------------------
    @property
    def preprocessing(self) -> dict[str, Any]:
        """The typed preprocessing as JSON: ``{"image": {...}, "text": {...}}``, whichever apply. It is
        what ``zoo.json`` records and what caches are keyed by; set the typed members instead."""
        parts = {"image": self.image_preprocessing, "text": self.text_preprocessing}
        return {part: value.to_dict() for part, value in parts.items() if value is not None}

    @preprocessing.setter
    def preprocessing(self, value: Mapping[str, Any]) -> None:
        # zoo API 1.x: families set a dict in one of several layouts
        warnings.warn(
            f"{type(self).__name__}: setting Backbone.preprocessing to a dict is zoo API 1.x; set "
            "image_preprocessing = zoo.ImagePreprocessing(...) or text_preprocessing = "
            "zoo.TextPreprocessing(...) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.set_preprocessing(legacy_preprocessing(self.modality, value))

    def set_preprocessing(self, data: Mapping[str, Any]) -> None:
        """Set the typed members from the JSON form that `preprocessing` returns."""
        parts = preprocessing_from_json(data)
        image, text = parts.get("image"), parts.get("text")
        if isinstance(image, ImagePreprocessing):
            self.image_preprocessing = image
        if isinstance(text, TextPreprocessing):
            self.text_preprocessing = text

    # -- what a family implements, on tensors -------------------------------------------
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, D] embeddings of a normalised [B, 3, H, W] batch (as ``image_preprocessing`` makes it),
        with autograd: what training and export call."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no image encoder")

    def tokenize(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """Token tensors for a list of strings, as ``encode_tokens`` takes them: ``input_ids`` and, where
        the model uses one, ``attention_mask`` (1 for real tokens), cut at the preprocessing's
        ``max_length``."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no text encoder")

    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B, D] embeddings of a token batch from ``tokenize``, with autograd."""
        raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no text encoder")

    # -- what the core provides ---------------------------------------------------------
    def forward(self, inputs: Any, text: Mapping[str, torch.Tensor] | None = None) -> Any:
        """Embeddings with autograd, from tensors. An image backbone takes a normalised pixel batch, a
        text backbone a token batch (a dict from ``tokenize``); each returns [B, D]. A multimodal
        backbone takes ``(pixels, tokens)``, either of which may be None, and returns the pair of
        embeddings (None for a missing side)."""
        if self.modality == "image":
            return self.encode_pixels(inputs)
        if self.modality == "text":
            return self.encode_tokens(inputs)
        return (
            None if inputs is None else self.encode_pixels(inputs),
            None if text is None else self.encode_tokens(text),
        )

    def pixels(self, images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
        """The normalised batch for PIL images, paths, arrays or decoded uint8 tensors: the one image
        input path (`zoo.data.images.pixel_batch`) with this backbone's ``image_preprocessing``."""
        from zoo.data.images import pixel_batch

        if self.image_preprocessing is None:
            raise ZooError(f"backbone {self.name!r} is a {self.modality} backbone: it has no image encoder")
        return pixel_batch(images, self.image_preprocessing)

    def encode_image(self, images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
        """[B, D] embeddings of a list of images (PIL, paths, arrays) or of a normalised [B, 3, H, W]
        batch; in eval mode and without autograd (the caller's mode is restored)."""
        if isinstance(images, (str, Path)) or (hasattr(images, "size") and hasattr(images, "convert")):
            raise ZooError("encode_image takes a list of images, got a single one: wrap it in a list")
        if len(images) == 0:
            raise ZooError("encode_image got no images")
        with evaluating(self):
            if isinstance(images, torch.Tensor) and images.is_floating_point():
                out = self.encode_pixels(images.to(self.device))
            else:
                out = torch.cat(
                    [
                        self.encode_pixels(self.pixels(images[s : s + ENCODE_BATCH]).to(self.device))
                        for s in range(0, len(images), ENCODE_BATCH)
                    ]
                )
        return out.clone()  # a normal tensor: an inference-mode one could not feed a head trained later

    def encode_text(self, texts: Sequence[str] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B, D] embeddings of a list of strings (or a token batch from ``tokenize``); in eval mode and
        without autograd. Texts longer than ``max_length`` tokens are cut, with one warning."""
        if isinstance(texts, str):
            raise ZooError("encode_text takes a list of strings, got a single string: wrap it in a list")
        if not isinstance(texts, Mapping) and len(texts) == 0:
            raise ZooError("encode_text got no texts")
        with evaluating(self):
            if isinstance(texts, Mapping):
                out = self.encode_tokens(_to(texts, self.device))
            else:
                texts, parts, cut = list(texts), [], 0
                for start in range(0, len(texts), ENCODE_BATCH):
                    tokens = self.tokenize(texts[start : start + ENCODE_BATCH])
                    cut += _filled(tokens, self.text_preprocessing)
                    parts.append(self.encode_tokens(_to(tokens, self.device)))
                out = torch.cat(parts)
                if cut:
                    limit = self.text_preprocessing.max_length if self.text_preprocessing else None
                    warnings.warn(
                        f"{self.name}: {cut} of {len(texts)} texts were cut at max_length={limit} tokens",
                        PreprocessingWarning,
                        stacklevel=2,
                    )
        return out.clone()

    # -- declared capabilities (defaults for backbones without them) ---------------------
    @property
    def image_tower(self) -> torch.nn.Module | None:
        """The module that encodes images in a multimodal backbone (None otherwise): what freezing,
        adapters and per-tower export act on. A multimodal family assigns it in ``__init__``
        (``self.image_tower = module``, a submodule of that name) or overrides the property."""
        return self._modules.get("image_tower")

    @property
    def text_tower(self) -> torch.nn.Module | None:
        """The module that encodes texts in a multimodal backbone (None otherwise); assigned or
        overridden as ``image_tower`` is."""
        return self._modules.get("text_tower")

    def learned_logit_scale(self) -> torch.Tensor | None:
        """The learnable scale (log inverse temperature) a contrastive objective multiplies cosine
        similarities by; None: the task uses a fixed temperature."""
        return None

    def join_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters that join a multimodal backbone's towers (projections, the learned temperature),
        or any parameters a family adds fresh on top of pretrained parts: they train at a recipe's
        ``head_lr``, as a task's new head does, whatever they are called. Default: none."""
        return []

    def frozen_image_encoder(self) -> FrozenImageEncoder | None:
        """With a locked image tower: the tower and what maps its features to embeddings; else None."""
        return None

    def blocks(self, tower: str | None = None) -> list[torch.nn.Module]:
        """The repeated blocks (transformer layers, a CNN's stages), input side first: what sharding
        (one FSDP unit each) and partial unfreezing (the last N) act on. ``tower`` ("image" | "text")
        picks one tower's; None: all of them (each tower's, image first). Default: none declared."""
        return []

    def set_gradient_checkpointing(self, enabled: bool = True) -> bool:
        """Recompute the blocks' activations in the backward pass instead of keeping them (less memory,
        more compute), as the family's library does it; False: this backbone cannot."""
        return False

    @staticmethod
    def repeated_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
        """The longest ``ModuleList`` / ``Sequential`` in ``module`` whose children are all of one
        class (a transformer's layers): a helper for families' ``blocks``."""
        best: list[torch.nn.Module] = []
        for child in module.modules():
            if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)) and len(child) > len(best):
                items = list(child)
                if len({type(item) for item in items}) == 1:
                    best = items
        return best

    @property
    def pretrained_classes(self) -> PretrainedClasses | None:
        """The classes of the classifier the pretrained weights came with (ImageNet-1k for ImageNet
        weights); None: no pretrained classifier (random weights, a text or CLIP-style backbone)."""
        return None

    def drop_pretrained_head(self) -> None:
        """Forget the classifier the weights came with, so that `pretrained_classes` is None and a saved
        folder declares none: called when the backbone's own weights are trained, after which that head
        no longer fits the features it reads. Families with a head override it; the default has none."""

    def classify_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, classes] logits of the pretrained classifier for a normalised pixel batch, with autograd;
        one logit per entry of ``pretrained_classes``."""
        raise ZooError(f"backbone {self.name!r} has no pretrained classifier")

    @property
    def pretraining_objective(self) -> str:
        """What ``pretrain`` optimises, which decides the batches the ``pretraining`` task builds:
        "mlm" (masked-language modelling; text default), "causal-lm" (next-token prediction, for
        decoder-only text models), "simclr" (images) or "infonce" (image-text pairs)."""
        return {"text": "mlm", "image": "simclr", "multimodal": "infonce"}[self.modality]

    def pretraining_head(self, nsp: bool = False) -> torch.nn.Module | None:
        """Modules the pretraining objective needs besides the backbone (an MLM head, a projector).

        They train with the backbone but are not part of it: ``save`` leaves them out. ``nsp`` asks
        for BERT's next-sentence classifier too (masked-LM text families). The default is SimCLR's
        projector for image backbones (embedding -> 512 -> ReLU -> 128), none otherwise."""
        if nsp:
            raise ZooError(f"backbone {self.name!r} has no next-sentence prediction head")
        if self.modality != "image":
            return None
        from zoo.tasks.objectives import simclr_projector

        return simclr_projector(self.embed_dim)

    def pretrain_loss(self, batch: Any, head: torch.nn.Module | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The family's self-supervised objective on one batch: the loss and per-example outputs.

        ``batch`` is what the ``pretraining`` task builds for the modality: for image backbones two
        augmented views ``(view1, view2)`` (the default here: SimCLR's NT-Xent on the projected
        embeddings, with ``correct``: whether each view found its partner); for text backbones a
        tokenised batch whose ``input_ids`` are masked and whose ``labels`` hold the original tokens
        at masked positions (-100 elsewhere): a text family implements masked-language modelling; for
        "causal-lm" the ``input_ids`` are whole and ``labels`` are the same tokens (-100 at padding)."""
        if self.modality == "image" and head is not None:
            from zoo.tasks.objectives import simclr_loss

            return simclr_loss(self.encode_pixels, head, batch)
        raise ZooError(f"backbone {self.name!r} has no pretraining objective for its {self.modality} modality")

    def masking_vocabulary(self) -> tuple[int, int, list[int]]:
        """For masked-language modelling: the mask token id, the vocabulary size, and the ids never masked."""
        raise ZooError(f"backbone {self.name!r} has no tokenizer to mask")

    # -- saving ---------------------------------------------------------------------------
    def build_options(self) -> dict[str, Any]:
        """Factory keyword arguments that rebuild this architecture (saved in ``zoo.json``)."""
        return dict(self.spec.options)

    def save_assets(self, directory: Path) -> None:
        """Write what the weights need besides tensors (e.g. a tokenizer) into ``directory``."""

    def save(self, path: str | Path) -> Path:
        """Save to directory ``path``: safetensors weights, ``zoo.json`` (family, spec, preprocessing,
        checksum) and assets, written atomically. ``zoo.load(path)`` restores an identical backbone."""
        if self.adapter is not None:  # the adapter alone, with its base's name and weights digest
            from zoo.adapters import save_adapter

            return save_adapter(self, path)
        from zoo.saving import save_backbone

        return save_backbone(self, path)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- adapters (LoRA through peft) ---------------------------------------------------
    def adapter_targets(self, tower: str | None = None) -> list[str]:
        """Paths (in this backbone) of the modules LoRA adapts by default, inside ``tower`` ("image" or
        "text") or anywhere (None). The default: every ``nn.Linear`` and ``nn.MultiheadAttention``; a
        family narrows it to its blocks' attention and MLP projections."""
        from zoo.adapters import adaptable_paths

        within = {"image": self.image_tower, "text": self.text_tower}.get(tower or "")
        return adaptable_paths(self, within)

    def load_adapter(self, path: str | Path) -> Backbone:
        """Put the adapter saved in folder ``path`` (a LoRA run's ``model/backbone``) onto this backbone,
        which must be the base it was trained on (same name and weights; refused naming both otherwise)."""
        from zoo.adapters import attach

        return attach(self, path)

    def merge_adapter(self) -> Backbone:
        """Fold the adapter into the weights and drop it: a plain backbone, as ``zoo export`` writes it."""
        from zoo.adapters import merge

        return merge(self) if self.adapter is not None else self

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


def _to(tokens: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tokens.items()}


def _filled(tokens: Mapping[str, torch.Tensor], preprocessing: TextPreprocessing | None) -> int:
    """How many rows fill ``max_length``: texts that were (probably) cut."""
    if preprocessing is None or "attention_mask" not in tokens:
        return 0
    return int((tokens["attention_mask"].sum(dim=1) >= preprocessing.max_length).sum())
