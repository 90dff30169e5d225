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
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import OptionError, ZooError, load_state_dict, offline_unless_reachable, read_state_dict, rebuild

INIT_TEMPERATURE = 0.07  # CLIP's initial softmax temperature; logit_scale = log(1 / T)


class JoinedCLIP(zoo.Backbone):
    """Image tower + text tower + projections; embeddings are L2-normalised in the shared space."""

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        image_tower: zoo.Backbone,
        text_tower: zoo.Backbone,
        proj_dim: int | None,
        lock_image: bool = True,
    ) -> None:
        super().__init__(spec, weights)
        if image_tower.modality != "image" or text_tower.modality != "text":
            raise OptionError(
                f"{spec.name}: the image tower must be an image backbone and the text tower a text "
                f"backbone, got {image_tower.name} ({image_tower.modality}) and "
                f"{text_tower.name} ({text_tower.modality})"
            )
        image_dim, text_dim = image_tower.embed_dim, text_tower.embed_dim
        if proj_dim is None and image_dim != text_dim:
            raise ZooError(
                f"{spec.name}: image tower {image_tower.name} gives {image_dim}-d and text tower "
                f"{text_tower.name} {text_dim}-d embeddings, and no projection dims were given: "
                "set proj_dim (e.g. proj_dim=256)"
            )
        self.add_module("image_tower", image_tower)  # as submodules: their weights are the model's
        self.add_module("text_tower", text_tower)
        self.proj_dim = proj_dim or image_dim
        self.image_proj = nn.Linear(image_dim, self.proj_dim, bias=False) if proj_dim else nn.Identity()
        self.text_proj = nn.Linear(text_dim, self.proj_dim, bias=False) if proj_dim else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))
        self.lock_image = lock_image
        if lock_image:
            self.image_tower.requires_grad_(False)
        self.image_preprocessing = image_tower.image_preprocessing
        self.text_preprocessing = text_tower.text_preprocessing

    @property
    def embed_dim(self) -> int:
        return self.proj_dim

    @property
    def image_tower(self) -> zoo.Backbone:
        return self._tower("image_tower")

    @property
    def text_tower(self) -> zoo.Backbone:
        return self._tower("text_tower")

    def _tower(self, name: str) -> zoo.Backbone:
        if name not in self._modules:  # an AttributeError, as nn.Module.add_module's hasattr expects
            raise AttributeError(name)
        return cast(zoo.Backbone, self._modules[name])

    @property
    def image_locked(self) -> bool:
        """The image tower takes no gradient (LiT's lock, or ``towers: {image: frozen}``): it stays in
        eval mode, so batch-norm statistics are kept, and its features can be computed once."""
        return not any(p.requires_grad for p in self.image_tower.parameters())

    def train(self, mode: bool = True) -> JoinedCLIP:
        super().train(mode)
        if self.image_locked:
            self.image_tower.eval()
        return self

    def _embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(features), dim=-1)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed_image(self.image_tower.encode_pixels(pixels))

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        return self.text_tower.tokenize(texts)

    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_tower.encode_tokens(tokens)), dim=-1)

    def adapter_targets(self, tower: str | None = None) -> list[str]:
        """Each tower's own family's targets (its attention and MLP projections, its convolutions)."""
        parts = ("image", "text") if tower is None else (tower,) if tower in ("image", "text") else ()
        return [f"{part}_tower.{path}" for part in parts for path in self._tower(f"{part}_tower").adapter_targets()]

    def frozen_image_encoder(self) -> zoo.FrozenImageEncoder | None:
        """With a locked image tower (LiT): the tower and the projection after it."""
        return zoo.FrozenImageEncoder(self.image_tower, self._embed_image) if self.image_locked else None

    def blocks(self, tower: str | None = None) -> list[nn.Module]:
        chosen = ("image", "text") if tower is None else (tower,) if tower in ("image", "text") else ()
        return [block for name in chosen for block in self._tower(f"{name}_tower").blocks()]

    def set_gradient_checkpointing(self, enabled: bool = True) -> bool:
        # a locked image tower runs without autograd: nothing of it to recompute
        towers = [self.text_tower] if self.lock_image else [self.image_tower, self.text_tower]
        return all([tower.set_gradient_checkpointing(enabled) for tower in towers])

    def learned_logit_scale(self) -> torch.Tensor:
        return self.logit_scale

    def join_parameters(self) -> list[nn.Parameter]:
        # fresh on top of two pretrained towers: what head_lr trains
        return [*self.image_proj.parameters(), *self.text_proj.parameters(), self.logit_scale]

    def build_options(self) -> dict[str, Any]:
        towers = {}
        for part, tower in (("image", self.image_tower), ("text", self.text_tower)):
            towers[part] = {"spec": tower.spec.to_dict(), "options": tower.build_options()}
        return {
            "image_tower": self.image_tower.name,
            "text_tower": self.text_tower.name,
            "proj_dim": self.proj_dim if isinstance(self.image_proj, nn.Linear) else None,
            "lock_image": self.lock_image,
            "towers": towers,
        }

    def save_assets(self, directory: Path) -> None:
        for part, tower in (("image", self.image_tower), ("text", self.text_tower)):
            (Path(directory) / f"{part}_tower").mkdir()
            tower.save_assets(Path(directory) / f"{part}_tower")


def build_joined(
    spec: zoo.BackboneSpec,
    weights: zoo.Weights | str | None,
    image_tower: str,
    text_tower: str,
    proj_dim: int | None = None,
    lock_image: bool = True,
    towers: Mapping[str, Any] | None = None,
    saved_dir: str | None = None,
) -> JoinedCLIP:
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

    image_preprocessing: zoo.ImagePreprocessing
    text_preprocessing: zoo.TextPreprocessing

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: nn.Module,
        tokenizer: Any,
        preprocessing: zoo.ImagePreprocessing,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__(spec, weights)
        self.model: Any = model  # an open_clip model: its own API beyond nn.Module
        self.tokenizer = tokenizer
        self.image_preprocessing = preprocessing
        context = int(getattr(model, "context_length", None) or tokenizer.context_length)
        self.text_preprocessing = zoo.TextPreprocessing(
            tokenizer=type(tokenizer).__name__,
            max_length=context,
            max_positions=context,
            vocab_size=int(getattr(model, "vocab_size", 0)) or None,
            lowercase=True,
            pooling="eot",
            normalize=True,
        )
        self._options = dict(options)

    @property
    def embed_dim(self) -> int:
        if hasattr(self.model, "text_projection"):
            return int(self.model.text_projection.shape[1])
        return super().embed_dim

    @property
    def image_tower(self) -> nn.Module:
        return self.model.visual

    @property
    def text_tower(self) -> nn.Module:
        # open_clip's CLIP class keeps its text transformer beside the token embedding and projection;
        # CustomTextCLIP holds the whole text tower as ``text``
        return getattr(self.model, "text", None) or self.model.transformer

    def learned_logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale

    def join_parameters(self) -> list[nn.Parameter]:
        # open_clip's join: each tower's projection into the shared space, and the temperature
        visual_proj = getattr(self.model.visual, "proj", None)
        return [
            *([visual_proj] if isinstance(visual_proj, nn.Parameter) else []),
            *([self.model.text_projection] if isinstance(self.model.text_projection, nn.Parameter) else []),
            self.model.logit_scale,
        ]

    def blocks(self, tower: str | None = None) -> list[nn.Module]:
        """The residual attention blocks of each tower (a ViT's resblocks, a ResNet's layers)."""
        towers = {"image": self.image_tower, "text": self.text_tower}
        chosen = list(towers) if tower is None else [tower] if tower in towers else []
        return [block for name in chosen for block in self.repeated_blocks(towers[name])]

    def set_gradient_checkpointing(self, enabled: bool = True) -> bool:
        self.model.set_grad_checkpointing(enabled)
        return True

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(list(texts))}

    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_text(tokens["input_ids"], normalize=True)

    def build_options(self) -> dict[str, Any]:
        return dict(self._options)


def _fixed_size(visual: nn.Module) -> bool:
    """ViTs' position embeddings and the ResNets' attention pool fix the input size."""
    return any(name.endswith("positional_embedding") for name, _ in visual.named_parameters())


def _openclip_preprocessing(model: Any, given: Mapping[str, Any] | None = None) -> zoo.ImagePreprocessing:
    """open_clip's eval transform as a `zoo.ImagePreprocessing`: the model's own ``preprocess_cfg`` with
    what a folder's config gives (``given``, open_clip's keys) on top, every key mapped or refused; or
    ``given`` in zoo's own form (with ``crop_mode``), as a saved folder's zoo.json records it."""
    import open_clip

    if given and "crop_mode" in given:
        return zoo.ImagePreprocessing.from_dict(given)
    config = {
        "size": getattr(model.visual, "image_size", 224),
        "mean": open_clip.OPENAI_DATASET_MEAN,
        "std": open_clip.OPENAI_DATASET_STD,
        "interpolation": "bicubic",
        **dict(getattr(model.visual, "preprocess_cfg", {}) or {}),
        **dict(given or {}),
    }
    return replace(zoo.ImagePreprocessing.from_open_clip_cfg(config), fixed_size=_fixed_size(model.visual))


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


def build_openclip(
    spec: zoo.BackboneSpec,
    weights: zoo.Weights | str | None,
    arch: str | None = None,
    arch_config: Mapping[str, Any] | None = None,
    model_id: str | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    saved_dir: str | None = None,
) -> OpenCLIP:
    """Factory of open_clip models: a named architecture (``arch``), a custom one (``arch_config``,
    open_clip's ``model_cfg``; with a local weights file when ``weights`` is a path), or ``model_id`` =
    "ARCH/TAG" naming any open_clip architecture and pretrained tag. ``preprocessing`` (open_clip's
    ``preprocess_cfg`` keys: size, mean, std, interpolation, resize_mode, fill_color, mode) overrides the
    image transform, as an open_clip folder's ``preprocess_cfg`` does."""
    import open_clip

    if spec.id_option and not (model_id or arch or arch_config):
        raise OptionError(f"name the open_clip model: zoo.load('{spec.name}:ARCH/TAG'), e.g. ViT-B-32/openai")
    load_name = spec.name
    if model_id:
        arch, _, tag = model_id.partition("/")
        load_name = f"{spec.name}:{arch}"
        if isinstance(weights, zoo.Weights):
            if not tag:
                raise OptionError(
                    f"name the pretrained tag: zoo.load('{spec.name}:{arch}/TAG'), or pass "
                    "pretrained=False for random initialisation"
                )
            weights = zoo.Weights(tag="hub", source=f"open_clip:{arch}/{tag}")
    if arch not in open_clip.list_models() and not arch_config:
        raise OptionError(f"{spec.name}: open_clip has no architecture {arch!r}; see open_clip.list_models()")
    options = {"arch": arch, "arch_config": dict(arch_config) if arch_config else None}
    if arch_config:  # open_clip's own CLIP class: from scratch, or a local file's weights
        model = open_clip.CLIP(**arch_config)
        if isinstance(weights, str):
            load_state_dict(model, read_state_dict(weights), weights, spec.name)
        tokenizer = open_clip.SimpleTokenizer(context_length=arch_config["text_cfg"]["context_length"])
        chosen = _openclip_preprocessing(model, preprocessing)
        if preprocessing:
            options["preprocessing"] = chosen.to_dict()
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
        raise ZooError(
            f"cannot load open_clip {arch} weights {pretrained!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Offline? Download the checkpoint where "
            f"there is network and load it with zoo.load('{load_name}', pretrained='path/to/file')"
        ) from None
    chosen = _openclip_preprocessing(model, preprocessing)
    if preprocessing:
        options["preprocessing"] = chosen.to_dict()
    return OpenCLIP(spec, weights, model, open_clip.get_tokenizer(arch), chosen, options)
