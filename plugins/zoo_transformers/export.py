"""`zoo export --to hf`: a text backbone as a folder that plain ``transformers`` and
``sentence-transformers`` load, with zoo's pooling and normalisation and a classification run's head.

The folder holds the base model (``config.json`` naming its class, unprefixed ``model.safetensors``)
and its tokenizer, which pads and cuts texts as zoo does. The embedding is read one of two ways,
whichever reproduces zoo exactly, and ``zoo-hf.json`` records which (the runner follows it):

- sentence-transformers (``modules.json``, ``1_Pooling``, ``2_Normalize``): encoders, decoders (the
  tokenizer pads right: zoo counts a decoder's positions over real tokens, which right padding gives
  without position ids) and the encoder-decoder families whose encoder class sentence-transformers
  loads for their config (T5 as ``T5EncoderModel``);
- plain transformers and the pooling the README states, where sentence-transformers would compute
  something else: BART (it loads ``BartModel`` and pools the decoder's states; zoo keeps
  ``BartEncoder`` alone), or first-token pooling with left padding.

A head goes to ``classifier/`` (``weight``, ``bias`` over the embedding; ``id2label``) and, where a
transformers ``...ForSequenceClassification`` computes exactly zoo's logits, into the folder itself.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo import ZooError

ROUTE_FILE = "zoo-hf.json"
CLASSIFIER = "classifier"
ROUTE_SCHEMA = {
    "type": "object",
    "required": ["embedding", "model_class", "pooling", "normalize", "classifier", "sequence_classification"],
    "properties": {
        "embedding": {"enum": ["sentence-transformers", "transformers"]},
        "model_class": {"type": "string", "pattern": r"^transformers\.[A-Za-z0-9_.]+$"},
        "pooling": {"enum": ["mean", "cls", "max", "last"]},
        "normalize": {"type": "boolean"},
        "classifier": {"type": ["string", "null"], "enum": [CLASSIFIER, None]},
        "sequence_classification": {"type": ["string", "null"]},
    },
}
CLASSIFIER_SCHEMA = {
    "type": "object",
    "required": ["in_features", "out_features", "id2label"],
    "properties": {"id2label": {"type": "object", "additionalProperties": {"type": "string"}}},
}
# Encoder classes of encoder-decoder families that sentence-transformers loads for their config (its
# _ENCODER_ONLY_MODELS as of 6.3; the parity check catches a release that differs);
# for any other family (BART, mBART, ...) it loads the whole model and would pool the decoder's states.
SENTENCE_TRANSFORMERS_ENCODERS = {
    "T5EncoderModel",
    "MT5EncoderModel",
    "UMT5EncoderModel",
    "LongT5EncoderModel",
    "SwitchTransformersEncoderModel",
    "PegasusEncoder",
    "PegasusXEncoder",
    "MarianEncoder",
    "M2M100Encoder",
    "BlenderbotEncoder",
    "BlenderbotSmallEncoder",
}
POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "last": "pooling_mode_lasttoken",
}
POOLING_WORDS = {
    "mean": "the mean of the token states over the attention mask",
    "cls": "the first token's state",
    "max": "the per-dimension maximum of the token states over the attention mask",
    "last": "the state of the last real token (the last position the attention mask keeps)",
}


def write_hf(backbone: Any, head: Any, directory: str | Path) -> dict[str, Any]:
    """Write ``backbone`` (a transformers text backbone) and ``head`` (a `zoo.ClassifierHead` or None)
    into ``directory`` as a Hugging Face folder; return the README's lines on how to load it and the
    model card's library and pipeline: text-classification only where transformers' sequence
    classification computes the head's logits, else the embedding's (sentence-similarity through
    sentence-transformers, or feature-extraction), never a pipeline that would load a random head."""
    from zoo_transformers.loading import quietly

    return quietly(_write_hf)(backbone, head, directory)  # no "Writing model shards" bars


def _card(route: dict[str, Any]) -> dict[str, str]:
    """The model card's ``library_name`` and ``pipeline_tag`` for the folder ``route`` describes."""
    if route["sequence_classification"]:
        return {"library_name": "transformers", "pipeline_tag": "text-classification"}
    if route["embedding"] == "sentence-transformers":
        return {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity"}
    return {"library_name": "transformers", "pipeline_tag": "feature-extraction"}


def _write_hf(backbone: Any, head: Any, directory: str | Path) -> dict[str, Any]:
    from zoo_transformers.model import TextBackbone

    if not isinstance(backbone, TextBackbone):
        raise ZooError(
            f"--to hf writes text backbones of the transformers family; {backbone.name} (plugin "
            f"{backbone.spec.plugin}) is not one: --to onnx and --to pt2 take any backbone, or use its family's format"
        )
    directory = Path(directory)
    preprocessing = backbone.text_preprocessing
    pooling, normalize = preprocessing.pooling or "mean", bool(preprocessing.normalize)
    model = standalone_model(backbone)
    padding = "right" if backbone.count_positions else backbone.tokenizer.padding_side
    sentence_transformers, why_not = _sentence_transformers_exact(backbone, model, pooling, padding)
    sequence, not_sequence = (None, "") if head is None else sequence_classifier(backbone, head)
    with _config_of(sequence or model, backbone) as saved:
        saved.save_pretrained(str(directory))
    _save_tokenizer(backbone.tokenizer, directory, padding=padding, max_length=backbone.max_length)
    if sentence_transformers:
        _write_sentence_layout(directory, backbone.embed_dim, pooling, normalize, backbone.max_length)
    if head is not None:
        _write_classifier(head, directory / CLASSIFIER)
    route = {
        "embedding": "sentence-transformers" if sentence_transformers else "transformers",
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "pooling": pooling,
        "normalize": normalize,
        "classifier": CLASSIFIER if head is not None else None,
        "sequence_classification": type(sequence).__name__ if sequence is not None else None,
    }
    (directory / ROUTE_FILE).write_text(json.dumps(route, indent=2) + "\n")
    notes = _notes(backbone, model, route, why_not, not_sequence, head, padding)
    return {"notes": notes, "card": _card(route)}


def standalone_model(backbone: Any) -> Any:
    """The transformers model to save: the base model itself, or for an encoder-decoder whose encoder
    alone zoo runs, the family's encoder model (``T5EncoderModel``) or its encoder class (``BartEncoder``)
    holding the encoder's weights. The decoder is not there: zoo dropped it when loading."""
    from transformers import PreTrainedModel

    encoder = backbone.model
    if backbone.architecture != "encoder-decoder":
        return encoder
    wrapper_class = _encoder_model_class(backbone.config)
    if wrapper_class is not None:
        wrapper = wrapper_class(copy.deepcopy(backbone.config))  # it edits the config it is given
        wrapper.get_encoder().load_state_dict(encoder.state_dict())
        wrapper.set_input_embeddings(wrapper.get_encoder().get_input_embeddings())
        return wrapper.eval()
    if isinstance(encoder, PreTrainedModel):
        return encoder
    raise ZooError(
        f"--to hf: {backbone.name}'s encoder ({type(encoder).__name__}) is not a model transformers can save "
        "on its own; export it --to onnx or --to pt2"
    )


def _encoder_model_class(config: Any) -> Any:
    """transformers' ``<Family>EncoderModel`` for the config's family (T5, mT5, UMT5, ...), or None."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    base = MODEL_MAPPING_NAMES.get(config.model_type)
    if not isinstance(base, str) or not base.endswith("Model"):
        return None
    return getattr(transformers, f"{base[: -len('Model')]}EncoderModel", None)


def _sentence_transformers_exact(backbone: Any, model: Any, pooling: str, padding: str) -> tuple[bool, str]:
    """Whether sentence-transformers, loading the folder, computes zoo's embedding; if not, why."""
    name = type(model).__name__
    if backbone.architecture == "encoder-decoder" and name not in SENTENCE_TRANSFORMERS_ENCODERS:
        return False, (
            f"sentence-transformers loads a {backbone.config.model_type} folder as the whole encoder-decoder model "
            f"and would pool its decoder's states, not {name}'s"
        )
    if pooling == "cls" and padding == "left":
        return False, (
            "the tokenizer pads left, where sentence-transformers' cls pooling takes the first real token and zoo "
            "the first position"
        )
    return True, ""


def sequence_classifier(backbone: Any, head: Any) -> tuple[Any, str]:
    """A transformers ``...ForSequenceClassification`` model holding the backbone and ``head``, where that
    class computes exactly the head's logits over zoo's embedding; else None and why not.

    A decoder's class scores the last non-pad token with a linear layer without bias, so it matches only
    last-token pooling without normalisation and a head whose bias is zero; the other families' classes
    add their own pooler or transform (BERT: tanh(dense) of the first token)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    config, preprocessing = backbone.config, backbone.text_preprocessing
    name = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.get(config.model_type)
    if not isinstance(name, str):
        return None, f"transformers has no sequence-classification class for {config.model_type}"
    if backbone.architecture != "decoder":
        return (
            None,
            f"{name} pools and transforms the token states its own way, not by zoo's {preprocessing.pooling} pooling",
        )
    reasons = []
    if preprocessing.pooling != "last":
        reasons.append(f"{name} scores the last token and zoo pools by {preprocessing.pooling}")
    if preprocessing.normalize:
        reasons.append("zoo normalises the embedding before the head")
    if bool(head.bias.any()):
        reasons.append(f"the head has a bias and {name}'s score layer has none")
    pad = backbone.tokenizer.pad_token_id
    if backbone.tokenizer("ok")["input_ids"][-1] == pad:
        reasons.append(f"the tokenizer ends texts with its pad token, which {name} skips")
    if reasons:
        return None, "; ".join(reasons)
    labels = dict(enumerate(head.label_names))
    settings = {"num_labels": head.num_classes, "id2label": labels, "pad_token_id": pad}
    model = AutoModelForSequenceClassification.from_config(_config_copy(config, **settings), dtype=torch.float32)
    model.base_model.load_state_dict(backbone.model.state_dict())
    prefix = f"{model.base_model_prefix}."
    own = [p for n, p in model.named_parameters() if not n.startswith(prefix)]
    if len(own) != 1 or own[0].shape != head.weight.shape:
        return None, f"{name}'s classifier is not one linear map without bias"
    with torch.no_grad():
        own[0].copy_(head.weight)
    return model.eval(), ""


def _config_copy(config: Any, **settings: Any) -> Any:
    copied = copy.deepcopy(config)
    for key, value in settings.items():
        setattr(copied, key, value)
    if "id2label" in settings:
        copied.label2id = {label: index for index, label in settings["id2label"].items()}
    return copied


@contextmanager
def _config_of(model: Any, backbone: Any) -> Iterator[Any]:
    """``model`` with a copy of its config while it is saved: ``save_pretrained`` writes its class into
    ``architectures``, which must not change the backbone's own config. A decoder's pad token (zoo sets
    one where the tokenizer has none) goes into the copy."""
    original = model.config
    settings = {}
    if backbone.architecture == "decoder" and original.pad_token_id is None:
        settings["pad_token_id"] = backbone.tokenizer.pad_token_id
    model.config = _config_copy(original, **settings)
    try:
        yield model
    finally:
        model.config = original


def _save_tokenizer(tokenizer: Any, directory: Path, padding: str, max_length: int) -> None:
    """The tokenizer as zoo uses it (its pad token), padding on ``padding`` and cutting at ``max_length``."""
    kept = tokenizer.padding_side, tokenizer.model_max_length
    tokenizer.padding_side, tokenizer.model_max_length = padding, max_length
    try:
        tokenizer.save_pretrained(str(directory))
    finally:
        tokenizer.padding_side, tokenizer.model_max_length = kept


def _write_sentence_layout(directory: Path, dim: int, pooling: str, normalize: bool, max_length: int) -> None:
    """modules.json, sentence_bert_config.json, 1_Pooling and 2_Normalize, in the layout every
    sentence-transformers release reads (module types by their long-standing names)."""
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = ["", "1_Pooling", "2_Normalize"]
    modules = [
        {"idx": i, "name": str(i), "path": paths[i], "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(kinds)
    ]
    _write_json(directory / "modules.json", modules)
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    flags = {flag: mode == pooling for mode, flag in POOLING_FLAGS.items()}
    _write_json(directory / "1_Pooling" / "config.json", {"word_embedding_dimension": dim, **flags})
    if normalize:
        _write_json(directory / "2_Normalize" / "config.json", {})


def _write_classifier(head: Any, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weight, bias = head.weight.detach().float().contiguous(), head.bias.detach().float().contiguous()
    save_file({"weight": weight.clone(), "bias": bias.clone()}, str(directory / "model.safetensors"))
    labels = {str(i): name for i, name in enumerate(head.label_names)}
    config = {
        "in_features": int(weight.shape[1]),
        "out_features": head.num_classes,
        "input": "the sentence embedding (after pooling and normalisation)",
        "id2label": labels,
        "label2id": {name: i for i, name in enumerate(head.label_names)},
    }
    _write_json(directory / "config.json", config)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def _notes(
    backbone: Any, model: Any, route: dict[str, Any], why_not: str, not_sequence: str, head: Any, padding: str
) -> list[str]:
    """The README's lines: which class loads the folder, how the embedding is made, which route reproduces
    zoo, and where the head is."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name, pooling = type(model).__name__, route["pooling"]
    where = "transformers" if hasattr(transformers, name) else type(model).__module__
    auto = MODEL_MAPPING_NAMES.get(backbone.config.model_type)
    what = {
        "encoder": "encoder",
        "decoder": "decoder-only model",
        "encoder-decoder": "encoder alone: zoo runs and trains the encoder only, and the decoder is not in this folder",
    }[backbone.architecture]
    lines = [
        f"- Model: `{name}`, the {what}. Plain transformers loads it with `{name}.from_pretrained(DIR)` "
        f"(`from {where} import {name}`)"
        + (
            "; `AutoModel.from_pretrained(DIR)` gives the same model."
            if auto == name
            else f", not with `AutoModel`, which would build `{auto}`."
        )
        + " The tokenizer: `AutoTokenizer.from_pretrained(DIR)`.",
        f"- Embedding (what zoo's `encode_text` returns): {POOLING_WORDS[pooling]}"
        + (", then L2-normalised" if route["normalize"] else "")
        + f"; the tokenizer cuts texts at {backbone.max_length} tokens and pads on the {padding}.",
    ]
    if padding != backbone.tokenizer.padding_side:
        lines.append(
            "- zoo pads this decoder on the left and counts positions over real tokens only; padding on the right "
            "gives the same vectors without position ids, so the tokenizer here pads right."
        )
    if route["embedding"] == "sentence-transformers":
        modules = ", ".join(["Transformer", f"Pooling ({pooling})"] + (["Normalize"] if route["normalize"] else []))
        lines.append(f"- sentence-transformers reproduces it: `SentenceTransformer(DIR).encode(texts)` ({modules}).")
    else:
        lines.append(
            f"- sentence-transformers does not reproduce it ({why_not}), so no sentence-transformers files are "
            f"written: load `{name}` and pool as stated."
        )
    if head is None:
        return lines
    lines.append(
        f"- Head: `{CLASSIFIER}/` holds the {head.num_classes}-class head over that embedding: "
        f"`logits = embedding @ weight.T + bias` (`{CLASSIFIER}/model.safetensors`), class names in "
        f"`{CLASSIFIER}/config.json` (`id2label`)."
    )
    sequence = route["sequence_classification"]
    if sequence:
        lines.append(
            f"- `AutoModelForSequenceClassification.from_pretrained(DIR)` loads this folder as `{sequence}`, head "
            f"and labels (`config.id2label`), and computes the same logits (a text ending in the pad token "
            f"{backbone.tokenizer.pad_token!r} would be scored at an earlier token)."
        )
    else:
        lines.append(
            f"- No `AutoModelForSequenceClassification` form: it would not compute zoo's logits ({not_sequence}); "
            f"use the embedding and `{CLASSIFIER}/`. So this card's `pipeline_tag` is "
            f'`{_card(route)["pipeline_tag"]}`, not `text-classification`: `pipeline("text-classification", DIR)` '
            "and `AutoModelForSequenceClassification.from_pretrained(DIR)` would put a new, random classifier on "
            "this model."
        )
    return lines
