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
    gallery = gallery.float()
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk].float() @ gallery.T  # [chunk, gallery]
        rows = torch.arange(scores.shape[0])
        if exclude is not None:
            scores[rows, torch.as_tensor(exclude[start:start + chunk])] = float("-inf")
        mine = [torch.as_tensor(relevant[q], dtype=torch.long) for q in range(start, start + scores.shape[0])]
        if any(len(m) == 0 for m in mine):
            raise ValueError(f"query {start + next(i for i, m in enumerate(mine) if len(m) == 0)} has no relevant item")
        width = max(len(m) for m in mine)
        padded = torch.stack([torch.cat([m, m[:1].expand(width - len(m))]) for m in mine])  # repeat, never new items
        own = scores.gather(1, padded)  # [chunk, width]
        # rank = number of gallery items scored at least as high as the relevant item (itself included);
        # one relevant column at a time keeps the temporary at chunk x gallery
        ranks = torch.stack([(scores >= own[:, j:j + 1]).sum(dim=1) for j in range(width)], dim=1)
        out.extend(torch.sort(ranks[i, :len(m)]).values for i, m in enumerate(mine))
    return out


def summarize(ranks: list[torch.Tensor], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K, median rank and mAP from the ranks of each query's relevant items."""
    first = torch.stack([r[0] for r in ranks]).float()
    metrics = {f"R@{k}": float((first <= k).float().mean()) for k in ks}
    metrics["median_rank"] = float(first.median())
    precisions = [float((torch.arange(1, len(r) + 1, dtype=torch.float) / r.float()).mean()) for r in ranks]
    metrics["mAP"] = sum(precisions) / len(precisions)
    return metrics
