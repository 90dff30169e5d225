"""Typed preprocessing: what turns an image or a text into the tensors a backbone's weights expect.

Like timm's ``PretrainedCfg`` and torchvision's ``Weights.transforms``, the preprocessing is data that
travels with the weights: a `Weights` entry declares it, a loaded `Backbone` carries it, ``zoo.json``
records it and loading checks it. Both types are frozen, validated dataclasses; the one transform
that every image goes through is built from `ImagePreprocessing` by `zoo.data.images`, and texts go
through the family's tokenizer as `TextPreprocessing` describes it.

Nothing here imports torch: specs are metadata, and listing stays light.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from zoo.errors import SpecError, ZooError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_MODES = ("center", "squash")  # resize the shorter side then centre-crop, or resize to the size exactly
POOLINGS = ("mean", "cls", "max", "last", "eot")  # eot: the end-of-text token (CLIP's text towers)


def _number_tuple(owner: str, name: str, value: Any, length: int, kind: type) -> tuple:
    try:
        items = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(f"{owner}: {name} must be {length} numbers, got {value!r}") from None
    if len(items) != length:
        raise SpecError(f"{owner}: {name} must be {length} numbers, got {value!r}")
    return items


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a picture becomes the [3, H, W] tensor the weights were trained on.

    Evaluation: resize the shorter side to ``size / crop_pct`` and take the centre ``size`` crop
    (``crop_mode="center"``, timm's and torchvision's rule), or resize to ``size`` exactly
    (``"squash"``); then scale to [0, 1] and normalise with ``mean`` and ``std``.
    """

    size: tuple[int, int]  # (height, width) the model takes (an int given here means a square)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest
    crop_pct: float = 1.0  # share of the resized image the centre crop keeps
    crop_mode: str = "center"  # center | squash
    fixed_size: bool = False  # position embeddings fix the size: another one is refused

    def __post_init__(self) -> None:
        owner = "image preprocessing"
        size = (self.size, self.size) if isinstance(self.size, int) else self.size
        size = _number_tuple(owner, "size", size, 2, int)
        if min(size) < 1:
            raise SpecError(f"{owner}: size must be positive, got {self.size!r}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", _number_tuple(owner, "mean", self.mean, 3, float))
        object.__setattr__(self, "std", _number_tuple(owner, "std", self.std, 3, float))
        if min(self.std) <= 0:
            raise SpecError(f"{owner}: std must be positive, got {self.std!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise SpecError(
                f"{owner}: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.crop_mode not in CROP_MODES:
            raise SpecError(f"{owner}: crop_mode must be one of {', '.join(CROP_MODES)}, got {self.crop_mode!r}")
        crop = float(self.crop_pct)
        if not 0 < crop <= 1:
            raise SpecError(f"{owner}: crop_pct must lie in (0, 1], got {self.crop_pct!r}")
        object.__setattr__(self, "crop_pct", crop)
        object.__setattr__(self, "fixed_size", bool(self.fixed_size))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocessing:
        """The inverse of `to_dict`; an unknown key is an error that names it."""
        _check_keys(cls, data, "image preprocessing")
        return cls(**data)

    @classmethod
    def coerce(cls, value: Any) -> ImagePreprocessing:
        """``value`` as an `ImagePreprocessing`: itself, its `to_dict` form, or API 1.x's dict
        (timm's ``input_size`` = [3, H, W] or open_clip's ``size``, with mean, std, ...)."""
        if isinstance(value, ImagePreprocessing):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(f"image preprocessing must be a zoo.ImagePreprocessing, got {type(value).__name__}")
        data = dict(value)
        if "input_size" in data:  # timm's layout
            data["size"] = list(data.pop("input_size"))[-2:]
        if "size" not in data or "mean" not in data or "std" not in data:
            raise SpecError(f"image preprocessing {dict(value)} needs size (or input_size), mean and std")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def resized(self, size: int, crop_pct: float | None = None) -> ImagePreprocessing:
        """The same preprocessing at ``size`` pixels square (and another crop share); refused with one
        line when the model's position embeddings fix its input size."""
        if self.fixed_size and (size, size) != self.size:
            raise ZooError(
                f"this model takes {self.size[0]}x{self.size[1]} images only (its position embeddings "
                f"are fixed); image_size {size} cannot be used: leave image_size out"
            )
        return replace(self, size=(size, size), crop_pct=self.crop_pct if crop_pct is None else crop_pct)


@dataclass(frozen=True)
class TextPreprocessing:
    """How a text becomes the tokens a text model was trained on, and how its states become a vector.

    ``max_length`` never exceeds ``max_positions`` (the model's own limit); ``lowercase`` records what
    the tokenizer really does (upper and lower case give the same tokens), not what its config says.
    """

    tokenizer: str  # the tokenizer's class or name, e.g. "BertTokenizerFast"
    max_length: int  # texts are cut at this many tokens
    vocabulary: str | None = None  # a digest of the token -> id table
    vocab_size: int | None = None
    lowercase: bool = False
    padding_side: str = "right"
    pooling: str | None = None  # mean | cls | max | last | eot
    normalize: bool = False  # the embedding is L2-normalised
    architecture: str | None = None  # encoder | decoder | encoder-decoder
    max_positions: int | None = None  # the model's position limit, where it has one

    def __post_init__(self) -> None:
        owner = "text preprocessing"
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise SpecError(f"{owner}: tokenizer must name the tokenizer, got {self.tokenizer!r}")
        for name in ("max_length", "vocab_size", "max_positions"):
            value = getattr(self, name)
            if value is None and name != "max_length":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{owner}: {name} must be a positive integer, got {value!r}")
        if self.max_positions is not None and self.max_length > self.max_positions:
            raise SpecError(f"{owner}: max_length {self.max_length} exceeds the model's {self.max_positions} positions")
        if self.padding_side not in ("right", "left"):
            raise SpecError(f"{owner}: padding_side must be 'right' or 'left', got {self.padding_side!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise SpecError(f"{owner}: pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        object.__setattr__(self, "lowercase", bool(self.lowercase))
        object.__setattr__(self, "normalize", bool(self.normalize))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextPreprocessing:
        _check_keys(cls, data, "text preprocessing")
        return cls(**data)

    @classmethod
    def coerce(cls, value: Any) -> TextPreprocessing:
        """``value`` as a `TextPreprocessing`: itself, its `to_dict` form, or API 1.x's dict (unknown
        keys dropped; "mean+l2" pooling read as mean pooling with normalisation)."""
        if isinstance(value, TextPreprocessing):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(f"text preprocessing must be a zoo.TextPreprocessing, got {type(value).__name__}")
        data = {k: v for k, v in value.items() if k in {f.name for f in fields(cls)}}
        if data.get("pooling") == "mean+l2":
            data.update(pooling="mean", normalize=True)
        data.setdefault("tokenizer", "unknown")
        data.setdefault("max_length", 512)
        return cls(**data)


Preprocessing = ImagePreprocessing | TextPreprocessing


def _check_keys(cls: type, data: Mapping[str, Any], owner: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{owner}: unknown field {unknown[0]!r}; its fields: {', '.join(sorted(known))}")


def preprocessing_from_json(data: Mapping[str, Any]) -> dict[str, Preprocessing]:
    """``{"image": ImagePreprocessing, "text": TextPreprocessing}`` (whichever apply) from the JSON form
    that `Backbone.preprocessing` returns and ``zoo.json`` stores."""
    unknown = sorted(set(data) - {"image", "text"})
    if unknown:
        raise SpecError(f"preprocessing: unknown part {unknown[0]!r}; it has 'image' and/or 'text'")
    parts: dict[str, Preprocessing] = {}
    if "image" in data:
        parts["image"] = ImagePreprocessing.from_dict(data["image"])
    if "text" in data:
        parts["text"] = TextPreprocessing.from_dict(data["text"])
    return parts


def legacy_preprocessing(modality: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """API 1.x's preprocessing dict of a ``modality`` backbone, in the JSON form of API 2: timm's or
    open_clip's image keys, the text keys, or a CLIP-style ``{"image": ..., "text": ...}``."""
    if modality == "multimodal":
        parts = {part: data[part] for part in ("image", "text") if isinstance(data.get(part), Mapping)}
    else:
        parts = {modality: data}
    out = {}
    for part, value in parts.items():
        typed = (ImagePreprocessing if part == "image" else TextPreprocessing).coerce(value).to_dict()
        # only the fields the old dict had: a field it did not record is not known to have its default
        given = {"size" if key == "input_size" else key for key in value}
        if value.get("pooling") == "mean+l2":
            given.add("normalize")
        out[part] = {key: typed[key] for key in typed if key in given}
    return out


def weights_preprocessing(value: Any, owner: str) -> Preprocessing | None:
    """A `Weights` entry's preprocessing: typed, or API 1.x's dict converted with a DeprecationWarning."""
    if value is None or isinstance(value, (ImagePreprocessing, TextPreprocessing)):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(f"{owner}: preprocessing must be a zoo.ImagePreprocessing or zoo.TextPreprocessing")
    if not value:
        return None
    image = any(key in value for key in ("input_size", "size", "mean"))
    kind = ImagePreprocessing if image else TextPreprocessing
    warnings.warn(
        f"{owner}: a preprocessing dict is zoo API 1.x; declare a zoo.{kind.__name__} instead",
        DeprecationWarning,
        stacklevel=4,
    )
    try:
        return kind.coerce(value)
    except SpecError:
        return None  # a descriptive 1.x dict ("from the image tower"): nothing typed to check against
