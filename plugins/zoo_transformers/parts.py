"""What a text backbone is made of, apart from loading: which architecture a transformers config
describes, the most tokens the model takes, what its tokenizer really does, how token states
become one vector, and the language-model head that pretraining trains."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

POOLINGS = ("mean", "cls", "max", "last")
DEFAULT_POOLING = {"encoder": "mean", "decoder": "last", "encoder-decoder": "mean"}
NO_LIMIT = 512  # max_length of models without a position limit (T5's relative positions) nor a tokenizer's
SANE_LIMIT = 1_000_000  # tokenizers without a limit report int(1e30) as model_max_length
# causal-LM capable but attending both ways in the base model: encoders for zoo's purposes
BIDIRECTIONAL = {"xlnet"}
# architectures whose head zoo drops on loading (it loads the base model): task heads, not language-model heads
TASK_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")
# sentence-transformers' pooling flags before its single pooling_mode, by its mode names
SENTENCE_POOLINGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "lasttoken",
}


def architecture(config: Any) -> str:
    """'encoder', 'decoder' (causal, decoder-only) or 'encoder-decoder', from a transformers config."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    kind = config.model_type
    causal = kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return "decoder" if causal and kind not in BIDIRECTIONAL else "encoder"


def sentence_pooling(config: dict[str, Any]) -> str:
    """zoo's pooling for a sentence-transformers ``1_Pooling/config.json``: its ``pooling_mode`` (current
    releases) or ``pooling_mode_*`` flags (earlier ones, and what zoo's hf export writes)."""
    mode = config.get("pooling_mode")
    modes = [mode] if isinstance(mode, str) else [m for flag, m in SENTENCE_POOLINGS.items() if config.get(flag)]
    return {"cls": "cls", "max": "max", "lasttoken": "last"}.get(modes[0] if modes else "mean", "mean")


def dropped_head(config: Any) -> str | None:
    """For a checkpoint of a task model (``architectures``: ``BertForSequenceClassification``, ...), which
    zoo loads as its base model: what is dropped, e.g. "BertForSequenceClassification checkpoint; its head
    and its 2 labels (negative, positive) are dropped"; None for a base or language model."""
    named = next((name for name in getattr(config, "architectures", None) or [] if name.endswith(TASK_HEADS)), None)
    if named is None:
        return None
    labels = getattr(config, "id2label", None) or {}
    if not named.endswith(("ForSequenceClassification", "ForTokenClassification")) or not labels:
        return f"{named} checkpoint; its head is dropped"
    shown = ", ".join(str(labels[key]) for key in sorted(labels)[:5]) + (", ..." if len(labels) > 5 else "")
    return f"{named} checkpoint; its head and its {len(labels)} labels ({shown}) are dropped"


# encoder-only classes of encoder-decoder architectures: a folder whose config.json names one (as zoo's
# `--to hf` export writes them) is loaded with it; AutoModel would build the whole model and leave the
# decoder random. A fixed table: a file picks among these transformers classes, never beyond.
ENCODER_CLASSES = {
    "T5EncoderModel": ("transformers", "T5EncoderModel"),
    "MT5EncoderModel": ("transformers", "MT5EncoderModel"),
    "UMT5EncoderModel": ("transformers", "UMT5EncoderModel"),
    "BartEncoder": ("transformers.models.bart.modeling_bart", "BartEncoder"),
}


def loading_class(config_file: Any) -> Any:
    """The transformers class to load a folder with: the encoder-only class its config names, else AutoModel."""
    import importlib

    from transformers import AutoModel

    try:
        named = json.loads(config_file.read_text()).get("architectures") or []
    except (OSError, ValueError):
        return AutoModel  # AutoModel's own reading says what is wrong
    found = next((ENCODER_CLASSES[name] for name in named if name in ENCODER_CLASSES), None)
    return getattr(importlib.import_module(found[0]), found[1]) if found else AutoModel


def encoder_only(model: Any) -> torch.nn.Module:
    """The encoder of an encoder-decoder model (T5's stack, BART's encoder); the decoder is dropped."""
    return model.get_encoder()


def position_limit(config: Any, model: Any, tokenizer: Any) -> int | None:
    """The most tokens the model takes: its learned positions (less RoBERTa's padding offset) or the
    tokenizer's own limit, whichever is lower; None for models with neither (relative positions)."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = getattr(getattr(model, "embeddings", None), "padding_idx", None)  # RoBERTa counts from pad + 1
        limits.append(positions - (offset + 1 if isinstance(offset, int) else 0))
    if 0 < getattr(tokenizer, "model_max_length", 0) < SANE_LIMIT:
        limits.append(int(tokenizer.model_max_length))
    return min(limits) if limits else None


def lowercases(tokenizer: Any) -> bool:
    """Whether the tokenizer really lowercases: upper and lower case give the same tokens."""
    return tokenizer.tokenize("Hello World THE") == tokenizer.tokenize("hello world the")


def ensure_pad_token(tokenizer: Any, model: Any) -> None:
    """Decoder tokenizers often have no pad token: use the end-of-text token (GPT-2's habit), else add one."""
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        model.resize_token_embeddings(len(tokenizer))


def vocabulary_digest(tokenizer: Any) -> str:
    """A short hash of the token -> id table: two tokenizers of one class and size still differ by it
    (it keys the token cache and names the tokenizer in provenance)."""
    table = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return hashlib.sha256(table).hexdigest()[:12]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[B, D] from token states [B, T, D] and the attention mask [B, T]: the first token (cls), the mean
    or max over real tokens, or the last real token, wherever the padding is."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.long() * positions).argmax(dim=1)  # the highest position holding a real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # shape: traceable
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "max":
        return hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class LanguageModelHead(torch.nn.Module):
    """Predicts tokens from token states, decoding with the model's own input embeddings (tied).

    With ``hidden_size``, BERT's MLM transform (dense + GELU + LayerNorm) comes first; with
    ``next_sentence``, BERT's next-sentence classifier (dense + tanh pooler, then 2 classes).
    """

    def __init__(
        self, vocab_size: int, hidden_size: int | None = None, eps: float = 1e-12, next_sentence: bool = False
    ) -> None:
        super().__init__()
        self.transform: torch.nn.Module = torch.nn.Identity()
        if hidden_size is not None:
            self.transform = torch.nn.Sequential(
                torch.nn.Linear(hidden_size, hidden_size), torch.nn.GELU(), torch.nn.LayerNorm(hidden_size, eps=eps)
            )
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))
        if next_sentence:
            if hidden_size is None:
                raise ValueError("next-sentence prediction needs hidden_size")
            self.next_sentence = torch.nn.Sequential(
                torch.nn.Linear(hidden_size, hidden_size), torch.nn.Tanh(), torch.nn.Linear(hidden_size, 2)
            )

    def forward(self, hidden: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.transform(hidden) @ embeddings.T + self.bias
