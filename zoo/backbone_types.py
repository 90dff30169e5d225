"""The typed values a `Backbone` hands out besides embeddings, and the eval-mode context it encodes in.

Kept apart from `zoo.backbone` so the contract's class stays readable; `zoo.backbone` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.backbone import Backbone

__all__ = ["FrozenImageEncoder", "PretrainedClasses", "evaluating"]


@dataclass(frozen=True)
class FrozenImageEncoder:
    """A CLIP-style backbone's locked image tower, seen as two steps, so a task can compute the tower's
    features once (they never change) and train only what comes after: ``embed(tower.encode_pixels(x))``
    equals the backbone's ``encode_pixels(x)``."""

    tower: Backbone
    embed: Callable[[torch.Tensor], torch.Tensor]  # tower features -> the backbone's image embedding


@dataclass(frozen=True)
class PretrainedClasses:
    """The classes of a backbone's pretrained classifier, in the order of ``classify_pixels``'s logits."""

    label_set: str  # what the classes are, e.g. "ImageNet-1k"
    ids: tuple[str, ...]  # unique identities, e.g. WordNet ids ("n01440764")
    names: tuple[str, ...]  # human names, synonyms comma-separated ("tench, Tinca tinca")

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "names", tuple(self.names))
        if not self.ids or len(self.ids) != len(self.names):
            raise ZooError(f"pretrained classes need one name per id; got {len(self.ids)} ids, {len(self.names)} names")

    def __len__(self) -> int:
        return len(self.ids)


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the block; the caller's mode comes back after."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        module.train(was_training)
