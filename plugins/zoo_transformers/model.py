"""Text backbones: any ``transformers`` text model, with its tokenizer attached.

Three architectures, each with its own pooling and inputs:
- encoder-only (BERT, RoBERTa, XLNet, ELECTRA, DeBERTa, ModernBERT): mean pooling by default,
  or the model's own pooling config (sentence-transformers' ``1_Pooling/config.json`` and
  ``modules.json``: mean pooling and L2 normalisation for all-MiniLM-L6-v2);
- decoder-only (GPT-2, Llama, Qwen, Mistral): the last real token by default, whichever side
  the tokenizer pads (positions count real tokens only, so left padding changes nothing), and
  a pad token set when the tokenizer has none; pretrained with causal language modelling;
- encoder-decoder (T5, mT5, BART): the encoder alone; the decoder is dropped when loading.
``pooling`` (cls | mean | max | last) overrides the default and is recorded in ``text_preprocessing``;
``max_length`` defaults to the model's own position limit, and a longer one is capped with a warning.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from zoo import OptionError, ZooError
from zoo_transformers.parts import (
    DEFAULT_POOLING,
    NO_LIMIT,
    POOLINGS,
    SANE_LIMIT,
    LanguageModelHead,
    architecture,
    encoder_only,
    ensure_pad_token,
    lowercases,
    pool,
    position_limit,
    vocabulary_digest,
)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TextBackbone(zoo.Backbone):
    """A transformers text model plus tokenizer; ``encode_text`` returns pooled sentence embeddings."""

    text_preprocessing: zoo.TextPreprocessing

    def __init__(
        self,
        spec: zoo.BackboneSpec,
        weights: Any,
        model: Any,
        tokenizer: Any,
        max_length: int | None = None,
        pooling: str | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(spec, weights)
        self.config: Any = model.config  # the whole model's (an encoder-decoder's encoder keeps a copy of its own)
        kind = architecture(self.config)
        pooling = pooling or DEFAULT_POOLING[kind]
        if pooling not in POOLINGS:
            raise OptionError(f"{spec.name}: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if kind == "encoder-decoder" and hasattr(model, "get_encoder"):
            model = encoder_only(model)
        if kind == "decoder":
            ensure_pad_token(tokenizer, model)
        self.model: Any = model  # a transformers model: its own API beyond nn.Module
        self.tokenizer = tokenizer
        self.architecture = kind
        accepted = inspect.signature(model.forward).parameters
        self.model_inputs = [name for name in MODEL_INPUTS if name in accepted]
        # left padding moves a decoder's positions unless they are given: count real tokens only
        self.count_positions = kind == "decoder" and "position_ids" in accepted
        limit = position_limit(self.config, model, tokenizer)
        if max_length is not None and limit is not None and max_length > limit:
            warnings.warn(
                f"{spec.name}: max_length {max_length} exceeds the model's {limit} positions; using {limit}",
                zoo.PreprocessingWarning,
                stacklevel=3,
            )
        self.text_preprocessing = zoo.TextPreprocessing(
            tokenizer=type(tokenizer).__name__,
            max_length=min(max_length or limit or NO_LIMIT, limit or SANE_LIMIT),
            vocabulary=vocabulary_digest(tokenizer),
            vocab_size=len(tokenizer),
            lowercase=lowercases(tokenizer),
            padding_side=tokenizer.padding_side,
            pooling=pooling,
            normalize=bool(normalize),
            architecture=kind,
            max_positions=limit,
        )

    @property
    def embed_dim(self) -> int:
        return int(self.config.hidden_size)

    @property
    def max_length(self) -> int:
        return self.text_preprocessing.max_length

    @property
    def pretraining_objective(self) -> str:
        """Causal language modelling for decoder-only models, masked-language modelling otherwise."""
        return "causal-lm" if self.architecture == "decoder" else "mlm"

    def tokenize(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """Padded, truncated token tensors for a list of strings (or of (first, second) pairs, which the
        tokenizer joins with its separator, as for next-sentence prediction)."""
        if isinstance(texts, str):
            raise ZooError("encode_text takes a list of strings, got a single string: wrap it in a list")
        items: list[Any] = list(texts)
        pairs = bool(items) and isinstance(items[0], (tuple, list))
        first, second = ([a for a, _ in items], [b for _, b in items]) if pairs else (items, None)
        return dict(
            self.tokenizer(
                first, second, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        )

    def hidden_states(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Last-layer token states [B, T, D] for a tokenised batch."""
        device = next(self.model.parameters()).device
        inputs = {k: batch[k].to(device, non_blocking=True) for k in self.model_inputs if k in batch}
        if self.count_positions:
            inputs["position_ids"] = (inputs["attention_mask"].long().cumsum(dim=1) - 1).clamp(min=0)
        return self.model(**inputs).last_hidden_state

    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.hidden_states(tokens)
        mask = tokens["attention_mask"].to(hidden.device)
        pooled = pool(hidden, mask, self.text_preprocessing.pooling or DEFAULT_POOLING[self.architecture])
        return F.normalize(pooled, dim=-1) if self.text_preprocessing.normalize else pooled

    def blocks(self, tower: str | None = None) -> list[torch.nn.Module]:
        """The transformer layers (BERT's ``encoder.layer``, GPT-2's ``h``, Llama's ``layers``, ...)."""
        return self.repeated_blocks(self.model) if tower in (None, "text") else []

    def set_gradient_checkpointing(self, enabled: bool = True) -> bool:
        if not getattr(self.model, "supports_gradient_checkpointing", False):
            return False
        # transformers 5 renamed it activation checkpointing; the old names warn
        switch_on = getattr(self.model, "activation_checkpointing_enable", None)
        if enabled and switch_on is not None:  # non-reentrant: works with frozen embeddings and with FSDP
            switch_on(activation_checkpointing_kwargs={"use_reentrant": False})
        elif enabled:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            getattr(self.model, "activation_checkpointing_disable", self.model.gradient_checkpointing_disable)()
        return True

    # -- masked-language modelling ----------------------------------------------------
    def masking_vocabulary(self) -> tuple[int, int, list[int]]:
        if self.tokenizer.mask_token_id is None:
            raise ZooError(f"{self.name}: the tokenizer has no mask token, so it cannot do masked-language modelling")
        return int(self.tokenizer.mask_token_id), len(self.tokenizer), list(self.tokenizer.all_special_ids)

    def pretraining_head(self, nsp: bool = False) -> torch.nn.Module:
        """The language-modelling head, decoding with the (tied) input embeddings: BERT's MLM head
        (dense + GELU + LayerNorm), or a bias alone for causal LM (the decoder's last layer norm is
        already applied). ``nsp`` adds BERT's next-sentence classifier on the first token."""
        config, vocab = self.config, len(self.tokenizer)
        if self.pretraining_objective == "causal-lm":
            if nsp:
                raise OptionError(
                    f"{self.name}: next-sentence prediction goes with masked-language modelling; "
                    "a decoder-only model pretrains with causal language modelling alone"
                )
            return LanguageModelHead(vocab)
        eps = getattr(config, "layer_norm_eps", None) or 1e-12
        return LanguageModelHead(vocab, config.hidden_size, eps, next_sentence=nsp)

    def pretrain_loss(
        self, batch: Mapping[str, torch.Tensor], head: torch.nn.Module | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on the predicted positions only: the masked ~15% for MLM, each next real token
        for causal LM (the vocabulary projection, the costliest part, runs on those rows alone). With
        ``next_sentence_label`` in the batch, BERT's next-sentence loss is added."""
        if head is None:
            raise ZooError(f"{self.name}: language-model pretraining needs the head from pretraining_head()")
        hidden = self.hidden_states(batch)
        labels = batch["labels"].to(hidden.device)
        states = hidden
        if self.pretraining_objective == "causal-lm":  # position t predicts token t + 1
            states, labels = hidden[:, :-1], labels[:, 1:]
        rows = labels != -100
        logits = head(states[rows], self.model.get_input_embeddings().weight)
        targets = labels[rows]
        nll = F.cross_entropy(logits.float(), targets, reduction="none")
        loss, outputs = nll.mean(), {"correct": (logits.argmax(-1) == targets).float(), "nll": nll.detach()}
        if "next_sentence_label" in batch:
            is_next = batch["next_sentence_label"].to(hidden.device)
            nsp_logits = head.get_submodule("next_sentence")(hidden[:, 0])
            loss = loss + F.cross_entropy(nsp_logits.float(), is_next)
            outputs["nsp_correct"] = (nsp_logits.argmax(-1) == is_next).float()
        return loss, outputs

    def build_options(self) -> dict[str, Any]:
        return {
            "source": "config",
            "config": self.config.to_dict(),
            "max_length": self.max_length,
            "pooling": self.text_preprocessing.pooling,
            "normalize": self.text_preprocessing.normalize,
        }

    def save_assets(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(directory) / "tokenizer"))

    def adapter_targets(self, tower: str | None = None) -> list[str]:
        """LoRA's default targets: the attention and MLP projections of every layer (each linear layer,
        GPT-2's Conv1D ones too), not the pooler."""
        if tower not in (None, "text"):
            return []
        return [
            f"model.{name}"
            for name, module in self.model.named_modules()
            if (isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D")
            and "pooler" not in name.split(".")
        ]
