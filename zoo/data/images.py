"""The one image input path: pictures are decoded to uint8 tensors (cached for data sets), then the one
transform built from a backbone's `ImagePreprocessing` makes the normalised batch. ``encode_image`` on
PIL images, every task, the measurements and ``zoo compare`` all go through here, so a backbone's
features never depend on which door an image came in by."""

from __future__ import annotations

import math
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
        try:
            with Image.open(image) as opened:
                picture = opened.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image {image} not found") from None
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
            raise DataError(
                f"{image}: not a readable image ({type(exc).__name__}: {exc}); replace or remove it"
            ) from None
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

    if preprocessing.interpolation == "nearest":
        # PIL's nearest (what timm and torchvision resize PIL images with) samples pixel centres, which
        # torch's "nearest" does not: its "nearest-exact" does
        return InterpolationMode.NEAREST_EXACT
    return InterpolationMode(preprocessing.interpolation)


class EvalGeometry:
    """timm's eval geometry (``transforms_imagenet_eval``; open_clip's ``image_transform`` is its
    crop_pct 1.0 case) on uint8 [3, H, W] tensors, step for step: trim the border, resize to the scale
    size ``floor(size / crop_pct)`` as the crop mode says, then centre-crop (padding with ``fill`` for
    "border"). A class, not a closure, so data loader workers can pickle it."""

    def __init__(self, preprocessing: ImagePreprocessing) -> None:
        self.size = list(preprocessing.size)
        self.crop_mode = preprocessing.crop_mode
        self.trim = preprocessing.crop_border_pixels
        self.interpolation = _mode(preprocessing)
        # timm floors size / crop_pct; the 1e-6 keeps 224 / (224 / 232) at 232 where the division lands
        # a hair below it (no timm config is that close to a whole number from below)
        self.scale = [math.floor(side / preprocessing.crop_pct + 1e-6) for side in preprocessing.size]
        fill = preprocessing.fill
        self.fill = list(fill) if fill is not None else [round(255 * value) for value in preprocessing.mean]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        height, width = image.shape[-2:]
        if self.trim:
            height, width = height - 2 * self.trim, width - 2 * self.trim
            if min(height, width) < 1:
                raise DataError(
                    f"an image {width + 2 * self.trim} pixels wide and {height + 2 * self.trim} high "
                    f"has nothing left once {self.trim} border pixels are trimmed"
                )
            image = F.crop(image, self.trim, self.trim, height, width)
        if self.crop_mode == "squash":
            target = self.scale
        elif self.crop_mode == "center" and self.scale[0] == self.scale[1]:
            target = self.scale[:1]  # torchvision's Resize(int): the shorter side, the longer truncated
        else:  # timm's ResizeKeepRatio: cover the scale size (center) or fit inside it (border)
            ratios = (height / self.scale[0], width / self.scale[1])
            ratio = max(ratios) if self.crop_mode == "border" else min(ratios)
            target = [round(height / ratio), round(width / ratio)]
        image = F.resize(image, target, interpolation=self.interpolation, antialias=True)
        if self.crop_mode == "border":
            return _center_crop_or_pad(image, self.size, self.fill)
        return F.center_crop(image, self.size)


def _center_crop_or_pad(image: torch.Tensor, size: list[int], fill: list[int]) -> torch.Tensor:
    """timm's and open_clip's ``center_crop_or_pad``: pad a short side equally (the odd pixel right or
    below) with ``fill``, then crop the centre."""
    from torchvision.transforms.v2 import functional as F

    height, width = image.shape[-2:]
    (crop_height, crop_width), (pad_height, pad_width) = size, (max(0, size[0] - height), max(0, size[1] - width))
    if pad_height or pad_width:
        padding = [pad_width // 2, pad_height // 2, (pad_width + 1) // 2, (pad_height + 1) // 2]
        image = F.pad(image, padding, fill=fill)
        height, width = image.shape[-2:]
    top, left = int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))
    return F.crop(image, top, left, crop_height, crop_width)


def tensor_transform(preprocessing: ImagePreprocessing, train: bool = False, augment: str = "light"):
    """uint8 [3, H, W] -> normalised float tensor: the eval transform, or an augmentation for training.

    Evaluation is `EvalGeometry`: timm's eval transform for ``crop_mode`` center, squash or border,
    with ``crop_pct`` and ``crop_border_pixels`` (open_clip's resize modes are its crop_pct 1.0 cases).
    Training takes no crop mode, as timm's and open_clip's training transforms take none: ``augment``
    "light" is a random resized crop (60-100% of the area) and a mirror; "trivial" adds
    TrivialAugmentWide (one random photometric or geometric operation of random strength per image,
    Müller & Hutter 2021) after the crop, for fine-tunes that overfit the light one.
    """
    from torchvision.transforms import InterpolationMode, v2

    size, mode = list(preprocessing.size), _mode(preprocessing)
    geometry: list[Any]
    if train:
        geometry = [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), interpolation=mode, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
        if augment == "trivial":
            # its shears and rotations are tensor affines, which take nearest or bilinear only
            geometry.append(v2.TrivialAugmentWide(interpolation=InterpolationMode.BILINEAR))
    else:
        geometry = [EvalGeometry(preprocessing)]
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
