"""`zoo export --to timm`: a timm model folder as ``timm.models.save_for_hf`` writes it (``config.json``
with the architecture, ``num_classes``, ``label_names`` and the ``pretrained_cfg`` holding zoo's
preprocessing; ``model.safetensors``), which ``timm.create_model("local-dir:DIR", pretrained=True)``
loads, or ``hf-hub:ORG/NAME`` once the folder is on the hub.

A classification run's head becomes the model's own classifier (``num_classes`` = the run's classes),
so ``model(x)`` gives the run's logits; zoo's embedding is the pooled features before it,
``model.forward_head(model.forward_features(x), pre_logits=True)``.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import torch

import zoo

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
# timm's data-config fields and the zoo.ImagePreprocessing each is written from
DATA_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def _a(modality: str) -> str:
    return f"an {modality}" if modality[0] in "aeiou" else f"a {modality}"


def _timm_backbone(backbone: Any) -> Any:
    from zoo_timm.model import TimmBackbone, TorchvisionBackbone

    if isinstance(backbone, TimmBackbone):
        return backbone
    if isinstance(backbone, TorchvisionBackbone):
        what = f"a torchvision {backbone.arch}, which timm cannot build"
    else:
        what = f"{_a(backbone.modality)} backbone ({type(backbone).__name__}), not a timm model"
    raise zoo.ZooError(f"--to timm writes timm models; {backbone.name} is {what}: export it with --to onnx or --to pt2")


def _with_head(original: torch.nn.Module, head: Any, arch: str) -> torch.nn.Module:
    """A copy of timm model ``original`` whose classifier is ``head``: ``num_classes`` = the head's classes."""
    model: Any = copy.deepcopy(original).cpu()  # a timm model: its own API beyond nn.Module
    model.reset_classifier(head.num_classes)
    classifier = model.get_classifier()
    weight, bias = getattr(classifier, "weight", None), getattr(classifier, "bias", None)
    if (
        not isinstance(weight, torch.Tensor)
        or not isinstance(bias, torch.Tensor)
        or weight.numel() != head.weight.numel()
        or bias.shape != head.bias.shape
    ):
        raise zoo.ZooError(
            f"timm's {arch} has no single linear classifier to hold the run's head ({type(classifier).__name__}): "
            "export the run with --to onnx or --to pt2, or the backbone alone with --no-head"
        )
    with torch.no_grad():
        weight.copy_(head.weight.reshape(weight.shape))  # a 1x1 conv classifier takes [C, D, 1, 1]
        bias.copy_(head.bias)
    return model


def data_config(preprocessing: zoo.ImagePreprocessing) -> dict[str, Any]:
    """zoo's image preprocessing as timm's data config (``input_size`` = [3, H, W], mean, std, ...); what
    a timm folder cannot record (trimmed border pixels, a border padded in another colour than the
    mean's) is refused with one line."""
    if preprocessing.crop_border_pixels:
        raise zoo.ZooError(
            f"the preprocessing trims {preprocessing.crop_border_pixels} border pixels, which a timm folder's "
            "pretrained_cfg cannot record: export it with --to onnx or --to pt2"
        )
    mean_colour = tuple(round(255 * value) for value in preprocessing.mean)
    if preprocessing.fill is not None and preprocessing.fill != mean_colour:
        raise zoo.ZooError(
            f"the preprocessing pads with colour {list(preprocessing.fill)}; timm's border mode pads with the "
            f"mean's {list(mean_colour)}: export it with --to onnx or --to pt2"
        )
    return {
        "input_size": (3, *preprocessing.size),
        "mean": tuple(preprocessing.mean),
        "std": tuple(preprocessing.std),
        "interpolation": preprocessing.interpolation,
        "crop_pct": preprocessing.crop_pct,
        "crop_mode": preprocessing.crop_mode,
    }


def write_timm(backbone: Any, head: Any, directory: Path) -> dict[str, Any]:
    """Write a timm backbone (with a classification run's head as its classifier) as a timm folder in
    ``directory``; returns the README lines on loading it and the card's pipeline (classification when
    the model has a classifier, which ``model(x)`` applies). Other backbones are refused with one line."""
    from timm.models import save_for_hf

    backbone = _timm_backbone(backbone)
    arch = backbone.arch or backbone.model.pretrained_cfg.get("architecture", "?")
    model = backbone.model if head is None else _with_head(backbone.model, head, arch)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if head is not None:
        label_names: list[str] | None = list(head.label_names)
    elif backbone.class_names and len(backbone.class_names) == num_classes:
        label_names = list(backbone.class_names)
    else:
        label_names = None
    save_for_hf(
        model,
        str(directory),
        model_config={"label_names": label_names} if label_names else None,
        safe_serialization=True,
        data_config=data_config(backbone.image_preprocessing),
    )
    written = json.loads((Path(directory) / CONFIG).read_text())
    architecture = written["architecture"]
    notes = [
        f'`model = timm.create_model("local-dir:<this folder>", pretrained=True)` builds timm\'s {architecture} with '
        "these weights (or `hf-hub:ORG/NAME` once the folder is on the Hugging Face hub); "
        "`timm.data.create_transform(**timm.data.resolve_data_config(model=model))` is zoo's preprocessing "
        "(config.json `pretrained_cfg`).",
        "zoo's embedding is `model.forward_head(model.forward_features(x), pre_logits=True)`.",
    ]
    if head is not None:
        replaced = int(getattr(backbone.model, "num_classes", 0) or 0)
        notes.append(
            f"`model(x)` gives the run's {num_classes} class logits (its head is timm's classifier; names in "
            "config.json `label_names`, `model.pretrained_cfg['label_names']`)"
            + (f"; the backbone's own {replaced}-class classifier is left out." if replaced else ".")
        )
    elif num_classes:
        recorded = written.get("label_names") or written["pretrained_cfg"].get("label_names")
        named = "names in `model.pretrained_cfg['label_names']`" if recorded else "no class names recorded"
        notes.append(f"`model(x)` gives the backbone's own {num_classes}-class logits ({named}).")
    else:
        notes.append("The model has no classifier: `model(x)` gives the pooled features.")
    pipeline = "image-classification" if num_classes else "image-feature-extraction"
    return {"notes": notes, "card": {"pipeline_tag": pipeline}}


def _check_data_config(model: torch.nn.Module, config: dict[str, Any]) -> None:
    """The data config timm resolves for the loaded model is the one config.json records."""
    from timm.data import resolve_data_config

    written = config.get("pretrained_cfg") or {}
    resolved = resolve_data_config(model=model)
    for key in DATA_KEYS:
        want, got = written.get(key), resolved.get(key)
        if want is None or not _same(_values(want), _values(got)):
            raise zoo.ZooError(f"timm resolves {key}={got!r} for the loaded model, config.json says {want!r}")


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(want: list[Any], got: list[Any]) -> bool:
    if len(want) != len(got):
        return False
    return all(
        math.isclose(a, b, rel_tol=1e-9) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else a == b
        for a, b in zip(want, got, strict=True)
    )


def timm_runner(directory: Path) -> Any:
    """Load the folder with ``timm.create_model("local-dir:...", pretrained=True)``, check its weights
    and data config arrived whole, and return ``run(part, sample)``: the pre-logits embedding and,
    where the model has a classifier, ``model(x)`` as logits."""
    import timm

    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    model: Any = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
    zoo.check_loaded_weights(model, directory / WEIGHTS, "timm's loader")
    _check_data_config(model, config)
    if config.get("label_names") is not None and list(model.pretrained_cfg.get("label_names") or []) != list(
        config["label_names"]
    ):
        raise zoo.ZooError("timm's pretrained_cfg does not carry config.json's label_names")

    def run(part: str, sample: Any) -> dict[str, torch.Tensor]:
        if part != "image":
            raise zoo.ZooError(f"a timm model has no {part} tower")
        pixels = sample.pixels
        with torch.no_grad():
            out = {"embedding": model.forward_head(model.forward_features(pixels), pre_logits=True)}
            if model.num_classes:
                out["logits"] = model(pixels)
        return out

    return run
