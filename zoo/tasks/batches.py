"""Batches of token and image tensors, as the tasks build them: tokenising with a cache, dropping
unused padding, and moving nested batches to a device."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from zoo.data.cache import cached
from zoo.errors import PreprocessingWarning


def tokenized(backbone: Any, texts: list[Any], key: str) -> dict[str, torch.Tensor]:
    """Token tensors of ``texts`` (cached under ``key``), with a warning that counts the texts
    cut at the backbone's ``max_length``."""
    tokens = cached("tokens", key, lambda: dict(backbone.tokenize(texts)))
    preprocessing = backbone.text_preprocessing
    limit = preprocessing.max_length if preprocessing is not None else None
    if limit and "attention_mask" in tokens:
        cut = int((tokens["attention_mask"].sum(dim=1) >= limit).sum())
        if cut:
            warnings.warn(
                f"{cut} of {len(texts)} texts fill max_length={limit} tokens; anything longer was truncated "
                "(raise model_options.max_length to keep more)",
                PreprocessingWarning,
                stacklevel=2,
            )
    return tokens


def trim(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns no row of the batch uses (on the right, or on the left for tokenizers
    that pad there); per-example values (a label per row) pass as they are."""
    if "attention_mask" not in batch:
        return dict(batch)
    used = batch["attention_mask"].any(dim=0).nonzero()
    if not len(used):
        return dict(batch)
    first, last = int(used[0]), int(used[-1]) + 1
    return {k: v[:, first:last] if v.ndim == 2 else v for k, v in batch.items()}


class Rows:
    """Row ``i`` of a dict of [N, L] tensors, as a dict of [L] tensors."""

    def __init__(self, columns: Mapping[str, torch.Tensor]):
        self.columns = columns

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.columns.items()}


def stack_rows(rows: list[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One trimmed batch from token rows."""
    return trim({k: torch.stack([row[k] for row in rows]) for k in rows[0]})


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors in dicts, lists and tuples) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        if device.type == "cuda" and batch.device.type == "cpu":  # a copy from pageable memory waits for the GPU
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
