"""Zero-shot classification with CLIP-style backbones: class-name prompts, several templates averaged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data import DataError, fingerprint
from zoo.data.cache import cached
from zoo.data.images import decode_all
from zoo.tasks.base import Task
from zoo.tasks.features import feature_key, image_features, image_preprocessing_of, weights_fingerprint
from zoo.tasks.metrics import classification_metrics, majority_share

if TYPE_CHECKING:
    from zoo.backbone import Backbone

# A few of CLIP's prompt templates for small natural images (the CIFAR set).
TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a pixelated photo of a {}.",
    "a bright photo of a {}.",
    "a good photo of a {}.",
)


class ZeroShotClassification(Task):
    """Predicts the class whose averaged prompt embedding is closest to the image embedding."""

    modes: tuple[str, ...] = ("zero-shot",)
    option_help: ClassVar[dict[str, str]] = {
        "templates": "prompt templates, {} standing for the class name (default: eight of CLIP's)",
        "on_bad_image": "skip (default: skip and count) or fail on an unreadable image",
    }

    def __init__(self, backbone, dataset, mode="zero-shot", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        if dataset.kind != "image-classification":
            raise DataError(
                f"zero-shot classification needs image-classification data; {dataset.name!r} is {dataset.kind}"
            )
        self.templates = tuple(self.options.get("templates", TEMPLATES))

    def model(self) -> nn.Module:
        return self.backbone

    def class_embeddings(self, model: Backbone) -> torch.Tensor:
        """[classes, D]: each class's prompts embedded, normalised, averaged and normalised again."""
        rows = []
        for name in self.data.label_names:
            prompts = [template.format(name.replace("_", " ")) for template in self.templates]
            rows.append(F.normalize(F.normalize(model.encode_text(prompts).float(), dim=-1).mean(0), dim=-1))
        return torch.stack(rows)

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """[len(prompts), D] float32 text embeddings of ``prompts``, encoded in one call (as they come)."""
        return self.backbone.encode_text(list(prompts)).float().cpu()

    def image_embeddings(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, D] image embeddings of ``split`` (unreadable images skipped per ``on_bad_image``) and their
        labels; cached per exact weights, preprocessing and data, so a second call costs no encoding."""
        data = self.data.split(split)
        on_bad = self.options.get("on_bad_image", "skip")
        images, kept = decode_all(data.inputs, fingerprint(self.data.fingerprint, split), on_bad)
        weights = weights_fingerprint(self.backbone)
        key = feature_key(
            "zero-shot images", self.backbone, self.data, split, self.backbone.preprocessing, weights, on_bad
        )
        preprocessing = image_preprocessing_of(self.backbone)
        features = cached(
            "features",
            key,
            lambda: image_features(self.backbone.encode_pixels, images, preprocessing, self.backbone.device),
        )
        return features, torch.tensor(data.labels)[kept]

    def evaluate_split(self, model: nn.Module, split: str, device: torch.device) -> dict[str, Any]:
        return self.score_split(model, split, device)[0]

    def score_split(
        self, model: nn.Module, split: str, device: torch.device
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Accuracy and macro-F1 of the split, and each image's predicted and true class."""
        data = self.data.split(split)
        images, kept = decode_all(
            data.inputs, fingerprint(self.data.fingerprint, split), self.options.get("on_bad_image", "skip")
        )
        labels = torch.tensor(data.labels)[kept]
        classes = self.class_embeddings(self.backbone).cpu()
        model.eval()
        features = image_features(self.backbone.encode_pixels, images, image_preprocessing_of(self.backbone), device)
        preds = (features @ classes.T).argmax(dim=1)
        return classification_metrics(preds, labels, self.data.num_classes), {"preds": preds, "targets": labels}

    def chance(self, split: str) -> dict[str, float]:
        return {"accuracy": majority_share(self.data.split(split).labels)}

    def save(self, model: nn.Module, directory) -> None:
        """Nothing is trained, so nothing is saved."""

    def restore(self, model: nn.Module, directory) -> None:
        """Nothing to restore."""
