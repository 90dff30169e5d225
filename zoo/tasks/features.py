"""Frozen features: a backbone's embeddings of a whole split, computed once and cached per exact
weights, preprocessing and data. Images go through the one input path (`zoo.data.images`), so the
features a task computes are the ones ``encode_image`` gives for the same pictures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from zoo.data import fingerprint
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
    return _tensors_digest(sorted(module.state_dict().items()))


def _tensors_digest(named: Sequence[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class _TensorsUsed(TorchFunctionMode):
    """Records every tensor an operation reads while it is active (by identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from torch.utils._pytree import tree_flatten

        for value in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(value, torch.Tensor):
                self.seen.add(id(value))
        return func(*args, **(kwargs or {}))


def tensors_read(compute: Callable[[], Any]) -> set[int]:
    """The identities of every tensor the torch operations of ``compute()`` take (run without autograd)."""
    recorder = _TensorsUsed()
    with torch.inference_mode(), recorder:
        compute()
    return recorder.seen


def used_weights_fingerprint(
    encode: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor, owners: Sequence[nn.Module]
) -> str:
    """A hash of the parameters and buffers of ``owners`` that ``encode`` really reads, found by running
    it once on ``probe`` and watching every tensor its operations take. A plugin's wrapper that keeps
    the weights elsewhere (a tower held outside the module it hands out) is keyed by those weights all
    the same; where nothing is seen (no torch operation reads a weight), every weight of ``owners`` counts."""
    named: dict[int, tuple[str, torch.Tensor]] = {}
    for index, owner in enumerate(owners):
        for name, tensor in [*owner.named_parameters(), *owner.named_buffers()]:
            named.setdefault(id(tensor), (f"{index}.{name}", tensor))
    modes = [owner.training for owner in owners]
    try:
        for owner in owners:
            owner.eval()  # as features are computed; a batch of one in training mode breaks BatchNorm
        seen = tensors_read(lambda: encode(probe))
    finally:
        for owner, mode in zip(owners, modes, strict=True):
            owner.train(mode)
    used = sorted(entry for key, entry in named.items() if key in seen)
    return _tensors_digest(used or sorted(named.values(), key=lambda entry: entry[0]))


def locked_tower_weights(backbone: Any) -> str:
    """The fingerprint of the weights a backbone's locked image tower really runs
    (`used_weights_fingerprint` of its ``frozen_image_encoder().tower.encode_pixels``), whatever module
    the family's `FrozenImageEncoder` hands out: the tower's cached features are keyed by it."""
    frozen = backbone.frozen_image_encoder()
    if frozen is None:
        raise ZooError(f"backbone {backbone.name!r} has no locked image tower")
    probe = torch.zeros(1, 3, *image_preprocessing_of(backbone).size, device=frozen.tower.device)
    return used_weights_fingerprint(frozen.tower.encode_pixels, probe, [backbone, frozen.tower])


def feature_key(
    what: str,
    backbone: Any,
    data: Any,
    split: str,
    preprocessing: Mapping[str, Any] | None,
    weights: str,
    *variant: Any,
) -> str:
    """The cache key of frozen features, derived by the core from everything they depend on: which
    features (``what`` and ``variant``, e.g. mirrored), the data set's fingerprint (reader, options and
    examples) and the split, the preprocessing the inputs went through, the ``weights`` that computed
    them, the adapter the backbone carries, and the runtime (torch on which kind of device)."""
    adapter = backbone.adapter
    described = (
        None
        if adapter is None
        else {"settings": adapter.settings, "targets": adapter.targets, "towers": adapter.towers}
    )
    runtime = {"backend": "torch", "device": backbone.device.type}
    return fingerprint(
        what, backbone.name, data.fingerprint, split, preprocessing, weights, described, runtime, *variant
    )


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
