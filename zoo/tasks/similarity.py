"""Semantic textual similarity: how well the cosine of two texts' embeddings ranks gold similarity scores.

The first thing people measure a sentence encoder by (MTEB's STS tasks). The data is text pairs with a
gold score each (``sentence1``, ``sentence2``, ``score``); nothing is trained: both texts of every pair
are embedded by the frozen backbone and the Spearman and Pearson correlations of the pairs' cosine
similarities with the gold scores are the metrics, computed exactly as MTEB computes them (the
``mteb-sts`` protocol names that procedure in a result; the numbers are the same).

Registered by the core's plugin through ``register_tasks``, exactly as a third-party task would be.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from zoo.data import DataError, fingerprint
from zoo.data.cache import cached
from zoo.tasks.base import Task
from zoo.tasks.batches import tokenized
from zoo.tasks.features import feature_key, text_features, weights_fingerprint
from zoo.tasks.mteb_methods import correlation_scores, pair_cosines


class SemanticSimilarity(Task):
    """Spearman (headline) and Pearson correlation of cosine similarity with gold scores, on text pairs."""

    primary_metric = "cosine_spearman"
    modes: tuple[str, ...] = ("zero-shot",)
    data_kind = "text-pairs"
    option_help: ClassVar[dict[str, str]] = {
        "feature_batch_size": "batch size of the embedding pass (default 64)",
    }

    def __init__(self, backbone, dataset, mode="zero-shot", options=None, spec=None):
        super().__init__(backbone, dataset, mode, options, spec)
        if dataset.kind != self.data_kind:
            raise DataError(f"task {self.name!r} needs text pairs with gold scores; {dataset.name!r} is {dataset.kind}")

    def model(self) -> nn.Module:
        return self.backbone

    def pair_embeddings(self, split: str) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """The frozen embeddings of each pair's first and second text, and the gold scores (cached)."""
        data = self.data.split(split)
        assert data.scores is not None  # a text-pairs split always has them
        first, second = (
            self._embed([a for a, _ in data.inputs], split, 0),
            self._embed([b for _, b in data.inputs], split, 1),
        )
        return first, second, data.scores

    def _embed(self, texts: list[str], split: str, side: int) -> torch.Tensor:
        key = fingerprint(self.data.fingerprint, split, side, self.backbone.preprocessing)
        tokens = tokenized(self.backbone, texts, key)
        weights = weights_fingerprint(self.backbone)
        preprocessing = self.backbone.preprocessing
        features_key = feature_key("pair-features", self.backbone, self.data, split, preprocessing, weights, side)
        batch_size = int(self.options.get("feature_batch_size", 64))
        self.backbone.eval()
        return cached(
            "features",
            features_key,
            lambda: text_features(
                self.backbone.encode_tokens, tokens, self.backbone.device, batch_size, f"embeddings ({split})"
            ),
        )

    def score_split(
        self, model: nn.Module, split: str, device: torch.device
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The correlations, and each pair's cosine and gold score (resampled for the interval)."""
        first, second, gold = self.pair_embeddings(split)
        cosine = pair_cosines(first, second)
        outputs = {"cosine": torch.from_numpy(cosine), "gold": torch.as_tensor(gold, dtype=torch.float64)}
        return correlation_scores(cosine, gold), outputs

    def chance(self, split: str) -> dict[str, float]:
        return {"cosine_spearman": 0.0, "cosine_pearson": 0.0}  # an unrelated similarity correlates by 0

    def save(self, model: nn.Module, directory) -> None:
        """Nothing is trained, so nothing is saved."""

    def restore(self, model: nn.Module, directory) -> None:
        """Nothing to restore."""
