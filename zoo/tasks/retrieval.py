"""Retrieval on image-caption data, and zero-shot classification, for CLIP-style and text backbones.

- CLIP-style backbones: image->text and text->image retrieval; ``contrastive``
  mode tunes with symmetric InfoNCE and the backbone's learnable temperature
  (with a locked image tower, as LiT, the tower's features are computed once).
- Text backbones: text->text, each caption retrieving the other captions of
  its image; ``contrastive`` mode tunes on pairs of captions of one image.
``zero-shot`` mode evaluates the backbone as it is.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zoo.data import DataError, fingerprint
from zoo.data.cache import cached
from zoo.data.images import decode_all, tensor_transform
from zoo.errors import InputError, ZooError
from zoo.tasks.base import Task, save_trained_backbone
from zoo.tasks.batches import tokenized, trim
from zoo.tasks.classification import unwrap
from zoo.tasks.features import (
    feature_key,
    image_features,
    image_preprocessing_of,
    locked_tower_weights,
    text_features,
)
from zoo.tasks.objectives import gather_with_grad, info_nce
from zoo.tasks.retrieval_metrics import DEFINITION, random_recall, relevant_ranks, summarize

if TYPE_CHECKING:
    from zoo.backbone import Backbone, FrozenImageEncoder


class _Pairs(torch.utils.data.Dataset):
    """Training items: an image (or a caption) with one of its captions, drawn afresh each time;
    with ``mirrored`` (features of the flipped images), either copy of the image at random."""

    def __init__(
        self, images: Any, captions_of: list[list[int]], transform=None, text_pairs: bool = False, mirrored: Any = None
    ):
        self.images, self.captions_of, self.transform, self.text_pairs = images, captions_of, transform, text_pairs
        self.mirrored = mirrored

    def __len__(self) -> int:
        return len(self.captions_of)

    def __getitem__(self, index: int):
        options = self.captions_of[index]
        if self.text_pairs:  # two different captions of one image
            first, second = random.sample(options, 2)
            return first, second
        image = self.images[index] if self.mirrored is None or random.random() < 0.5 else self.mirrored[index]
        return (self.transform(image) if self.transform else image), random.choice(options)


class _Towers(nn.Module):
    """The backbone behind one ``forward`` that embeds both sides of a batch, so that DDP (which
    synchronises gradients through ``forward``) can wrap it."""

    def __init__(self, backbone: Backbone, frozen: FrozenImageEncoder | None, text_only: bool):
        super().__init__()
        self.backbone, self.text_only = backbone, text_only
        self.frozen_embed = frozen.embed if frozen is not None else None  # tower features -> embeddings

    def forward(self, first: Any, text: Any) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.backbone.encode_tokens(trim(text))
        if self.text_only:
            return self.backbone.encode_tokens(trim(first)), b
        return (self.frozen_embed(first) if self.frozen_embed is not None else self.backbone.encode_pixels(first)), b


class Retrieval(Task):
    """Image<->text retrieval for CLIP-style backbones; text->text for text backbones."""

    primary_metric = "R@1"
    modes: tuple[str, ...] = ("zero-shot", "contrastive")
    option_help: ClassVar[dict[str, str]] = {
        "direction": "image-text (CLIP-style backbones) or text-text (the default for text backbones)",
        "flip_features": "a locked image tower also encodes mirrored images: training draws either copy, "
        "evaluation averages both",
    }
    fresh_parameters: tuple[str, ...] = ()  # no head of its own: the backbone's join_parameters take head_lr

    def __init__(self, backbone, dataset, mode="zero-shot", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        if dataset.kind != "image-text":
            raise DataError(f"task 'retrieval' needs image-caption data; {dataset.name!r} is {dataset.kind}")
        self.text_only = backbone.modality == "text"
        direction = self.options.get("direction", "text-text" if self.text_only else "image-text")
        if backbone.modality == "image" or (self.text_only and direction == "image-text"):
            raise InputError(
                f"{backbone.name} is {'an image' if backbone.modality == 'image' else 'a text'} backbone; "
                "image<->text retrieval needs a CLIP-style backbone (text backbones do text->text)"
            )
        if direction not in ("image-text", "text-text"):
            raise InputError(f"retrieval direction must be 'image-text' or 'text-text', got {direction!r}")
        self.text_only = direction == "text-text"
        self.primary_metric = "text->text R@1" if self.text_only else "text->image R@1"
        self.frozen = backbone.frozen_image_encoder()
        if self.options.get("flip_features") and (self.frozen is None or self.text_only):
            raise InputError(
                f"task_options.flip_features: {backbone.name} has no locked image tower here, so there are no "
                "cached image features to mirror; lock the image tower (towers: {image: frozen}) or drop the option"
            )
        self.splits: dict[str, dict[str, Any]] = {}

    def _split(self, split: str) -> dict[str, Any]:
        if split in self.splits:
            return self.splits[split]
        data = self.data.split(split)
        if data.captions is None:
            raise DataError(f"{self.data.name} ({split}): retrieval needs captions; this split has none")
        texts = [text for _, text in data.captions]
        seen: dict[str, int] = {}
        for image, text in data.captions:
            if text in seen and seen[text] != image:
                raise DataError(
                    f"{self.data.name} ({split}): the caption {text!r} belongs to two images; "
                    "duplicate captions make relevance ambiguous: remove or disambiguate them"
                )
            seen[text] = image
        captions_of: list[list[int]] = [[] for _ in data.inputs]
        for position, (image, _) in enumerate(data.captions):
            captions_of[image].append(position)
        empty = [i for i, c in enumerate(captions_of) if not c]
        if empty:
            raise DataError(
                f"{self.data.name} ({split}): {len(empty)} image(s) have no caption, first {data.inputs[empty[0]]}"
            )
        key = fingerprint(self.data.fingerprint, split, self.backbone.preprocessing)
        tokens = tokenized(self.backbone, texts, key)
        entry = {"tokens": tokens, "image_of": [image for image, _ in data.captions], "captions_of": captions_of}
        if not self.text_only:
            images, kept = decode_all(data.inputs, fingerprint(self.data.fingerprint, split, "images"), "fail")
            entry["images"] = images
            if self.frozen is not None:
                entry["image_features"] = self._frozen_features(images, split, flipped=False)
                if self.options.get("flip_features"):
                    entry["mirrored_features"] = self._frozen_features(images, split, flipped=True)
        self.splits[split] = entry
        return entry

    def _frozen_features(self, images: list[torch.Tensor], split: str, flipped: bool) -> torch.Tensor:
        """Features of a locked image tower, computed once per weights, preprocessing and data.
        ``flipped``: of the mirrored images (``flip_features``: training draws either copy,
        evaluation takes the mean of the two)."""
        tower = self.frozen.tower
        key = feature_key(
            "tower",
            self.backbone,
            self.data,
            split,
            self.backbone.preprocessing,
            locked_tower_weights(self.backbone),
            *(["flipped"] if flipped else []),
        )
        return cached(
            "features",
            key,
            lambda: image_features(
                tower.encode_pixels, images, image_preprocessing_of(self.backbone), tower.device, flipped=flipped
            ),
        )

    def prepare(self) -> None:
        for split in ("train", self.options.get("eval_split", "test")):
            if split in self.data.splits and (split != "train" or self.trains):
                self._split(split)

    def model(self) -> nn.Module:
        return _Towers(self.backbone, self.frozen, self.text_only)

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        if not train:
            raise ZooError("retrieval evaluates whole splits: see Retrieval.evaluate_split")
        entry = self._split(split)
        if self.text_only:
            usable = [c for c in entry["captions_of"] if len(c) >= 2]
            return _Pairs(None, usable, text_pairs=True)
        images = entry.get("image_features") if self.frozen is not None else entry["images"]
        transform = (
            None if self.frozen is not None else tensor_transform(image_preprocessing_of(self.backbone), train=True)
        )
        return _Pairs(images, entry["captions_of"], transform, mirrored=entry.get("mirrored_features"))

    def collate(self, items: list[Any]) -> Any:
        """Items hold caption positions in the train split; their tokens are looked up here."""
        firsts, captions = zip(*items, strict=False)
        tokens = self._split("train")["tokens"]
        rows = torch.tensor(captions)
        text = {k: v[rows] for k, v in tokens.items()}
        if self.text_only:
            return {k: v[torch.tensor(firsts)] for k, v in tokens.items()}, text
        return torch.stack(firsts), text

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        a, b = model(*batch)
        return info_nce(gather_with_grad(a), gather_with_grad(b), self._logit_scale(model)), {}

    def _logit_scale(self, model: nn.Module) -> torch.Tensor:
        backbone = unwrap(model).backbone
        scale = backbone.learned_logit_scale()
        if scale is None:  # text backbones: a fixed temperature of 0.05
            return torch.tensor(3.0, device=backbone.device)
        return scale

    def evaluate_split(self, model: nn.Module, split: str, device: torch.device) -> dict[str, Any] | None:
        """Embeds every caption (and image) of ``split`` and ranks, chunk by chunk."""
        return self.score_split(model, split, device)[0]

    def score_split(
        self, model: nn.Module, split: str, device: torch.device
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The split's metrics, and per query (caption or image) the rank of its first relevant item."""
        entry = self._split(split)
        module = unwrap(model).backbone
        was_training = module.training
        module.eval()
        texts = text_features(module.encode_tokens, entry["tokens"], device, 128)
        metrics: dict[str, Any] = {}
        items: dict[str, torch.Tensor] = {}
        if self.text_only:
            relevant = [[c for c in entry["captions_of"][img] if c != q] for q, img in enumerate(entry["image_of"])]
            ranks = relevant_ranks(texts, texts, relevant, exclude=list(range(len(texts))))
            metrics.update({f"text->text {k}": v for k, v in summarize(ranks).items()})
            items["text->text rank"] = torch.tensor([r[0] for r in ranks])
        else:
            images = self._image_embeddings(entry, module, device)
            t2i = relevant_ranks(texts, images, [[img] for img in entry["image_of"]])
            i2t = relevant_ranks(images, texts, entry["captions_of"])
            metrics.update({f"text->image {k}": v for k, v in summarize(t2i).items()})
            metrics.update({f"image->text {k}": v for k, v in summarize(i2t).items()})
            items["text->image rank"] = torch.tensor([r[0] for r in t2i])
            items["image->text rank"] = torch.tensor([r[0] for r in i2t])
        module.train(was_training)
        metrics["definition"] = DEFINITION
        return metrics, items

    def embeddings(self, split: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Image<->text retrieval's embeddings of ``split`` by the backbone as it is: [images, D],
        [captions, D] (as ``score_split`` computes them, unnormalised) and each caption's image."""
        if self.text_only:
            raise InputError(f"{self.backbone.name}: image<->text embeddings need direction image-text")
        entry = self._split(split)
        module, device = self.backbone, self.backbone.device
        was_training = module.training
        module.eval()
        texts = text_features(module.encode_tokens, entry["tokens"], device, 128)
        images = self._image_embeddings(entry, module, device)
        module.train(was_training)
        return images, texts, list(entry["image_of"])

    def _image_embeddings(self, entry: dict[str, Any], module: Any, device: torch.device) -> torch.Tensor:
        """[images, D]: through the frozen tower's cached features (averaged with their mirror's where
        kept) and the projection, or the backbone's image encoder on the pixels."""
        if self.frozen is None:
            return image_features(module.encode_pixels, entry["images"], image_preprocessing_of(module), device)
        source = entry["image_features"]
        if "mirrored_features" in entry:
            source = (source + entry["mirrored_features"]) / 2
        with torch.inference_mode():
            chunks = [source[start : start + 256] for start in range(0, len(source), 256)]
            parts = [self.frozen.embed(chunk.to(device)).float().cpu() for chunk in chunks]
        return torch.cat(parts)

    def chance(self, split: str) -> dict[str, float]:
        """R@K of a random ranking: one image is relevant to a caption among N images; an image's own
        captions (r of M) are relevant to it, a caption's siblings (r - 1 of M - 1) in text->text."""
        entry = self._split(split)
        images, captions = len(entry["captions_of"]), len(entry["image_of"])
        counts = [len(own) for own in entry["captions_of"]]
        out = {}
        for k in (1, 5, 10):
            if self.text_only:
                out[f"text->text R@{k}"] = sum(random_recall(captions - 1, r - 1, k) * r for r in counts) / captions
            else:
                out[f"text->image R@{k}"] = random_recall(images, 1, k)
                out[f"image->text R@{k}"] = sum(random_recall(captions, r, k) for r in counts) / images
        return out

    def save(self, model: nn.Module, directory: Path) -> None:
        if self.trains:
            save_trained_backbone(unwrap(model).backbone, directory / "backbone")

    def restore(self, model: nn.Module, directory: Path) -> None:
        """Nothing to restore: the saved backbone is the whole result."""
