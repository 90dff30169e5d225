"""Text and image classification: a linear head on the backbone embedding.

Modes:
- ``finetune``: backbone and head train together on tokenised text / augmented images;
- ``linear-probe``: the backbone is frozen, its features are computed once and
  cached (keyed by backbone weights, preprocessing and data), and only the head
  trains, on standardised features, so a probe costs one forward pass over the data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data import DataError, fingerprint
from zoo.data.cache import cached
from zoo.data.images import AUGMENTATIONS, decode_all, image_settings, tensor_transform
from zoo.tasks.base import Task, majority_share, to_device, tokenized
from zoo.tasks.metrics import classification_metrics


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of every parameter and buffer: features are cached per exact weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class Classifier(nn.Module):
    """Backbone + linear head; ``encode`` is the backbone's ``encode_text`` or ``encode_image``."""

    def __init__(self, backbone: nn.Module, num_classes: int, encode: str, dropout: float = 0.1):
        super().__init__()
        self.backbone, self.encode = backbone, encode
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.embed_dim, num_classes)

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.head(self.dropout(getattr(self.backbone, self.encode)(inputs)))


class ProbeHead(nn.Module):
    """A linear head on standardised frozen features (mean and std from the training split)."""

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
    """Shared by text and image classification; subclasses fix the input kind."""

    modes = ("finetune", "linear-probe")
    kind = ""  # "text" or "image"
    option_help: ClassVar[dict[str, str]] = {
        "dropout": "dropout before the head (default 0.1)",
        "label_smoothing": "label smoothing of the cross-entropy (default 0)",
        "on_bad_image": "skip (default: skip and count) or fail on an unreadable image",
        "image_size": "train and evaluate at this many pixels square instead of the weights' input size",
        "crop_pct": "share of the image the evaluation centre crop keeps (1.0: the whole image)",
        "flip_features": "images are also seen mirrored; evaluation averages both (a probe's head also "
                         "trains on the mirrored features)",
        "augment": "training augmentation of a fine-tune: light (default: random crop and mirror) or trivial "
                   "(adds TrivialAugmentWide)",
        "feature_batch_size": "batch size of the linear probe's frozen-feature pass (default 64)",
    }

    def __init__(self, backbone, dataset, mode="finetune", options=None):
        super().__init__(backbone, dataset, mode, options)
        if dataset.kind != f"{self.kind}-classification":
            raise DataError(f"task {self.name!r} needs a {self.kind}-classification data set; "
                            f"{dataset.name!r} is {dataset.kind}")
        self.encode = f"encode_{self.kind}"
        self.splits: dict[str, tuple[Any, torch.Tensor]] = {}
        self.image_preprocessing = dict(backbone.preprocessing)
        self.augment = self.options.get("augment", "light")
        if self.augment not in AUGMENTATIONS:  # checked here, before any data is read
            raise DataError(f"augment must be one of {', '.join(AUGMENTATIONS)}; got {self.augment!r}")
        if self.kind == "image" and (self.options.get("image_size") or self.options.get("crop_pct")):
            # another resolution or centre crop than the weights' own (say, no crop for upsampled 32-px photos)
            settings = image_settings(backbone.preprocessing)
            size = int(self.options.get("image_size") or settings["size"][0])
            self.image_preprocessing = {**settings, "input_size": [3, size, size],
                                        "crop_pct": float(self.options.get("crop_pct") or settings["crop_pct"])}

    # -- preparation -------------------------------------------------------------------
    def _inputs(self, split: str) -> tuple[Any, torch.Tensor]:
        """Tokenised text (dict of [N, L] tensors) or decoded images (list of uint8 tensors), and labels."""
        data = self.data.split(split)
        labels = torch.tensor(data.labels)
        key = fingerprint(self.data.fingerprint, split, self.backbone.preprocessing)
        if self.kind == "text":
            return tokenized(self.backbone, data.inputs, key), labels
        images, kept = decode_all(data.inputs, fingerprint(self.data.fingerprint, split),
                                  self.options.get("on_bad_image", "skip"))
        return images, labels[kept]

    def _features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features of ``split`` (cached). With ``flip_features``, images are also encoded
        mirrored: training gets both copies, evaluation the mean of the two (test-time augmentation;
        in fine-tuning, :meth:`step` averages the logits of each image and its mirror instead)."""
        inputs, labels = self._inputs(split)
        features = self._encode_all(inputs, labels, split, flipped=False)
        if self.kind != "image" or not self.options.get("flip_features"):
            return features, labels
        mirrored = self._encode_all(inputs, labels, split, flipped=True)
        if split == "train":
            return torch.cat([features, mirrored]), torch.cat([labels, labels])
        return (features + mirrored) / 2, labels

    def _encode_all(self, inputs: Any, labels: torch.Tensor, split: str, flipped: bool) -> torch.Tensor:
        key = fingerprint("features", self.backbone.name, weights_fingerprint(self.backbone),
                          self.backbone.preprocessing, self.image_preprocessing, self.data.fingerprint, split,
                          *(["flipped"] if flipped else []))
        batch_size = int(self.options.get("feature_batch_size", 64))

        def compute() -> torch.Tensor:
            from tqdm.auto import tqdm

            self.backbone.eval()
            device = next(self.backbone.parameters()).device
            transform = tensor_transform(self.image_preprocessing, train=False) if self.kind == "image" else None
            # texts go in order of length, so a batch pads to similar lengths (about 2x fewer tokens on SST-2)
            order = (torch.argsort(inputs["attention_mask"].sum(1)) if "attention_mask" in inputs
                     else torch.arange(len(labels)))
            out = []
            with torch.inference_mode():
                for start in tqdm(range(0, len(labels), batch_size), desc=f"features ({split})", leave=False):
                    rows = order[start:start + batch_size]
                    if self.kind == "text":
                        batch = trim({k: v[rows] for k, v in inputs.items()})
                    else:
                        batch = torch.stack([transform(inputs[i]) for i in rows.tolist()])
                        batch = batch.flip(-1) if flipped else batch
                    out.append(getattr(self.backbone, self.encode)(to_device(batch, device)).float().cpu())
            features = torch.empty(len(labels), out[0].shape[1])
            features[order] = torch.cat(out)
            return features

        return cached("features", key, compute)

    def prepare(self) -> None:
        needed = [s for s in ("train", self.options.get("eval_split", "validation")) if s in self.data.splits]
        for split in needed:
            self.splits[split] = self._features(split) if self.mode == "linear-probe" else self._inputs(split)
            if split == "train" and len(set(self.splits[split][1].tolist())) < 2:
                raise DataError(f"{self.data.name}: the train split has only one class")

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
        return Classifier(self.backbone, self.data.num_classes, self.encode, self.options.get("dropout", 0.1))

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        inputs, labels = self._split(split)
        if self.mode == "linear-probe":
            return torch.utils.data.TensorDataset(inputs, labels)
        if self.kind == "text":
            return _Items(_Rows(inputs), labels)
        return _Items(inputs, labels, tensor_transform(self.image_preprocessing, train=train, augment=self.augment))

    def lengths(self, split: str) -> torch.Tensor | None:
        if self.mode != "finetune" or self.kind != "text":
            return None
        return self._split(split)[0]["attention_mask"].sum(dim=1)

    def collate(self, items: list[Any]) -> Any:
        if self.mode == "finetune" and self.kind == "text":
            rows, labels = zip(*items)
            batch = trim({k: torch.stack([row[k] for row in rows]) for k in rows[0]})
            return batch, torch.stack(labels)
        return super().collate(items)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, labels = batch
        logits = model(inputs)
        if not model.training and self.kind == "image" and self.options.get("flip_features"):
            logits = (logits + model(inputs.flip(-1))) / 2
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=float(self.options.get("label_smoothing", 0)))
        return loss, {"preds": logits.argmax(dim=-1), "targets": labels}

    def metrics(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return classification_metrics(outputs["preds"], outputs["targets"], self.data.num_classes)

    def chance(self, split: str) -> dict[str, float]:
        return {"accuracy": majority_share(self.data.split(split).labels)}

    def save(self, model: nn.Module, directory: Path) -> None:
        """The backbone (with the family's ``save``) and the head with its class names."""
        from safetensors.torch import save_file

        module = getattr(model, "module", model)
        if self.mode == "finetune":
            module.backbone.save(directory / "backbone")
        head = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if not k.startswith("backbone.")}
        save_file(head, str(directory / "head.safetensors"))
        (directory / "head.json").write_text(json.dumps({
            "task": self.name, "mode": self.mode, "label_names": self.data.label_names,
            "backbone": self.backbone.name if self.mode == "linear-probe" else "backbone",
        }, indent=2))


    def restore(self, model: nn.Module, directory: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(directory / "head.safetensors"))
        missing = [k for k in model.state_dict() if not k.startswith("backbone.") and k not in state]
        if missing:
            raise DataError(f"{directory}: head.safetensors lacks {missing[0]!r}; it belongs to another run")
        model.load_state_dict(state, strict=False)


class _Rows:
    """Row ``i`` of a dict of [N, L] tensors, as a dict of [L] tensors."""

    def __init__(self, columns: Mapping[str, torch.Tensor]):
        self.columns = columns

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.columns.items()}


def trim(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns no row of the batch uses (on the right, or on the left for tokenizers
    that pad there); per-example values (a label per row) pass as they are."""
    if "attention_mask" not in batch:
        return dict(batch)
    used = batch["attention_mask"].any(dim=0).nonzero()
    if not len(used):
        return dict(batch)
    first, last = int(used[0]), int(used[-1]) + 1
    return {k: v[:, first:last] if v.ndim == 2 else v for k, v in batch.items()}


class TextClassification(Classification):
    """Text classification (SST-2, AG News, TREC, SMS Spam, or a TSV/CSV/JSONL file)."""

    kind = "text"


class ImageClassification(Classification):
    """Image classification (CIFAR-10, digits, or a folder of class folders)."""

    kind = "image"
