"""Self-supervised and contrastive objectives, shared by the tasks and by families' ``pretrain_loss``.

Plain functions on tensors, with no model library in sight, so a plugin's
objective can reuse them: symmetric InfoNCE (CLIP), NT-Xent (SimCLR) with its
projector, the BERT masking rule for masked-language modelling, and the gather
that gives a contrastive loss the whole global batch under ``torchrun``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from zoo.errors import InputError

MAX_LOGIT_SCALE = 4.6052  # log(100), CLIP's clamp on the learned temperature
IGNORE_INDEX = -100  # label of positions that do not count (F.cross_entropy's default ignore_index)


def _at_least_two(count: int) -> None:
    if count < 2:
        raise InputError(
            "a contrastive loss needs at least 2 pairs per batch (the other pairs are its negatives); raise batch_size"
        )


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs (row i of ``a`` goes with row i of ``b``)."""
    _at_least_two(len(a))
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * a @ b.T
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits.float(), labels) + F.cross_entropy(logits.T.float(), labels)) / 2


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR's NT-Xent: each of the 2N views must pick its partner among the other 2N - 1.

    Returns the loss and, per view, whether its partner was the most similar (top-1 accuracy).
    """
    _at_least_two(len(z1))
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own negative
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partner), similarity.argmax(dim=1) == partner


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: ``probability`` of the maskable tokens are chosen; of those 80% become ``mask_id``,
    10% a random token, 10% stay. Returns (inputs, labels), labels -100 where nothing is predicted."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & maskable
    if maskable.any() and not chosen.any():  # a short text still teaches something
        candidates = maskable.nonzero()
        pick = candidates[torch.randint(len(candidates), (1,), generator=generator)]
        chosen[tuple(pick.T)] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    draw = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (draw < 0.8)] = mask_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    inputs[randomised] = torch.randint(vocab_size, input_ids.shape, generator=generator)[randomised]
    return inputs, labels


def maskable_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: Sequence[int]
) -> torch.Tensor:
    """True at real (unpadded) tokens that are not special tokens such as [CLS] and [SEP]."""
    special = torch.isin(input_ids, torch.tensor(list(special_ids), dtype=input_ids.dtype))
    return attention_mask.bool() & ~special


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` from every process, concatenated in rank order, with gradients flowing back to each
    process's own rows (a contrastive loss then sees the whole global batch as negatives, as in one
    process). Processes may hold different numbers of rows. Outside torchrun, ``x`` itself."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    size = torch.tensor([len(x)], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(sizes))
    padded = torch.cat([x, x.new_zeros(longest - len(x), *x.shape[1:])])  # all_gather needs equal shapes
    return torch.cat([part[: int(n)] for part, n in zip(all_gather(padded), sizes, strict=False)])


def simclr_projector(width: int) -> torch.nn.Module:
    """SimCLR's projection head: embedding -> 512 -> ReLU -> 128 (the loss sees its output)."""
    return torch.nn.Sequential(torch.nn.Linear(width, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128))


def simclr_loss(
    encode: Callable[[torch.Tensor], torch.Tensor], head: torch.nn.Module, views: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NT-Xent on the projected embeddings of two augmented views of each image, and per view whether
    it found its partner (``correct``)."""
    view1, view2 = views
    z1, z2 = head(encode(torch.cat([view1, view2]))).chunk(2)
    loss, correct = nt_xent(gather_with_grad(z1), gather_with_grad(z2), temperature=0.2)
    return loss, {"correct": correct.float()}
