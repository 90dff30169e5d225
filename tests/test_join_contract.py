"""What training treats specially is declared by the contract, not recognised by a parameter's name:
a CLIP-style backbone built the way Hugging Face's CLIP is (``visual_projection``, ``text_projection``,
its locked tower handed out through a wrapper that holds no weights of its own) gets ``head_lr`` on its
declared join and tower features keyed by the weights the tower really runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import zoo
from zoo.adapters import adapt
from zoo.errors import InputError
from zoo.recipes import RecipeError
from zoo.tasks.features import locked_tower_weights, weights_fingerprint
from zoo.testing import check_join_parameters, check_locked_tower_key


class _TowerRunner(nn.Module):
    """A locked tower's runner as one would naturally write it: it calls the model's vision tower,
    which stays where it is (not a submodule of the runner), so the runner's own state_dict is empty."""

    def __init__(self, owner: HFStyleCLIP):
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # a plain reference, not a registered child

    @property
    def device(self) -> torch.device:
        return self._owner.device

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._owner.vision_model.encode_pixels(pixels)


class HFStyleCLIP(zoo.Backbone):
    """Two registry towers joined with Hugging Face CLIP's names for the join."""

    def __init__(self, declare_join: bool = True, seed: int = 0):
        spec = zoo.BackboneSpec(
            name="test/hf-style-clip",
            modality="multimodal",
            factory="tests.test_join_contract:HFStyleCLIP",
            embed_dim=16,
            license="mit",
            params=1,
            description="a CLIP-style test backbone with Hugging Face's parameter names",
        )
        super().__init__(spec)
        torch.manual_seed(seed)
        self.vision_model = zoo.load("vision/example-convnet", pretrained=False)
        self.text_model = zoo.load("text/bert-tiny", pretrained=False)
        self.visual_projection = nn.Linear(self.vision_model.embed_dim, 16, bias=False)
        self.text_projection = nn.Linear(self.text_model.embed_dim, 16, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.image_preprocessing = self.vision_model.image_preprocessing
        self.text_preprocessing = self.text_model.text_preprocessing
        self.declare_join = declare_join

    @property
    def image_tower(self) -> nn.Module:
        return self.vision_model

    @property
    def text_tower(self) -> nn.Module:
        return self.text_model

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed(self.vision_model.encode_pixels(pixels))

    def _embed(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual_projection(features), dim=-1)

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        return self.text_model.tokenize(texts)

    def encode_tokens(self, tokens: Any) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text_model.encode_tokens(tokens)), dim=-1)

    def learned_logit_scale(self) -> torch.Tensor:
        return self.logit_scale

    def join_parameters(self) -> list[nn.Parameter]:
        if not self.declare_join:
            return []
        return [*self.visual_projection.parameters(), *self.text_projection.parameters(), self.logit_scale]

    def frozen_image_encoder(self) -> zoo.FrozenImageEncoder | None:
        if any(p.requires_grad for p in self.vision_model.parameters()):
            return None
        return zoo.FrozenImageEncoder(_TowerRunner(self), self._embed)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> Path:
    """Twelve coloured pictures, two captions each, as an image-caption CSV."""
    root = tmp_path_factory.mktemp("captions")
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 30, 220)}
    rows = ["image,caption"]
    for index in range(12):
        name, rgb = list(colours.items())[index % 3]
        shade = tuple(min(255, c + 7 * index) for c in rgb)
        Image.new("RGB", (40 + index, 36), shade).save(root / f"{index}.png")
        rows += [f"{index}.png,a {name} square number {index}", f"{index}.png,picture {index} is {name}"]
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root / "captions.csv"


def _locked(model: HFStyleCLIP) -> HFStyleCLIP:
    adapt(model, {}, {"image": "frozen", "text": "frozen"})
    return model


def _contrastive(model: HFStyleCLIP, captions: Path, tmp_path: Path, **recipe: Any) -> dict[str, Any]:
    values = {"max_steps": 4, "batch_size": 8, "warmup": 0.0, "eval_split": "test", **recipe}
    return model.finetune(
        "retrieval",
        str(captions),
        mode="contrastive",
        output_dir=str(tmp_path),
        data_options={"test_images": 4},
        **values,
    )


def test_head_lr_trains_the_declared_join_whatever_its_names(captions, tmp_path):
    model = _locked(HFStyleCLIP())
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    _contrastive(model, captions, tmp_path, lr=1e-12, head_lr=1e-2)
    moved = {name: float((param.detach() - before[name]).abs().max()) for name, param in model.named_parameters()}
    for name in ("visual_projection.weight", "text_projection.weight", "logit_scale"):
        assert moved[name] > 1e-4, f"{name} trained at lr, not head_lr: moved {moved[name]}"


def test_head_lr_that_nothing_takes_is_refused(captions, tmp_path):
    model = _locked(HFStyleCLIP(declare_join=False))
    with pytest.raises(RecipeError, match="head_lr: retrieval adds no head and test/hf-style-clip declares no join"):
        _contrastive(model, captions, tmp_path, lr=1e-3, head_lr=1e-2)
    declared = _locked(HFStyleCLIP())
    for param in declared.join_parameters():
        param.requires_grad_(False)  # declared, but none of it trains: the text tower alone does
    declared.text_model.requires_grad_(True)
    with pytest.raises(RecipeError, match="head_lr: no trainable parameter of this run takes it"):
        _contrastive(declared, captions, tmp_path / "frozen-join", lr=1e-3, head_lr=1e-2)


def test_the_kit_fails_a_join_that_is_not_declared():
    check_join_parameters(_locked(HFStyleCLIP()))
    with pytest.raises(AssertionError, match="join_parameters"):
        check_join_parameters(_locked(HFStyleCLIP(declare_join=False)))


def test_locked_tower_features_are_keyed_by_the_weights_the_tower_runs():
    first, second = _locked(HFStyleCLIP(seed=0)), _locked(HFStyleCLIP(seed=1))
    runner = first.frozen_image_encoder()
    assert runner is not None
    # the runner the family hands out holds no weights: keyed by it, the two models would share features
    assert weights_fingerprint(runner.tower) == weights_fingerprint(second.frozen_image_encoder().tower)
    assert locked_tower_weights(first) != locked_tower_weights(second)
    twin = copy.deepcopy(first)
    assert locked_tower_weights(first) == locked_tower_weights(twin)  # same weights: the cache is shared
    twin.text_projection.weight.data.add_(1.0)  # what trains after the tower does not change its key
    assert locked_tower_weights(first) == locked_tower_weights(twin)
    check_locked_tower_key(first)


def test_two_locked_models_report_their_own_retrieval(captions, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    def ranks(results: dict[str, Any]) -> dict[str, torch.Tensor]:
        return load_file(str(Path(results["run_dir"]) / "items" / "test.safetensors"))

    warm = [_contrastive(_locked(HFStyleCLIP(seed=seed)), captions, tmp_path / str(seed), lr=1e-12) for seed in (0, 1)]
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cold-cache"))  # the second model's features, never cached
    cold = _contrastive(_locked(HFStyleCLIP(seed=1)), captions, tmp_path / "cold", lr=1e-12)
    assert ranks(warm[1]).keys() == ranks(cold).keys()
    for name, value in ranks(cold).items():  # each caption's and image's rank: the model's own features
        assert torch.equal(ranks(warm[1])[name], value), name


def test_flip_features_without_a_locked_tower_is_refused(captions, tmp_path):
    with pytest.raises(InputError, match="flip_features"):
        _contrastive(HFStyleCLIP(), captions, tmp_path, lr=1e-3, task_options={"flip_features": True})


def test_a_frozen_tower_keeps_its_weights_and_batchnorm_statistics(captions, tmp_path):
    """towers: {image: frozen} on a family that does nothing of its own to keep the tower in eval mode."""
    model = HFStyleCLIP()
    adapt(model, {}, {"image": "frozen", "text": "full"})
    model.frozen_image_encoder = lambda: None  # type: ignore[method-assign] # its pixels run through the tower
    before = {name: value.clone() for name, value in model.vision_model.state_dict().items()}
    _contrastive(model, captions, tmp_path, lr=1e-3)
    after = model.vision_model.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value), f"{name} moved in a frozen tower"
