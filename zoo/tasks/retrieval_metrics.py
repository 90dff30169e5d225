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

from collections.abc import Sequence

import torch

DEFINITION = (
    "R@K = fraction of queries with at least one relevant item in the top K; median rank of the first "
    "relevant item; mAP = mean average precision over all relevant items"
)


ROWS = 64  # queries compared against the gallery at once (temporaries: ROWS x gallery x 9 bytes)


def relevant_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    relevant: Sequence[Sequence[int]],
    chunk: int = 1024,
    exclude: Sequence[int] | None = None,
) -> list[list[int]]:
    """For each query, the sorted 1-based ranks of its relevant gallery items under dot-product scoring.

    ``exclude[i]`` is a gallery index query ``i`` must not retrieve (itself, for text-to-text).
    """
    out: list[list[int]] = []  # plain lists: 100,000 small tensors would fragment the heap chunk by chunk
    gallery = gallery.float()
    for start in range(0, len(queries), chunk):
        scores = queries[start : start + chunk].float() @ gallery.T  # [chunk, gallery]
        rows = torch.arange(scores.shape[0])
        if exclude is not None:
            scores[rows, torch.as_tensor(exclude[start : start + chunk])] = float("-inf")
        mine = [torch.as_tensor(relevant[q], dtype=torch.long) for q in range(start, start + scores.shape[0])]
        if any(len(m) == 0 for m in mine):
            raise ValueError(f"query {start + next(i for i, m in enumerate(mine) if len(m) == 0)} has no relevant item")
        width = max(len(m) for m in mine)
        padded = torch.stack([torch.cat([m, m[:1].expand(width - len(m))]) for m in mine])  # repeat, never new items
        own = scores.gather(1, padded)  # [chunk, width]
        # rank = number of gallery items scored at least as high as the relevant item (itself included);
        # one relevant column at a time keeps the temporary at chunk x gallery
        ranks = _count_at_least(scores, own)
        out.extend(sorted(row[: len(m)]) for row, m in zip(ranks.tolist(), mine, strict=False))
        del scores, own  # before the next chunk's scores exist: one score matrix alive at a time
    return out


def _count_at_least(scores: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """For each row and each of its ``own`` scores, how many of the row's scores are at least as high;
    a few rows at a time, so the comparison's temporaries stay small."""
    counts = torch.empty(own.shape, dtype=torch.long)
    for row in range(0, len(own), ROWS):
        for j in range(own.shape[1]):
            counts[row : row + ROWS, j] = (scores[row : row + ROWS] >= own[row : row + ROWS, j : j + 1]).sum(dim=1)
    return counts


def summarize(ranks: list[list[int]], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K, median rank and mAP from the sorted ranks of each query's relevant items."""
    first = torch.tensor([r[0] for r in ranks], dtype=torch.float)
    metrics = {f"R@{k}": float((first <= k).float().mean()) for k in ks}
    metrics["median_rank"] = float(first.median())
    precisions = [sum((hit + 1) / rank for hit, rank in enumerate(r)) / len(r) for r in ranks]
    metrics["mAP"] = sum(precisions) / len(precisions)
    return metrics


def random_recall(candidates: int, relevant: int, k: int) -> float:
    """R@K of a random ranking: the chance that ``k`` of ``candidates`` items drawn at random include at
    least one of the ``relevant`` ones (1 - C(n - r, k) / C(n, k))."""
    import math

    if relevant <= 0 or candidates <= 0:
        return 0.0
    k = min(k, candidates)
    return 1.0 - math.comb(candidates - relevant, k) / math.comb(candidates, k)
