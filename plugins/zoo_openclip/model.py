"""CLIP-style backbones: joined registry towers, and open_clip's own models.

``JoinedCLIP`` composes any registered image backbone with any registered text
backbone (loaded through `zoo.load`, so a third-party tower works too) and adds
learned projections into one space and a learnable temperature. With
``lock_image`` (LiT) the image tower is frozen: its parameters take no
gradient and it stays in eval mode, so batch-norm statistics are kept too.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo.api import rebuild
from zoo.errors import ZooError
from zoo.hub import offline_unless_reachable
from zoo.saving import load_state_dict, read_state_dict

INIT_TEMPERATURE = 0.07  # CLIP's initial softmax temperature; logit_scale = log(1 / T)


class JoinedCLIP(zoo.Backbone):
    """Image tower + text tower + projections; embeddings are L2-normalised in the shared space."""

    def __init__(self, spec: zoo.BackboneSpec, weights: Any, image_tower: zoo.Backbone, text_tower: zoo.Backbone,
                 proj_dim: int | None, lock_image: bool = True) -> None:
        super().__init__(spec, weights)
        if image_tower.modality != "image" or text_tower.modality != "text":
            raise ZooError(f"{spec.name}: the image tower must be an image backbone and the text tower a text "
                           f"backbone, got {image_tower.name} ({image_tower.modality}) and "
                           f"{text_tower.name} ({text_tower.modality})")
        image_dim, text_dim = image_tower.embed_dim, text_tower.embed_dim
        if proj_dim is None and image_dim != text_dim:
            raise ZooError(f"{spec.name}: image tower {image_tower.name} gives {image_dim}-d and text tower "
                           f"{text_tower.name} {text_dim}-d embeddings, and no projection dims were given: "
                           "set proj_dim (e.g. proj_dim=256)")
        self.image_tower, self.text_tower = image_tower, text_tower
        self.proj_dim = proj_dim or image_dim
        self.image_proj = nn.Linear(image_dim, self.proj_dim, bias=False) if proj_dim else nn.Identity()
        self.text_proj = nn.Linear(text_dim, self.proj_dim, bias=False) if proj_dim else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))
        self.lock_image = lock_image
        if lock_image:
            self.image_tower.requires_grad_(False)
        self.preprocessing = {"image": image_tower.preprocessing, "text": text_tower.preprocessing}

    @property
    def embed_dim(self) -> int:
        return self.proj_dim

    def train(self, mode: bool = True) -> "JoinedCLIP":
        super().train(mode)
        if self.lock_image:
            self.image_tower.eval()
        return self

    def encode_image(self, images: Any) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image_tower.encode_image(images)), dim=-1)

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        return self.text_tower.tokenize(texts)

    def frozen_image_encoder(self):
        """With a locked tower: (tower, head) so callers can cache tower features; else None."""
        if not self.lock_image:
            return None
        return self.image_tower, lambda features: F.normalize(self.image_proj(features), dim=-1)

    def encode_text(self, texts: Any) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_tower.encode_text(texts)), dim=-1)

    def build_options(self) -> dict[str, Any]:
        towers = {}
        for part, tower in (("image", self.image_tower), ("text", self.text_tower)):
            towers[part] = {"spec": tower.spec.to_dict(), "options": tower.build_options()}
        return {"image_tower": self.image_tower.name, "text_tower": self.text_tower.name,
                "proj_dim": self.proj_dim if isinstance(self.image_proj, nn.Linear) else None,
                "lock_image": self.lock_image, "towers": towers}

    def save_assets(self, directory: Path) -> None:
        for part, tower in (("image", self.image_tower), ("text", self.text_tower)):
            (Path(directory) / f"{part}_tower").mkdir()
            tower.save_assets(Path(directory) / f"{part}_tower")


def build_joined(spec: zoo.BackboneSpec, weights: zoo.Weights | str | None, image_tower: str, text_tower: str,
                 proj_dim: int | None = None, lock_image: bool = True, towers: Mapping[str, Any] | None = None,
                 saved_dir: str | None = None) -> JoinedCLIP:
    """Factory of joined-tower models: towers pretrained unless ``pretrained=False``; projections random."""
    if isinstance(weights, str):
        raise ZooError(f"{spec.name}: load saved joined models by directory, zoo.load('{weights}')")
    if saved_dir is not None and towers:
        image = rebuild(towers["image"]["spec"], towers["image"]["options"], Path(saved_dir) / "image_tower")
        text = rebuild(towers["text"]["spec"], towers["text"]["options"], Path(saved_dir) / "text_tower")
    else:
        pretrained = weights is not None
        image = zoo.load(image_tower, pretrained=pretrained)
        text = zoo.load(text_tower, pretrained=pretrained)
    return JoinedCLIP(spec, weights, image, text, proj_dim, lock_image)


class OpenCLIP(zoo.Backbone):
    """An open_clip CLIP model with its tokenizer and image transform."""

    def __init__(self, spec: zoo.BackboneSpec, weights: Any, model: nn.Module, tokenizer: Any,
                 preprocessing: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        super().__init__(spec, weights)
        self.model, self.tokenizer = model, tokenizer
        self.preprocessing = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocessing.items()}
        self._options = dict(options)
        self._transform = None

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1] if hasattr(self.model, "text_projection")
                   else self.spec.embed_dim)

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    @property
    def transform(self):
        if self._transform is None:
            import open_clip

            p = self.preprocessing
            self._transform = open_clip.image_transform(p["size"], is_train=False, mean=tuple(p["mean"]),
                                                        std=tuple(p["std"]), interpolation=p["interpolation"])
        return self._transform

    def encode_image(self, images: Any) -> torch.Tensor:
        from PIL import Image

        if not isinstance(images, torch.Tensor):
            images = torch.stack([self.transform((img if isinstance(img, Image.Image) else Image.fromarray(img))
                                                 .convert("RGB")) for img in images])
        device = next(self.parameters()).device
        return self.model.encode_image(images.to(device), normalize=True)

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(list(texts))}

    def encode_text(self, texts: Any) -> torch.Tensor:
        if isinstance(texts, Mapping):
            tokens = texts["input_ids"]
        else:
            tokens = texts if isinstance(texts, torch.Tensor) else self.tokenizer(list(texts))
        device = next(self.parameters()).device
        return self.model.encode_text(tokens.to(device), normalize=True)

    def build_options(self) -> dict[str, Any]:
        return dict(self._options)


def _openclip_preprocessing(model: nn.Module) -> dict[str, Any]:
    config = dict(getattr(model.visual, "preprocess_cfg", {}))
    size = config.get("size", getattr(model.visual, "image_size", 224))
    return {"size": size if isinstance(size, int) else list(size)[0], "mean": list(config.get("mean")),
            "std": list(config.get("std")), "interpolation": config.get("interpolation", "bicubic")}


@contextlib.contextmanager
def _no_implicit_log_setup():
    """open_clip logs through the root logger; where the application has set up no logging, that would
    install a handler for the whole process (logging.basicConfig) and print, among others, the download
    failure that zoo's own error already reports. Its records are dropped unless logging is set up."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    quiet = logging.NullHandler()
    root.addHandler(quiet)
    try:
        yield
    finally:
        root.removeHandler(quiet)


def build_openclip(spec: zoo.BackboneSpec, weights: zoo.Weights | str | None, arch: str | None = None,
                   arch_config: Mapping[str, Any] | None = None, model_id: str | None = None,
                   preprocessing: Mapping[str, Any] | None = None, saved_dir: str | None = None) -> OpenCLIP:
    """Factory of open_clip models: a named architecture (``arch``), a custom one (``arch_config``,
    open_clip's ``model_cfg``; with a local weights file when ``weights`` is a path), or ``model_id`` =
    "ARCH/TAG" naming any open_clip architecture and pretrained tag. ``preprocessing`` (size, mean, std,
    interpolation) overrides the image transform, as an open_clip folder's ``preprocess_cfg`` does."""
    import open_clip

    if spec.id_option and not (model_id or arch or arch_config):
        raise ZooError(f"name the open_clip model: zoo.load('{spec.name}:ARCH/TAG'), e.g. ViT-B-32/openai")
    load_name = spec.name
    if model_id:
        arch, _, tag = model_id.partition("/")
        load_name = f"{spec.name}:{arch}"
        if isinstance(weights, zoo.Weights):
            if not tag:
                raise ZooError(f"name the pretrained tag: zoo.load('{spec.name}:{arch}/TAG'), or pass "
                               "pretrained=False for random initialisation")
            weights = zoo.Weights(tag="hub", source=f"open_clip:{arch}/{tag}")
    if arch not in open_clip.list_models() and not arch_config:
        raise ZooError(f"{spec.name}: open_clip has no architecture {arch!r}; see open_clip.list_models()")
    options = {"arch": arch, "arch_config": dict(arch_config) if arch_config else None}
    if arch_config:  # open_clip's own CLIP class: from scratch, or a local file's weights
        model = open_clip.CLIP(**arch_config)
        if isinstance(weights, str):
            load_state_dict(model, read_state_dict(weights), weights, spec.name)
        tokenizer = open_clip.SimpleTokenizer(context_length=arch_config["text_cfg"]["context_length"])
        defaults = {"size": arch_config["vision_cfg"]["image_size"], "mean": list(open_clip.OPENAI_DATASET_MEAN),
                    "std": list(open_clip.OPENAI_DATASET_STD), "interpolation": "bicubic"}
        chosen = {**defaults, **{k: v for k, v in (preprocessing or {}).items() if k in defaults}}
        if preprocessing:
            options["preprocessing"] = chosen
        return OpenCLIP(spec, weights, model, tokenizer, chosen, options)
    pretrained = weights if isinstance(weights, str) else weights.source.rsplit("/", 1)[-1] if weights else None
    from huggingface_hub import constants

    try:
        with contextlib.ExitStack() as stack:
            if isinstance(weights, zoo.Weights):  # a download
                stack.enter_context(offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"))
            stack.enter_context(_no_implicit_log_setup())
            model = open_clip.create_model(arch, pretrained=pretrained, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - download failures come as many types
        raise ZooError(f"cannot load open_clip {arch} weights {pretrained!r} ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}). Offline? Download the checkpoint where "
                       f"there is network and load it with zoo.load('{load_name}', pretrained='path/to/file')") from None
    return OpenCLIP(spec, weights, model, open_clip.get_tokenizer(arch), _openclip_preprocessing(model), options)
