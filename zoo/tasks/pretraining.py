"""Self-supervised pretraining on the shared engine: each family's own objective on unlabelled data.

- text backbones: masked-language modelling (BERT's rule, `objectives.mask_tokens`), with BERT's
  next-sentence prediction on consecutive lines as an option (``nsp``), or causal language
  modelling for decoder-only models, on the texts of a text data set or the captions of an
  image-caption set;
- image backbones: SimCLR, two augmented views of every image and NT-Xent;
- CLIP-style backbones: symmetric InfoNCE over image-caption pairs, which is the retrieval
  task's contrastive training (so the run reports R@K as it goes).

Labels are never read. ``extra_data`` (task option) adds the training inputs of more data
sets, e.g. SST-2 sentences and Flickr8k captions. The trained backbone is saved with the
family's ``save`` in the run's ``model/backbone``, so ``finetune``, ``evaluate`` and
``zoo run --set model=RUN/model/backbone`` take it like any other backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
from torch import nn

from zoo.data import DataError, fingerprint, load_dataset
from zoo.data.images import augmentation_transform, decode_all
from zoo.tasks.base import Task, save_trained_backbone
from zoo.tasks.batches import stack_rows, tokenized
from zoo.tasks.classification import unwrap
from zoo.tasks.features import image_preprocessing_of
from zoo.tasks.metrics import majority_share
from zoo.tasks.objectives import IGNORE_INDEX, mask_tokens, maskable_positions
from zoo.tasks.retrieval import Retrieval

if TYPE_CHECKING:
    from zoo.backbone import Backbone


class Pretrainer(nn.Module):
    """The backbone and its pretraining head; ``forward`` is the family's ``pretrain_loss``."""

    def __init__(self, backbone: Backbone, head: nn.Module | None):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.backbone.pretrain_loss(batch, self.head)


def _fixed_seed(seed: int, index: int) -> int:
    return seed * 1_000_003 + index


class _Masked(torch.utils.data.Dataset):
    """Token rows, masked afresh on each visit for training, identically on each visit for evaluation."""

    def __init__(
        self,
        tokens: Mapping[str, torch.Tensor],
        vocabulary: tuple[int, int, list[int]],
        train: bool,
        seed: int,
        probability: float,
    ):
        self.tokens, self.train, self.seed, self.probability = tokens, train, seed, probability
        self.mask_id, self.vocab_size, self.special = vocabulary

    def __len__(self) -> int:
        return len(self.tokens["input_ids"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = {k: v[index] for k, v in self.tokens.items()}
        generator = None if self.train else torch.Generator().manual_seed(_fixed_seed(self.seed, index))
        maskable = maskable_positions(row["input_ids"], row["attention_mask"], self.special)
        inputs, labels = mask_tokens(
            row["input_ids"], maskable, self.mask_id, self.vocab_size, self.probability, generator
        )
        return {**row, "input_ids": inputs, "labels": labels}


class _NextTokens(torch.utils.data.Dataset):
    """Token rows for causal language modelling: every real token is a label (the family shifts them)."""

    def __init__(self, tokens: Mapping[str, torch.Tensor]):
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens["input_ids"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = {k: v[index] for k, v in self.tokens.items()}
        labels = row["input_ids"].masked_fill(row["attention_mask"] == 0, IGNORE_INDEX)
        return {**row, "labels": labels}


def sentence_pairs(texts: list[str], seed: int) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """BERT's next-sentence pairs: each line with the line after it (label 1) or, half the time, with a
    line drawn at random from elsewhere (label 0); seeded, so a split's pairs never change."""
    if len(texts) < 3:
        raise DataError("next-sentence prediction needs a corpus of at least 3 lines")
    generator = torch.Generator().manual_seed(seed)
    pairs, labels = [], []
    for index in range(len(texts) - 1):
        is_next = bool(torch.rand((), generator=generator) < 0.5)
        other = index + 1
        while not is_next and other in (index, index + 1):
            other = int(torch.randint(len(texts), (), generator=generator))
        pairs.append((texts[index], texts[other]))
        labels.append(int(is_next))
    return pairs, torch.tensor(labels)


class _Views(torch.utils.data.Dataset):
    """Two augmentations of each image; fixed per image for evaluation, so evaluations compare."""

    def __init__(self, images: list[torch.Tensor], transform: Any, train: bool, seed: int):
        self.images, self.transform, self.train, self.seed = images, transform, train, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.train:
            return self.transform(image), self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_fixed_seed(self.seed, index))
            return self.transform(image), self.transform(image)


class Pretraining(Task):
    """The backbone family's self-supervised objective (MLM for text, SimCLR for images)."""

    primary_metric = "loss"
    higher_is_better = False
    modes: tuple[str, ...] = ("pretrain",)
    untrained_modes = ()
    fresh_parameters: tuple[str, ...] = ("head",)
    option_help: ClassVar[dict[str, str]] = {
        "extra_data": "more data sets (names or paths) whose training inputs join the corpus",
        "mask_probability": "share of the tokens masked-language modelling predicts (default 0.15)",
        "nsp": "masked-LM text backbones: add BERT's next-sentence prediction on pairs of consecutive lines "
        "(half of them with a random second line instead); default false",
        "on_bad_image": "skip (default: skip and count) or fail on an unreadable image",
    }

    @classmethod
    def for_backbone(cls, backbone: Any) -> type[Task]:
        """CLIP-style backbones pretrain with InfoNCE over pairs: the retrieval task's contrastive
        training (`ImageTextPretraining`), so that one task name covers every modality."""
        if backbone.modality == "multimodal":
            return ImageTextPretraining
        return TextPretraining if backbone.modality == "text" else ImagePretraining

    def __init__(self, backbone, dataset, mode="pretrain", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        self.kind = "text" if backbone.modality == "text" else "image"
        self.seed = int(self.options.get("seed", 0))
        self.objective = backbone.pretraining_objective
        self.nsp = bool(self.options.get("nsp", False))
        if self.nsp and self.objective != "mlm":
            raise DataError(
                f"task_options.nsp: next-sentence prediction goes with masked-language modelling; "
                f"{backbone.name} pretrains with {self.objective}"
            )
        self.corpora: dict[str, Any] = {}

    def _extra_names(self) -> list[str]:
        names = self.options.get("extra_data") or []
        return [names] if isinstance(names, str) else list(names)

    def _extra(self) -> list[Any]:
        return [load_dataset(name, self.options.get("data_root")) for name in self._extra_names()]

    def _corpus(self, split: str) -> Any:
        """Tokenised texts (a dict of [N, L] tensors) or decoded images of ``split``, cached."""
        if split in self.corpora:
            return self.corpora[split]
        sources = [self.data, *(self._extra() if split == "train" else [])]
        items = [item for source in sources for item in source.unlabelled(split, self.kind)]
        key = fingerprint(*[source.fingerprint for source in sources], split, self.backbone.preprocessing)
        if not items:
            raise DataError(f"{self.data.name}: the {split} split is empty")
        corpus: Any
        if self.kind == "text" and self.nsp:
            pairs, is_next = sentence_pairs(items, _fixed_seed(self.seed, len(items)))
            corpus = {
                **tokenized(self.backbone, pairs, fingerprint(key, "nsp", self.seed)),
                "next_sentence_label": is_next,
            }
        elif self.kind == "text":
            corpus = tokenized(self.backbone, items, key)
        else:
            corpus, _ = decode_all(items, key, self.options.get("on_bad_image", "skip"))
        self.corpora[split] = corpus
        return corpus

    def prepare(self) -> None:
        for split in dict.fromkeys(["train", self.options.get("eval_split", "validation")]):
            if split in self.data.splits:
                self._corpus(split)

    def model(self) -> nn.Module:
        head = self.backbone.pretraining_head(nsp=True) if self.nsp else self.backbone.pretraining_head()
        model = Pretrainer(self.backbone, head)
        if isinstance(self.backbone.weights, str) and Path(self.backbone.weights).is_dir():
            # continued pretraining of an earlier run's model/backbone: its head (saved beside it) goes
            # on too, as transformers' *ForMaskedLM checkpoints carry theirs; otherwise a fresh head's
            # first noisy gradients would pass into the pretrained encoder
            self.restore(model, Path(self.backbone.weights).parent)
        return model

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        corpus = self._corpus(split)
        if self.objective == "causal-lm":
            return _NextTokens(corpus)
        if self.kind == "text":
            probability = float(self.options.get("mask_probability", 0.15))
            return _Masked(corpus, self.backbone.masking_vocabulary(), train, self.seed, probability)
        return _Views(corpus, augmentation_transform(image_preprocessing_of(self.backbone)), train, self.seed)

    def lengths(self, split: str) -> torch.Tensor | None:
        return self._corpus(split)["attention_mask"].sum(dim=1) if self.kind == "text" else None

    def collate(self, items: list[Any]) -> Any:
        if self.kind == "text":
            return stack_rows(items)
        return super().collate(items)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return model(batch)

    def metrics(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        if "correct" not in outputs:
            return {}
        name = {"mlm": "masked_token_accuracy", "causal-lm": "next_token_accuracy"}.get(self.objective, "partner_top1")
        metrics = {name: float(outputs["correct"].mean())}
        if self.objective == "causal-lm" and "nll" in outputs:  # per predicted token, over the whole split
            metrics["perplexity"] = float(outputs["nll"].double().mean().exp())
        if "nsp_correct" in outputs:
            metrics["nsp_accuracy"] = float(outputs["nsp_correct"].mean())
        return metrics

    def chance(self, split: str) -> dict[str, float]:
        """Next-sentence prediction's bar: the share of the split's more common label (about half)."""
        if not self.nsp:
            return {}
        return {"nsp_accuracy": majority_share(self._corpus(split)["next_sentence_label"].tolist())}

    def save(self, model: nn.Module, directory: Path) -> None:
        """The backbone (with the family's ``save``), and the pretraining head for re-evaluating the run."""
        from safetensors.torch import save_file

        module = unwrap(model)
        save_trained_backbone(module.backbone, directory / "backbone")
        if module.head is not None:
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in module.head.state_dict().items()},
                str(directory / "pretraining_head.safetensors"),
            )

    def restore(self, model: nn.Module, directory: Path) -> None:
        from safetensors.torch import load_file

        path = directory / "pretraining_head.safetensors"
        head = cast(Pretrainer, model).head
        if head is not None and path.is_file():
            # an MLM head saved without the next-sentence classifier goes on with a fresh classifier
            missing, unexpected = head.load_state_dict(load_file(str(path)), strict=False)
            fresh = [key for key in missing if not key.startswith("next_sentence.")]
            if fresh or unexpected:
                raise DataError(
                    f"{path} does not fit this pretraining head (missing {fresh[:1]}, unexpected "
                    f"{unexpected[:1]}): it was saved for another objective or model"
                )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "extra_data": self._extra_names()}


class TextPretraining(Pretraining):
    """Pretraining of a text backbone: takes only the text options."""

    option_help = {k: v for k, v in Pretraining.option_help.items() if k != "on_bad_image"}


class ImagePretraining(Pretraining):
    """Pretraining of an image backbone: takes only the image options."""

    option_help = {k: v for k, v in Pretraining.option_help.items() if k in ("extra_data", "on_bad_image")}


class ImageTextPretraining(Retrieval, Pretraining):
    """CLIP-style pretraining: the retrieval task's contrastive InfoNCE training (Retrieval's methods
    come first in the method order; Pretraining contributes ``describe`` and the extra data)."""

    fresh_parameters = Retrieval.fresh_parameters
    modes = ("pretrain",)
    untrained_modes = ()
    higher_is_better = True  # R@1, not Pretraining's loss
    option_help = Retrieval.option_help
