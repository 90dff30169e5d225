"""`zoo export --to open_clip`: an open_clip model folder as its hub format has it
(``open_clip_config.json`` with ``model_cfg`` and ``preprocess_cfg``, ``open_clip_model.safetensors``),
which ``open_clip.create_model_and_transforms("local-dir:DIR")`` loads with its tokenizer
(``open_clip.get_tokenizer("local-dir:DIR")``), or ``hf-hub:ORG/NAME`` once the folder is on the hub.

Only open_clip's own models go this way. The joined towers (a timm image tower and a transformers
text tower with zoo's projections) are no open_clip model: they go out as graphs (onnx, pt2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

import zoo

CONFIG = "open_clip_config.json"
WEIGHTS = "open_clip_model.safetensors"


def _model_cfg(backbone: Any) -> dict[str, Any]:
    """open_clip's ``model_cfg`` of the backbone: the custom config it was built from, or the named
    architecture's."""
    import open_clip

    options = backbone.build_options()
    if options.get("arch_config"):
        return dict(options["arch_config"])
    config = open_clip.get_model_config(options.get("arch") or "")
    if config is None:
        raise zoo.ZooError(f"{backbone.name}: open_clip has no config for architecture {options.get('arch')!r}")
    return config


RESIZE_MODES = {"center": "shortest", "border": "longest", "squash": "squash"}  # zoo's -> open_clip's


def _inexpressible(pre: zoo.ImagePreprocessing) -> str | None:
    """What of ``pre`` open_clip's eval transform cannot do, or None."""
    if pre.crop_pct != 1.0:
        return f"crops {pre.crop_pct:g} of each resized image ({pre.crop_mode})"
    if pre.crop_border_pixels:
        return f"trims {pre.crop_border_pixels} border pixels"
    if pre.interpolation not in ("bicubic", "bilinear"):
        return f"resizes with {pre.interpolation} interpolation"
    if pre.crop_mode == "center" and pre.size[0] != pre.size[1] and pre.interpolation != "bicubic":
        return "resizes to a non-square size bilinearly (open_clip resizes it bicubically)"
    if pre.crop_mode == "border" and len(set(_fill(pre))) > 1:
        return f"pads with colour {_fill(pre)} (open_clip pads with one value for every channel)"
    return None


def _fill(pre: zoo.ImagePreprocessing) -> list[int]:
    return list(pre.fill) if pre.fill is not None else [round(255 * value) for value in pre.mean]


def _preprocess_cfg(backbone: Any) -> dict[str, Any]:
    """zoo's image preprocessing as open_clip's ``preprocess_cfg`` (its eval transform resizes and crops or
    pads to the size: timm's crop_pct 1.0); what open_clip cannot express is refused with one line."""
    pre = backbone.image_preprocessing
    cannot = _inexpressible(pre)
    if cannot:
        raise zoo.ZooError(
            f"{backbone.name} {cannot}, which open_clip's transform cannot express: export it with --to onnx "
            "or --to pt2"
        )
    height, width = pre.size
    return {
        "size": height if height == width else [height, width],
        "mean": list(pre.mean),
        "std": list(pre.std),
        "interpolation": pre.interpolation,
        "resize_mode": RESIZE_MODES[pre.crop_mode],
        **({"fill_color": _fill(pre)[0]} if pre.crop_mode == "border" else {}),
    }


def _a(modality: str) -> str:
    return f"an {modality}" if modality[0] in "aeiou" else f"a {modality}"


def _refuse(backbone: Any, head: Any) -> None:
    from zoo_openclip.model import JoinedCLIP, OpenCLIP

    if isinstance(backbone, JoinedCLIP):
        raise zoo.ZooError(
            f"{backbone.name} joins a {backbone.image_tower.name} image tower and a {backbone.text_tower.name} "
            "text tower with zoo's own projections, which open_clip has no model for: export both towers as "
            "graphs with --to onnx (one per tower) or --to pt2"
        )
    if not isinstance(backbone, OpenCLIP):
        raise zoo.ZooError(
            f"--to open_clip writes open_clip models; {backbone.name} is {_a(backbone.modality)} backbone "
            f"({type(backbone).__name__}): export it with --to onnx or --to pt2"
        )
    if head is not None:
        raise zoo.ZooError(
            "an open_clip folder has no place for a classification head: export the run with --no-head "
            "(its two towers alone), or with --to onnx or --to pt2 to keep the head"
        )
    text_cfg = _model_cfg(backbone).get("text_cfg", {})
    if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
        raise zoo.ZooError(
            f"{backbone.name}'s text tower is a Hugging Face model, which an open_clip folder would fetch "
            "from the hub to build: export it with --to onnx or --to pt2"
        )


def write_open_clip(backbone: Any, head: Any, directory: Path) -> dict[str, Any]:
    """Write an open_clip backbone as an open_clip folder in ``directory``; returns the README lines on
    loading it and the card's pipeline (open_clip's: zero-shot image classification). Joined towers,
    other backbones and a run's head are refused with one line each."""
    from safetensors.torch import save_file

    _refuse(backbone, head)
    directory = Path(directory)
    config = {"model_cfg": _model_cfg(backbone), "preprocess_cfg": _preprocess_cfg(backbone)}
    state = {key: tensor.detach().cpu().contiguous() for key, tensor in backbone.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps(config, indent=2))
    notes = [
        '`model, _, preprocess = open_clip.create_model_and_transforms("local-dir:<this folder>")` and '
        '`tokenizer = open_clip.get_tokenizer("local-dir:<this folder>")` load it (or `hf-hub:ORG/NAME` once '
        "the folder is on the Hugging Face hub); `preprocess` is zoo's image preprocessing.",
        "zoo's embeddings are `model.encode_image(images, normalize=True)` and "
        "`model.encode_text(tokenizer(texts), normalize=True)` (L2-normalised).",
    ]
    return {"notes": notes, "card": {"pipeline_tag": "zero-shot-image-classification"}}


def _check_preprocess(model: Any, config: dict[str, Any]) -> None:
    """The preprocessing open_clip sets on the loaded model is the one the folder's config records."""
    loaded = getattr(model.visual, "preprocess_cfg", {}) or {}
    for key, want in (config.get("preprocess_cfg") or {}).items():
        got = loaded.get(key)
        if not _same(_values(key, want), _values(key, got)):
            raise zoo.ZooError(f"open_clip sets {key}={got!r} on the loaded model, {CONFIG} says {want!r}")


def _values(key: str, value: Any) -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * 2 if key == "size" and len(values) == 1 else values  # a square size is one number


def _same(want: list[Any], got: list[Any]) -> bool:
    if len(want) != len(got):
        return False
    return all(
        math.isclose(a, b, rel_tol=1e-9) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else a == b
        for a, b in zip(want, got, strict=True)
    )


def open_clip_runner(directory: Path) -> Any:
    """Load the folder with ``open_clip.create_model_and_transforms("local-dir:...")`` and its tokenizer,
    check its weights and preprocessing arrived whole, and return ``run(part, sample)``: the normalised
    image embedding of the pixels, or the normalised text embedding of the texts as open_clip's own
    tokenizer cuts them."""
    import open_clip

    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{directory}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{directory}")
    zoo.check_loaded_weights(model, directory / WEIGHTS, "open_clip's loader")
    _check_preprocess(model, config)

    def run(part: str, sample: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            if part == "text":
                return {"embedding": model.encode_text(tokenizer(list(sample.texts)), normalize=True)}
            return {"embedding": model.encode_image(sample.pixels, normalize=True)}

    return run
