"""Frozen features: a backbone's embeddings of a whole split, computed once and cached per exact
weights, preprocessing and data. Images go through the one input path (`zoo.data.images`), so the
features a task computes are the ones ``encode_image`` gives for the same pictures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from zoo.data.images import pixel_batch
from zoo.errors import ZooError
from zoo.preprocessing import ImagePreprocessing
from zoo.tasks.batches import to_device, trim


def image_preprocessing_of(backbone: Any) -> ImagePreprocessing:
    """``backbone``'s image preprocessing; a one-line error for a backbone without an image encoder."""
    if backbone.image_preprocessing is None:
        raise ZooError(f"backbone {backbone.name!r} is a {backbone.modality} backbone: it has no image encoder")
    return cast(ImagePreprocessing, backbone.image_preprocessing)


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of every parameter and buffer: features are cached per exact weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def image_features(
    encode: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[torch.Tensor],
    preprocessing: ImagePreprocessing,
    device: torch.device,
    batch_size: int = 64,
    flipped: bool = False,
    desc: str | None = None,
) -> torch.Tensor:
    """[N, D] float32 embeddings (on the CPU) of decoded uint8 images through ``preprocessing``'s eval
    transform, ``batch_size`` at a time without autograd; ``flipped`` mirrors every image first."""
    from tqdm.auto import tqdm

    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, disable=desc is None):
            pixels = pixel_batch(images[start : start + batch_size], preprocessing, flipped)
            out.append(encode(pixels.to(device)).float().cpu())
    return torch.cat(out)  # outside inference mode: the features can train a head


def text_features(
    encode: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    tokens: dict[str, torch.Tensor],
    device: torch.device,
    batch_size: int = 64,
    desc: str | None = None,
) -> torch.Tensor:
    """[N, D] float32 embeddings of token rows; they go in order of length, so a batch pads to similar
    lengths (about 2x fewer tokens on SST-2), and come back in their own order."""
    from tqdm.auto import tqdm

    count = len(tokens["input_ids"])
    order = torch.argsort(tokens["attention_mask"].sum(1)) if "attention_mask" in tokens else torch.arange(count)
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, count, batch_size), desc=desc, leave=False, disable=desc is None):
            rows = order[start : start + batch_size]
            out.append(encode(to_device(trim({k: v[rows] for k, v in tokens.items()}), device)).float().cpu())
    features = torch.empty(count, out[0].shape[1])
    features[order] = torch.cat(out)
    return features
