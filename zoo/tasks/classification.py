"""Text and image classification: a linear head on the backbone embedding.

Modes:
- ``finetune``: backbone and head train together on tokenised text / augmented images;
- ``linear-probe``: the backbone is frozen, its features are computed once and
  cached (keyed by backbone weights, preprocessing and data), and only the head
  trains, on standardised features, so a probe costs one forward pass over the data.

`TextClassification` and `ImageClassification` hold what differs: how a split's inputs
are read and batched, and how they are embedded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data import DataError, fingerprint
from zoo.data.cache import cached
from zoo.data.images import AUGMENTATIONS, decode_all, tensor_transform
from zoo.tasks.base import Task, save_trained_backbone
from zoo.tasks.batches import Rows, stack_rows, tokenized
from zoo.tasks.features import (
    feature_key,
    image_features,
    image_preprocessing_of,
    text_features,
    weights_fingerprint,
)
from zoo.tasks.metrics import classification_metrics, majority_share
from zoo.tasks.pretrained_head import MODE as PRETRAINED_HEAD
from zoo.tasks.pretrained_head import describe_map, head_chance, head_mapping, head_metrics, head_predictions

if TYPE_CHECKING:
    from zoo.backbone import Backbone
    from zoo.preprocessing import ImagePreprocessing


class Classifier(nn.Module):
    """Backbone + linear head; ``encode`` names the backbone's tensor encoder (``encode_tokens`` or
    ``encode_pixels``)."""

    def __init__(self, backbone: Backbone, num_classes: int, encode: str, dropout: float = 0.1):
        super().__init__()
        self.backbone, self.encode = backbone, encode
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.embed_dim, num_classes)

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.head(self.dropout(getattr(self.backbone, self.encode)(inputs)))


class ProbeHead(nn.Module):
    """A linear head on standardised frozen features (mean and std from the training split)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.head = nn.Linear(mean.numel(), num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.std)


class _Items(torch.utils.data.Dataset):
    """(input, label) pairs where inputs are looked up and transformed lazily."""

    def __init__(self, inputs: Any, labels: torch.Tensor, transform=None):
        self.inputs, self.labels, self.transform = inputs, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        item = self.inputs[index]
        return (self.transform(item) if self.transform else item), self.labels[index]


class Classification(Task):
    """What text and image classification share: the head, the two modes, metrics and saving."""

    modes: tuple[str, ...] = ("finetune", "linear-probe")
    data_kind = ""  # the data sets it reads: "text-classification" or "image-classification"
    encoder = ""  # the backbone's tensor encoder: "encode_tokens" or "encode_pixels"
    option_help: ClassVar[dict[str, str]] = {
        "dropout": "dropout before the head (default 0.1)",
        "label_smoothing": "label smoothing of the cross-entropy (default 0)",
        "feature_batch_size": "batch size of the linear probe's frozen-feature pass (default 64)",
    }

    def __init__(self, backbone, dataset, mode="finetune", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        if dataset.kind != self.data_kind:
            raise DataError(f"task {self.name!r} needs a {self.data_kind} data set; {dataset.name!r} is {dataset.kind}")
        self.splits: dict[str, tuple[Any, torch.Tensor]] = {}

    # -- what each input kind provides ------------------------------------------------------
    def _inputs(self, split: str) -> tuple[Any, torch.Tensor]:
        """The split's inputs, ready to batch, and their labels."""
        raise NotImplementedError

    def _encode_all(self, inputs: Any, split: str) -> torch.Tensor:
        """Frozen features of every input of ``split``, cached."""
        raise NotImplementedError

    def _features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = self._inputs(split)
        return self._encode_all(inputs, split), labels

    def _feature_key(self, split: str, preprocessing: Mapping[str, Any], *variant: Any) -> str:
        """The core's key of the frozen features of ``split`` (`zoo.tasks.features.feature_key`)."""
        weights = weights_fingerprint(self.backbone)
        return feature_key("features", self.backbone, self.data, split, preprocessing, weights, *variant)

    # -- preparation ------------------------------------------------------------------------
    def prepare(self) -> None:
        needed = [s for s in ("train", self.options.get("eval_split", "validation")) if s in self.data.splits]
        for split in needed:
            self.splits[split] = self._features(split) if self.mode == "linear-probe" else self._inputs(split)
            if split == "train" and len(set(self.splits[split][1].tolist())) < 2:
                raise DataError(f"{self.data.name}: the train split has only one class")

    def frozen_features(self, split: str, indices: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen backbone's features of the examples of ``split`` (those at ``indices``, in that
        order, or all) and their labels, cached: what a linear probe trains on, and what an evaluation
        protocol scores (MTEB's draws a few examples per label: only those are embedded)."""
        data = self.data.split(split)  # a clear error for a missing or empty split
        if indices is not None:
            split = f"{split}[{fingerprint(indices)}]"  # a split of its own, so caches key on the subset
            self.data.splits.setdefault(split, data.subset(indices))
        features, labels = self._features(split)
        if indices is not None and len(labels) != len(indices):
            raise DataError(f"{self.data.name}: {len(indices) - len(labels)} of the chosen examples could not be read")
        return features, labels

    def _split(self, split: str) -> tuple[Any, torch.Tensor]:
        if split not in self.splits:
            self.data.split(split)  # a clear error for a missing or empty split
            self.splits[split] = self._features(split) if self.mode == "linear-probe" else self._inputs(split)
        return self.splits[split]

    # -- what the engine calls ---------------------------------------------------------
    def model(self) -> nn.Module:
        if self.mode == "linear-probe":
            features = self._split("train")[0]
            return ProbeHead(features.mean(0), features.std(0).clamp(min=1e-6), self.data.num_classes)
        return Classifier(self.backbone, self.data.num_classes, self.encoder, self.options.get("dropout", 0.1))

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        inputs, labels = self._split(split)
        return torch.utils.data.TensorDataset(inputs, labels)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, labels = batch
        logits = self.logits(model, inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=float(self.options.get("label_smoothing", 0)))
        return loss, {"preds": logits.argmax(dim=-1), "targets": labels}

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        return model(inputs)

    def metrics(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return classification_metrics(outputs["preds"], outputs["targets"], self.data.num_classes)

    def chance(self, split: str) -> dict[str, float]:
        return {"accuracy": majority_share(self.data.split(split).labels)}

    def save(self, model: nn.Module, directory: Path) -> None:
        """The backbone (with the family's ``save``) and the head with its class names."""
        from safetensors.torch import save_file

        module = unwrap(model)
        if self.mode == "finetune":
            save_trained_backbone(module.backbone, directory / "backbone")
        head = {
            k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if not k.startswith("backbone.")
        }
        save_file(head, str(directory / "head.safetensors"))
        (directory / "head.json").write_text(
            json.dumps(
                {
                    "task": self.name,
                    "mode": self.mode,
                    "label_names": self.data.label_names,
                    "backbone": self.backbone.name if self.mode == "linear-probe" else "backbone",
                },
                indent=2,
            )
        )

    def restore(self, model: nn.Module, directory: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(directory / "head.safetensors"))
        missing = [k for k in model.state_dict() if not k.startswith("backbone.") and k not in state]
        if missing:
            raise DataError(f"{directory}: head.safetensors lacks {missing[0]!r}; it belongs to another run")
        model.load_state_dict(state, strict=False)


def task_image_preprocessing(backbone: Backbone, options: Mapping[str, Any]) -> ImagePreprocessing:
    """The backbone's image preprocessing, at the task options' ``image_size`` and ``crop_pct`` where
    set (another resolution or centre crop than the weights' own, say no crop for upsampled 32-px
    photos): what training, evaluation and prediction of an image-classification run use."""
    preprocessing = image_preprocessing_of(backbone)
    if options.get("image_size") or options.get("crop_pct"):
        size = int(options.get("image_size") or preprocessing.size[0])
        crop = options.get("crop_pct")
        preprocessing = preprocessing.resized(size, None if crop is None else float(crop))
    return preprocessing


def unwrap(model: nn.Module) -> Any:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(getattr(model, "module", None), nn.Module) else model


class TextClassification(Classification):
    """Text classification (SST-2, AG News, TREC, SMS Spam, or a TSV/CSV/JSONL file)."""

    data_kind = "text-classification"
    encoder = "encode_tokens"

    def _inputs(self, split: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        data = self.data.split(split)
        key = fingerprint(self.data.fingerprint, split, self.backbone.preprocessing)
        return tokenized(self.backbone, data.inputs, key), torch.tensor(data.labels)

    def _encode_all(self, inputs: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        batch_size = int(self.options.get("feature_batch_size", 64))
        return cached(
            "features",
            self._feature_key(split, self.backbone.preprocessing),
            lambda: text_features(
                self.backbone.encode_tokens, inputs, self.backbone.device, batch_size, f"features ({split})"
            ),
        )

    def _features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        self.backbone.eval()
        return super()._features(split)

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        inputs, labels = self._split(split)
        if self.mode == "linear-probe":
            return super().examples(split, train)
        return _Items(Rows(inputs), labels)

    def lengths(self, split: str) -> torch.Tensor | None:
        return self._split(split)[0]["attention_mask"].sum(dim=1) if self.mode == "finetune" else None

    def collate(self, items: list[Any]) -> Any:
        if self.mode != "finetune":
            return super().collate(items)
        rows, labels = zip(*items, strict=False)
        return stack_rows(list(rows)), torch.stack(labels)


class ImageClassification(Classification):
    """Image classification (CIFAR-10, digits, or a folder of class folders)."""

    data_kind = "image-classification"
    encoder = "encode_pixels"
    modes = ("finetune", "linear-probe", PRETRAINED_HEAD)
    untrained_modes = ("zero-shot", PRETRAINED_HEAD)
    option_help: ClassVar[dict[str, str]] = {
        **Classification.option_help,
        "on_bad_image": "skip (default: skip and count) or fail on an unreadable image",
        "image_size": "train and evaluate at this many pixels square instead of the weights' input size",
        "crop_pct": "share of the image the evaluation centre crop keeps (1.0: the whole image)",
        "flip_features": "images are also seen mirrored; evaluation averages both (a probe's head also "
        "trains on the mirrored features)",
        "augment": "training augmentation of a fine-tune: light (default: random crop and mirror) or trivial "
        "(adds TrivialAugmentWide)",
        "class_map": "pretrained-head: {class folder: [WordNet id or class name, ...]}, the classifier classes "
        "that count as right for it (default: the folder's own name)",
    }

    def __init__(self, backbone, dataset, mode="finetune", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        self.augment = self.options.get("augment", "light")
        if self.augment not in AUGMENTATIONS:  # checked here, before any data is read
            raise DataError(f"augment must be one of {', '.join(AUGMENTATIONS)}; got {self.augment!r}")
        self.image_preprocessing = task_image_preprocessing(backbone, self.options)
        self.head_classes, self.head_map = head_mapping(backbone, dataset, mode, self.options)  # before any decoding

    # -- mode pretrained-head: the backbone's own classifier, nothing trained ---------------------
    def prepare(self) -> None:
        if self.mode != PRETRAINED_HEAD:
            super().prepare()

    def model(self) -> nn.Module:
        return self.backbone if self.mode == PRETRAINED_HEAD else super().model()

    def evaluate_split(self, model: nn.Module, split: str, device: torch.device) -> dict[str, Any] | None:
        scored = self.score_split(model, split, device)
        return None if scored is None else scored[0]

    def score_split(
        self, model: nn.Module, split: str, device: torch.device
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """Pretrained-head metrics of the split, and each image's top-1 as a data class (`head_predictions`)."""
        if self.mode != PRETRAINED_HEAD:
            return None
        images, labels = self._inputs(split)
        model.eval()
        batch_size = int(self.options.get("feature_batch_size", 64))
        logits = image_features(
            self.backbone.classify_pixels, images, self.image_preprocessing, device, batch_size, desc=f"head ({split})"
        )
        preds = head_predictions(logits, labels, self.head_map)
        return head_metrics(logits, labels, self.head_map), {"preds": preds, "targets": labels}

    def chance(self, split: str) -> dict[str, float]:
        if self.mode != PRETRAINED_HEAD:
            return super().chance(split)
        return head_chance(self.data.split(split).labels or [], self.head_map, len(self.head_classes or ()))

    def save(self, model: nn.Module, directory: Path) -> None:
        if self.mode != PRETRAINED_HEAD:  # else nothing was trained, so nothing is saved
            super().save(model, directory)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if self.head_classes is not None:
            described["pretrained_head"] = describe_map(self.data.label_names, self.head_classes, self.head_map)
        return described

    def _inputs(self, split: str) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Decoded images (uint8 tensors, cached) and their labels."""
        data = self.data.split(split)
        images, kept = decode_all(
            data.inputs, fingerprint(self.data.fingerprint, split), self.options.get("on_bad_image", "skip")
        )
        return images, torch.tensor(data.labels)[kept]

    def _features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features of ``split``. With ``flip_features``, images are also encoded mirrored:
        training gets both copies, evaluation the mean of the two (test-time augmentation; in
        fine-tuning, :meth:`logits` averages the logits of each image and its mirror instead)."""
        self.backbone.eval()
        inputs, labels = self._inputs(split)
        features = self._encode_all(inputs, split)
        if not self.options.get("flip_features"):
            return features, labels
        mirrored = self._encode_all(inputs, split, flipped=True)
        if split == "train":
            return torch.cat([features, mirrored]), torch.cat([labels, labels])
        return (features + mirrored) / 2, labels

    def _encode_all(self, inputs: list[torch.Tensor], split: str, flipped: bool = False) -> torch.Tensor:
        preprocessing = {**self.backbone.preprocessing, "image": self.image_preprocessing.to_dict()}
        key = self._feature_key(split, preprocessing, *(["flipped"] if flipped else []))
        batch_size = int(self.options.get("feature_batch_size", 64))
        return cached(
            "features",
            key,
            lambda: image_features(
                self.backbone.encode_pixels,
                inputs,
                self.image_preprocessing,
                self.backbone.device,
                batch_size,
                flipped,
                f"features ({split})",
            ),
        )

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        if self.mode == "linear-probe":
            return super().examples(split, train)
        inputs, labels = self._split(split)
        return _Items(inputs, labels, tensor_transform(self.image_preprocessing, train=train, augment=self.augment))

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        logits = model(inputs)
        # a probe's inputs are features, already averaged with the mirror's (`_features`); pixels are flipped here
        if not model.training and self.options.get("flip_features") and self.mode == "finetune":
            logits = (logits + model(inputs.flip(-1))) / 2
        return logits
