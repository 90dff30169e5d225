"""Retrieval metrics, computed in chunks: memory grows with chunk x gallery, never gallery x gallery.

Definitions (printed with every result):
- R@K: the fraction of queries with at least one relevant item among the top K
  (a hit rate, as clip_benchmark reports "recall@K");
- median rank: the median over queries of the rank (1 = best) of the first relevant item;
- mAP: the mean over queries of average precision over all relevant items.
Ties count against the query: a relevant item ranks below every item scored at
least as high, so a constant scorer gets no credit.
"""

from __future__ import annotations

from typing import Sequence

import torch

DEFINITION = ("R@K = fraction of queries with at least one relevant item in the top K; median rank of the first "
              "relevant item; mAP = mean average precision over all relevant items")


def relevant_ranks(queries: torch.Tensor, gallery: torch.Tensor, relevant: Sequence[Sequence[int]],
                   chunk: int = 1024, exclude: Sequence[int] | None = None) -> list[torch.Tensor]:
    """For each query, the 1-based ranks of its relevant gallery items under dot-product scoring.

    ``exclude[i]`` is a gallery index query ``i`` must not retrieve (itself, for text-to-text).
    """
    out: list[torch.Tensor] = []
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk].float() @ gallery.float().T  # [chunk, gallery]
        if exclude is not None:
            rows = torch.arange(scores.shape[0])
            scores[rows, torch.as_tensor(exclude[start:start + chunk])] = float("-inf")
        for row, query in enumerate(range(start, start + scores.shape[0])):
            mine = torch.as_tensor(relevant[query], dtype=torch.long)
            own = scores[row, mine]
            # rank = 1 + number of gallery items scored at least as high, other than the item itself
            ranks = (scores[row].unsqueeze(0) >= own.unsqueeze(1)).sum(dim=1)
            out.append(torch.sort(ranks).values)
    return out


def summarize(ranks: list[torch.Tensor], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K, median rank and mAP from the ranks of each query's relevant items."""
    first = torch.stack([r[0] for r in ranks]).float()
    metrics = {f"R@{k}": float((first <= k).float().mean()) for k in ks}
    metrics["median_rank"] = float(first.median())
    precisions = [float((torch.arange(1, len(r) + 1, dtype=torch.float) / r.float()).mean()) for r in ranks]
    metrics["mAP"] = sum(precisions) / len(precisions)
    return metrics
