"""PyTorch Hub backbones: ``torch.hub.load`` of an entry point, its classifier set aside.

The entry point's module becomes a vision backbone whose embedding is the features before its
classifier (``fc``, ``classifier``, ``head`` or ``heads``, as torchvision names them), flattened.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo import OptionError, ZooError, reachable
from zoo_torchhub.claims import HUBCONF, entry_points

HEADS = ("fc", "classifier", "head", "heads")
GITHUB = "https://github.com"
# ImageNet's statistics at 224 px, what most hub vision models were trained with
IMAGENET = zoo.ImagePreprocessing(
    size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.875
)


class HubBackbone(zoo.Backbone):
    """A hub entry point's model as a vision backbone; rebuilt from its repository and entry point."""

    image_preprocessing: zoo.ImagePreprocessing

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: torch.nn.Module,
        preprocessing: zoo.ImagePreprocessing | Mapping[str, Any],
        head: torch.nn.Module | None,
        source: dict[str, Any],
    ) -> None:
        super().__init__(spec, weights)
        self.model, self.head = model, head  # the entry's own classifier, kept apart
        self.source = source  # repo_dir or model_id, entry, entry_options: what rebuilds it
        self.image_preprocessing = zoo.ImagePreprocessing.coerce(preprocessing)
        with torch.no_grad():  # the width of its features, read off one forward pass
            self._width = int(model.eval()(torch.zeros(1, 3, *self.image_preprocessing.size)).flatten(1).shape[1])

    @property
    def embed_dim(self) -> int:
        return self._width

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels).flatten(1)

    def blocks(self, tower: str | None = None) -> list[torch.nn.Module]:
        """The hub model's longest run of same-class blocks (its own API is unknown)."""
        return self.repeated_blocks(self.model) if tower in (None, "image") else []

    def build_options(self) -> dict[str, Any]:
        return {**self.source, "preprocessing": self.image_preprocessing.to_dict()}


def _require_trust(where: str, trust_repo: bool) -> None:
    if trust_repo is not True:
        raise OptionError(
            f"{where} is Python code that zoo would run to build the model; zoo runs it only when "
            "you pass trust_repo=True (zoo.load(..., trust_repo=True), or model_options: "
            "{trust_repo: true}), after reading it"
        )


def _load_module(
    repo_dir: str | None, model_id: str | None, entry: str | None, entry_options: Mapping[str, Any], trust_repo: bool
) -> tuple[torch.nn.Module, dict[str, Any]]:
    if repo_dir:
        folder = Path(repo_dir)
        if not (folder / HUBCONF).is_file():
            raise ZooError(f"{folder} has no {HUBCONF}: a PyTorch Hub folder holds one")
        entries = entry_points(folder)
        if entry not in entries:
            raise OptionError(
                f"{folder / HUBCONF} has entry points {', '.join(entries)}: choose one with "
                f"entry=NAME" + (f" ({entry!r} is not one)" if entry else "")
            )
        _require_trust(str(folder / HUBCONF), trust_repo)
        module = torch.hub.load(str(folder), entry, source="local", **entry_options)
        return module, {"repo_dir": str(folder), "entry": entry}
    repo, _, entry_name = (model_id or "").rpartition(":")
    if not repo or not entry_name:
        raise ZooError("name the hub entry point: zoo.load('torchhub:OWNER/REPO:ENTRY', trust_repo=True)")
    _require_trust(f"the hub repository {repo!r}", trust_repo)
    if not reachable(GITHUB):
        raise ZooError(
            f"cannot reach GitHub to fetch {repo!r}. Offline? Clone it where there is network "
            f"(git clone https://github.com/{repo.split(':')[0]}), then "
            f"zoo.load('torchhub:CLONE_DIR', entry={entry_name!r}, trust_repo=True)"
        )
    module = torch.hub.load(repo, entry_name, trust_repo=True, **entry_options)
    return module, {"model_id": model_id}


def build(
    spec: zoo.BackboneSpec,
    weights: Any,
    model_id: str | None = None,
    repo_dir: str | None = None,
    entry: str | None = None,
    entry_options: Mapping[str, Any] | None = None,
    trust_repo: bool = False,
    preprocessing: Mapping[str, Any] | None = None,
    saved_dir: str | None = None,
) -> zoo.Backbone:
    """Factory: ``torch.hub.load`` of ``model_id`` ("OWNER/REPO:ENTRY", online) or of ``entry`` in the
    local folder ``repo_dir``, with ``entry_options`` as its keyword arguments; runs only with
    ``trust_repo=True``. ``preprocessing``: the entry's input size, mean, std, interpolation and crop
    (default ImageNet's at 224 px, with a `zoo.PreprocessingWarning`)."""
    if isinstance(weights, str):
        raise ZooError(f"{spec.name}: the entry point loads its own weights (entry_options: {{pretrained: true}})")
    module, source = _load_module(repo_dir, model_id, entry, dict(entry_options or {}), trust_repo)
    if isinstance(module, zoo.Backbone):
        return module  # the repository's entry point already builds a zoo backbone
    if not isinstance(module, torch.nn.Module):
        raise ZooError(f"{spec.name}: the entry point returned a {type(module).__name__}, not a torch module")
    source["entry_options"] = dict(entry_options or {})
    chosen = IMAGENET if preprocessing is None else zoo.ImagePreprocessing.coerce(preprocessing)
    if preprocessing is None and saved_dir is None:
        warnings.warn(
            f"{spec.name}: a hub entry point carries no preprocessing config; using {chosen}. "
            "Pass preprocessing={...} if it was trained otherwise",
            zoo.PreprocessingWarning,
            stacklevel=3,
        )
    head = None
    for name in HEADS:
        if isinstance(getattr(module, name, None), torch.nn.Module):
            head = getattr(module, name)
            setattr(module, name, torch.nn.Identity())
            break
    return HubBackbone(spec, None if repo_dir else weights, module, chosen, head, source)
