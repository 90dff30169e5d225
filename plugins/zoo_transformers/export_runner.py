"""Loading an hf export in its target runtime, for `zoo export` to compare with zoo's own outputs.

The runner reads the folder's files only, the way ``zoo-hf.json`` names: sentence-transformers for the
embedding where it reproduces zoo, else transformers and the pooling the README states (written out
here from those words, not taken from zoo); the logits from ``classifier/``, or from the folder's
``...ForSequenceClassification`` where it is one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from zoo import ZooError
from zoo_transformers.export import CLASSIFIER_SCHEMA, ROUTE_FILE, ROUTE_SCHEMA


def hf_runner(directory: str | Path) -> Callable[[str, Any], dict[str, torch.Tensor]]:
    """Load an hf export from its files the way its ``zoo-hf.json`` names (sentence-transformers, or
    transformers and the stated pooling) and return ``run(part, sample)``: the embedding of
    ``sample.texts`` and, with a head, the logits (from ``classifier/``, or the folder's
    ``...ForSequenceClassification`` where it is one)."""
    directory = Path(directory)
    route = zoo.read_json_file(directory / ROUTE_FILE, ROUTE_SCHEMA, "an hf export's zoo-hf.json")
    if route["embedding"] == "sentence-transformers":
        embed = _sentence_transformer(directory)
    else:
        embed = _transformers_encoder(directory, route)
    logits: Callable[[list[str], torch.Tensor], torch.Tensor] | None = None
    if route["sequence_classification"]:
        logits = _sequence_classification(directory, route["sequence_classification"])
    elif route["classifier"]:
        logits = _classifier(directory / route["classifier"])

    def run(part: str, sample: Any) -> dict[str, torch.Tensor]:
        if part != "text":
            raise ZooError(f"an hf export has a text tower only, not {part!r}")
        texts = list(sample.texts)
        out = {"embedding": embed(texts)}
        if logits is not None:
            out["logits"] = logits(texts, out["embedding"])
        return out

    return run


def _quietly(load: Any) -> Any:
    from zoo_transformers.loading import quietly

    return quietly(load)


def _sentence_transformer(directory: Path) -> Callable[[list[str]], torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    model = _quietly(SentenceTransformer)(str(directory), device="cpu", local_files_only=True)

    def embed(texts: list[str]) -> torch.Tensor:
        return model.encode(texts, batch_size=len(texts), convert_to_tensor=True).float().cpu()

    return embed


def _transformers_encoder(directory: Path, route: dict[str, Any]) -> Callable[[list[str]], torch.Tensor]:
    from transformers import AutoTokenizer

    from zoo_transformers.parts import loading_class

    # the class as zoo's own folder loading picks it (a fixed table, else AutoModel), never as a file names it
    model_class = loading_class(directory / "config.json")
    model = _quietly(model_class.from_pretrained)(str(directory), local_files_only=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    accepted = inspect.signature(model.forward).parameters

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**{k: v for k, v in batch.items() if k in accepted}).last_hidden_state
        pooled = _pool(hidden, batch["attention_mask"], route["pooling"])
        return F.normalize(pooled, dim=-1) if route["normalize"] else pooled

    return embed


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The pooling the README states, written out from its words."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = torch.stack([row.nonzero().max() for row in mask])
        return hidden[torch.arange(len(hidden)), last]
    keep = mask.unsqueeze(-1).bool()
    if pooling == "max":
        return hidden.masked_fill(~keep, float("-inf")).amax(dim=1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1)


def _sequence_classification(directory: Path, expected: str) -> Callable[[list[str], torch.Tensor], torch.Tensor]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = _quietly(AutoModelForSequenceClassification.from_pretrained)(str(directory), local_files_only=True)
    if type(model).__name__ != expected:
        raise ZooError(f"{directory} loads as {type(model).__name__}, not the {expected} its zoo-hf.json names")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)

    def logits(texts: list[str], embedding: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.eval()(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits

    return logits


def _classifier(directory: Path) -> Callable[[list[str], torch.Tensor], torch.Tensor]:
    from safetensors.torch import load_file

    config = zoo.read_json_file(directory / "config.json", CLASSIFIER_SCHEMA, "an hf export's classifier config")
    state = load_file(str(directory / "model.safetensors"))
    weight, bias = state["weight"], state["bias"]
    if weight.shape != (len(config["id2label"]), config["in_features"]) or bias.shape != weight.shape[:1]:
        raise ZooError(f"{directory}: the head's tensors do not match its config.json (classes, features)")
    return lambda texts, embedding: F.linear(embedding, weight, bias)
