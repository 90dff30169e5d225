"""Chunked retrieval evaluation at scale: 100,000 queries x 100,000 gallery items on random embeddings.

    python benchmarks/retrieval_memory.py [--size 100000] [--dim 128] [--chunk 1024]

Prints the wall time and the peak memory the ranking added, beside the bound the chunking
promises (a chunk x gallery score matrix, comparison temporaries for 64 rows, plus about
1 KiB per query for the returned ranks) and beside what a full gallery x gallery matrix would need.
Exits non-zero when the bound is exceeded.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from zoo.tasks.retrieval_metrics import relevant_ranks, summarize


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    gallery = torch.nn.functional.normalize(torch.randn(args.size, args.dim, generator=generator), dim=-1)
    # each query is a noisy copy of its one relevant item (the ranking work is the same whatever the noise)
    queries = torch.nn.functional.normalize(
        gallery + 0.12 * torch.randn(args.size, args.dim, generator=generator), dim=-1
    )
    relevant = [[i] for i in range(args.size)]
    before = peak_rss_mib()
    started = time.perf_counter()
    ranks = relevant_ranks(queries, gallery, relevant, chunk=args.chunk)
    seconds = time.perf_counter() - started
    added = peak_rss_mib() - before
    metrics = summarize(ranks)
    # one chunk x gallery float32 score matrix, the comparison temporaries of 64 rows (a bool and its
    # int64 sum: 9 bytes per item), and about 1 KiB per query for the returned ranks and their objects
    bound = (args.chunk * args.size * 4 + 64 * args.size * 9 + args.size * 1024) / 2**20
    full = args.size * args.size * 4 / 2**20
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.size:,} x {args.size:,}, dim {args.dim}, chunk {args.chunk}: {seconds:.1f} s")
    print(
        f"peak memory added: {added:,.0f} MiB; stated bound {bound:,.0f} MiB; "
        f"a full score matrix would need {full:,.0f} MiB ({full / max(added, 1):.0f}x more)"
    )
    print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if added > bound:
        raise SystemExit(f"peak memory {added:.0f} MiB exceeds the stated bound {bound:.0f} MiB")


if __name__ == "__main__":
    main()
