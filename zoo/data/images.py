"""The one image input path: pictures are decoded to uint8 tensors (cached for data sets), then the one
transform built from a backbone's `ImagePreprocessing` makes the normalised batch. ``encode_image`` on
PIL images, every task, the measurements and ``zoo compare`` all go through here, so a backbone's
features never depend on which door an image came in by."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.data.base import DataError, fingerprint
from zoo.data.cache import cached
from zoo.preprocessing import ImagePreprocessing

MAX_SIDE = 512  # decoded images are stored at most this large (PIL's thumbnail); models here take up to 260 px


def decode(image: Any) -> torch.Tensor:
    """A uint8 [3, H, W] tensor from a path, a PIL image or an HxW(xC) array."""
    import numpy as np
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            picture = opened.convert("RGB")
    elif isinstance(image, Image.Image):
        picture = image.convert("RGB")
    else:
        array = np.asarray(image)
        picture = Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, -1)).convert("RGB")
    if max(picture.size) > MAX_SIDE:
        picture.thumbnail((MAX_SIDE, MAX_SIDE))
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).contiguous()


def decode_all(images: Sequence[Any], key: str, on_bad_image: str = "skip") -> tuple[list[torch.Tensor], list[int]]:
    """Decoded images (cached under ``key``) and the indices that decoded; bad ones skipped or fatal."""
    if on_bad_image not in ("skip", "fail"):
        raise DataError(f"on_bad_image must be 'skip' or 'fail', got {on_bad_image!r}")

    def compute() -> dict[str, Any]:
        from tqdm.auto import tqdm

        tensors, kept, bad = [], [], []
        for index, image in enumerate(tqdm(images, desc="decoding images", leave=False, disable=len(images) < 500)):
            try:
                tensors.append(decode(image))
                kept.append(index)
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
                if on_bad_image == "fail":
                    raise DataError(
                        f"cannot read image {image}: {exc} (set on_bad_image: skip to skip such images)"
                    ) from None
                bad.append(f"{image}: {type(exc).__name__}")
        return {"images": tensors, "kept": kept, "bad": bad}

    result = cached("images", fingerprint(key, on_bad_image, MAX_SIDE), compute)
    if result["bad"]:
        warnings.warn(f"skipped {len(result['bad'])} unreadable image(s), first {result['bad'][0]}", stacklevel=2)
    return result["images"], result["kept"]


AUGMENTATIONS = ("light", "trivial")


def _mode(preprocessing: ImagePreprocessing):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(preprocessing.interpolation)


def tensor_transform(preprocessing: ImagePreprocessing, train: bool = False, augment: str = "light"):
    """uint8 [3, H, W] -> normalised float tensor: the eval transform, or an augmentation for training.

    Evaluation resizes the shorter side to ``size / crop_pct`` and centre-crops ``size`` (or, with
    ``crop_mode="squash"``, resizes to ``size`` exactly). ``augment`` "light" is a random resized crop
    (60-100% of the area) and a mirror; "trivial" adds TrivialAugmentWide (one random photometric or
    geometric operation of random strength per image, Müller & Hutter 2021) after the crop, for
    fine-tunes that overfit the light one.
    """
    from torchvision.transforms import InterpolationMode, v2

    size, mode = list(preprocessing.size), _mode(preprocessing)
    if train:
        geometry = [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), interpolation=mode, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
        if augment == "trivial":
            # its shears and rotations are tensor affines, which take nearest or bilinear only
            geometry.append(v2.TrivialAugmentWide(interpolation=InterpolationMode.BILINEAR))
    elif preprocessing.crop_mode == "squash":
        geometry = [v2.Resize(size, interpolation=mode, antialias=True)]
    else:
        shorter_side = int(round(min(size) / preprocessing.crop_pct))  # as timm: resize, then centre-crop
        geometry = [v2.Resize(shorter_side, interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(
        [
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(preprocessing.mean), list(preprocessing.std)),
        ]
    )


def augmentation_transform(preprocessing: ImagePreprocessing):
    """SimCLR's augmentations (random resized crop, flip, colour jitter, grayscale), then normalisation."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(list(preprocessing.size), scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(preprocessing.mean), list(preprocessing.std)),
        ]
    )


def pixel_batch(
    images: Sequence[Any] | torch.Tensor, preprocessing: ImagePreprocessing, flipped: bool = False
) -> torch.Tensor:
    """The normalised [B, 3, H, W] batch of ``images``: PIL images, paths, arrays, or uint8 [3, H, W]
    tensors already decoded; ``flipped`` mirrors them left to right after the transform."""
    transform = tensor_transform(preprocessing)
    decoded = [
        image if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 else decode(image) for image in images
    ]
    batch = torch.stack([transform(image) for image in decoded])
    return batch.flip(-1) if flipped else batch
