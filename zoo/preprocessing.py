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
# timm's eval crop modes: keep the ratio and centre-crop; squash to the size; keep the ratio and pad
CROP_MODES = ("center", "squash", "border")
POOLINGS = ("mean", "cls", "max", "last", "eot")  # eot: the end-of-text token (CLIP's text towers)
_LATER_FIELDS = {"crop_border_pixels": 0, "fill": None}  # ImagePreprocessing's fields added after format 2

# timm's PretrainedCfg / data config: the keys zoo maps, those it needs, and those that do not change
# inference preprocessing (sources, labels, the head, papers; the test-time size and crop, which timm
# uses only when asked with use_test_size=True, and the smallest size the model takes)
TIMM_REQUIRED = ("input_size", "mean", "std", "interpolation", "crop_pct")
TIMM_KEYS = (*TIMM_REQUIRED, "crop_mode", "crop_border_pixels", "fixed_input_size")
TIMM_IGNORED = frozenset(
    {
        *("url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture", "tag"),
        *("custom_load", "test_input_size", "test_crop_pct", "min_input_size", "num_classes", "label_offset"),
        *("label_names", "label_descriptions", "pool_size", "test_pool_size", "first_conv", "classifier"),
        *("license", "description", "origin_url", "paper_name", "paper_ids", "notes"),
    }
)
# open_clip's PreprocessCfg: every field is mapped; these appear in no other layout
OPEN_CLIP_KEYS = ("size", "mode", "mean", "std", "interpolation", "resize_mode", "fill_color")
OPEN_CLIP_ONLY = ("mode", "resize_mode", "fill_color")
RESIZE_MODES = {"shortest": "center", "longest": "border", "squash": "squash"}  # open_clip's -> zoo's


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

    Evaluation is timm's (``transforms_imagenet_eval``): trim ``crop_border_pixels`` off every edge,
    then with the scale size ``floor(size / crop_pct)`` per side: ``crop_mode="center"`` resizes the
    image, keeping its ratio, until it covers the scale size and takes the centre ``size`` crop
    (torchvision's rule too; open_clip's ``resize_mode="shortest"``); ``"squash"`` resizes to the scale
    size exactly and centre-crops; ``"border"`` resizes, keeping the ratio, until it fits inside the scale
    size and pads to ``size`` with ``fill`` (open_clip's ``"longest"``). Then scale to [0, 1] and
    normalise with ``mean`` and ``std``. `from_timm_cfg` and `from_open_clip_cfg` convert the libraries'
    configs key by key.
    """

    size: tuple[int, int]  # (height, width) the model takes (an int given here means a square)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest
    crop_pct: float = 1.0  # share of the resized image the centre crop keeps
    crop_mode: str = "center"  # center | squash | border
    fixed_size: bool = False  # position embeddings fix the size: another one is refused
    crop_border_pixels: int = 0  # trimmed off every edge before resizing (timm's crop_border_pixels)
    fill: tuple[int, int, int] | None = None  # border's padding colour (0-255); None: the mean's, as timm

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
        try:
            crop = float(self.crop_pct)
        except (TypeError, ValueError):
            raise SpecError(f"{owner}: crop_pct must be a number, got {self.crop_pct!r}") from None
        if not 0 < crop <= 1:
            raise SpecError(f"{owner}: crop_pct must lie in (0, 1], got {self.crop_pct!r}")
        object.__setattr__(self, "crop_pct", crop)
        object.__setattr__(self, "fixed_size", bool(self.fixed_size))
        border = self.crop_border_pixels
        if not isinstance(border, int) or isinstance(border, bool) or border < 0:
            raise SpecError(f"{owner}: crop_border_pixels must be a whole number >= 0, got {border!r}")
        if self.fill is not None:
            object.__setattr__(self, "fill", _fill(owner, self.fill, self.crop_mode))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists). ``crop_border_pixels`` and ``fill`` are left out at their
        defaults, so the JSON (and every cache key made of it) of what could be said before they existed
        is what it was."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        for name, default in _LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocessing:
        """The inverse of `to_dict`; an unknown key is an error that names it."""
        _check_keys(cls, data, "image preprocessing")
        return cls(**data)

    @classmethod
    def from_timm_cfg(cls, cfg: Mapping[str, Any]) -> ImagePreprocessing:
        """timm's pretrained config (``PretrainedCfg.to_dict()``, a timm folder's ``pretrained_cfg``) or
        data config (``resolve_data_config``) as what ``timm.data.create_transform`` makes of it for
        evaluation.

        Args:
            cfg: input_size ([3, H, W]), mean, std, interpolation and crop_pct; crop_mode (default
                center), crop_border_pixels and fixed_input_size where given. The keys that do not
                change inference preprocessing (`TIMM_IGNORED`) are passed over.

        Returns:
            The `ImagePreprocessing`; any other key, a missing one or a value zoo cannot reproduce is
            a `SpecError` naming it.
        """
        return _from_timm(cls, cfg)

    @classmethod
    def from_open_clip_cfg(cls, cfg: Mapping[str, Any]) -> ImagePreprocessing:
        """open_clip's ``preprocess_cfg`` (a model's ``visual.preprocess_cfg``, an ``open_clip_config.json``
        folder's) as what open_clip's ``image_transform`` makes of it for evaluation.

        Args:
            cfg: size, mean and std; mode, interpolation, resize_mode (shortest, longest, squash) and
                fill_color where given, with open_clip's defaults (RGB, bicubic, shortest, 0).

        Returns:
            The `ImagePreprocessing` (crop_pct 1.0: open_clip crops to the size); any other key, a
            missing one or a value zoo cannot reproduce is a `SpecError` naming it.
        """
        return _from_open_clip(cls, cfg)

    @classmethod
    def coerce(cls, value: Any) -> ImagePreprocessing:
        """``value`` as an `ImagePreprocessing`: itself, its `to_dict` form, or API 1.x's dict: timm's
        (``input_size`` = [3, H, W], converted by `from_timm_cfg`; interpolation and crop_pct default to
        zoo's bilinear and 1.0, as API 1.x read them) or open_clip's (with ``resize_mode``, ``fill_color``
        or ``mode``: `from_open_clip_cfg`). Every key is mapped or refused, never dropped."""
        if isinstance(value, ImagePreprocessing):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(f"image preprocessing must be a zoo.ImagePreprocessing, got {type(value).__name__}")
        data = dict(value)
        if "input_size" in data:  # timm's layout
            return cls.from_timm_cfg({"interpolation": "bilinear", "crop_pct": 1.0, **data})
        if set(data) & set(OPEN_CLIP_ONLY):
            return cls.from_open_clip_cfg(data)
        if "size" not in data or "mean" not in data or "std" not in data:
            raise SpecError(f"image preprocessing {dict(value)} needs size (or input_size), mean and std")
        return cls.from_dict(data)

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


def _fill(owner: str, value: Any, crop_mode: str) -> tuple[int, int, int]:
    if crop_mode != "border":
        raise SpecError(f"{owner}: fill is the colour crop_mode 'border' pads with; crop_mode is {crop_mode!r}")
    colour = tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3
    if len(colour) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in colour):
        raise SpecError(f"{owner}: fill must be 3 whole numbers in 0-255 (or one for all), got {value!r}")
    return (colour[0], colour[1], colour[2])


def _unmapped(owner: str, data: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise SpecError(
            f"{owner}: cannot map key {unknown[0]!r} into zoo.ImagePreprocessing; refusing rather than dropping it"
        )


def _from_timm(cls: type[ImagePreprocessing], cfg: Mapping[str, Any]) -> ImagePreprocessing:
    owner = "timm preprocessing config"
    _unmapped(owner, cfg, set(TIMM_KEYS) | TIMM_IGNORED)
    missing = [key for key in TIMM_REQUIRED if cfg.get(key) is None]
    if missing:
        raise SpecError(f"{owner} lacks {missing[0]!r}; weights need their preprocessing")
    channels, height, width = _number_tuple(owner, "input_size", cfg["input_size"], 3, int)
    if channels != 3:
        raise SpecError(f"{owner}: input_size {list(cfg['input_size'])} has {channels} channels; zoo feeds RGB images")
    return cls(
        size=(height, width),
        mean=cfg["mean"],
        std=cfg["std"],
        interpolation=cfg["interpolation"],
        crop_pct=cfg["crop_pct"],
        crop_mode=cfg.get("crop_mode") or "center",  # timm's default, and configs written before it existed
        fixed_size=bool(cfg.get("fixed_input_size", False)),
        crop_border_pixels=cfg.get("crop_border_pixels") or 0,
    )


def _from_open_clip(cls: type[ImagePreprocessing], cfg: Mapping[str, Any]) -> ImagePreprocessing:
    owner = "open_clip preprocess_cfg"
    _unmapped(owner, cfg, set(OPEN_CLIP_KEYS))
    missing = [key for key in ("size", "mean", "std") if cfg.get(key) is None]
    if missing:
        raise SpecError(f"{owner} lacks {missing[0]!r}; weights need their preprocessing")
    if (cfg.get("mode") or "RGB") != "RGB":
        raise SpecError(f"{owner}: mode {cfg['mode']!r}; open_clip and zoo take RGB images only")
    resize = cfg.get("resize_mode") or "shortest"
    if resize not in RESIZE_MODES:
        raise SpecError(f"{owner}: resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    interpolation = cfg.get("interpolation") or "bicubic"
    if interpolation not in ("bicubic", "bilinear", "random"):
        raise SpecError(f"{owner}: interpolation must be bicubic, bilinear or random, got {interpolation!r}")
    size = cfg["size"]
    height, width = _number_tuple(owner, "size", [size] * 2 if isinstance(size, (int, float)) else size, 2, int)
    if interpolation == "random" or (resize == "shortest" and height != width):
        # its eval transform reads "random" as bicubic, and resizes for a non-square size with its own
        # ResizeKeepRatio, whose interpolation is always bicubic
        interpolation = "bicubic"
    mean, std = (
        _number_tuple(owner, name, [cfg[name]] * 3 if isinstance(cfg[name], (int, float)) else cfg[name], 3, float)
        for name in ("mean", "std")
    )
    return cls(
        size=(height, width),
        mean=mean,
        std=std,
        interpolation=interpolation,
        crop_pct=1.0,
        crop_mode=RESIZE_MODES[resize],
        # the colour "longest" pads with; the other modes never pad
        fill=_fill(owner, cfg.get("fill_color") or 0, "border") if resize == "longest" else None,
    )


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


# timm's and open_clip's names of ImagePreprocessing's fields
_LEGACY_NAMES = {
    "input_size": "size",
    "fixed_input_size": "fixed_size",
    "resize_mode": "crop_mode",
    "fill_color": "fill",
}


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
        given = {_LEGACY_NAMES.get(key, key) for key in value}
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
    if image and ("input_size" in value or "size" in value) and "mean" in value and "std" in value:
        return ImagePreprocessing.coerce(value)  # pixels described: a key that cannot be mapped is refused
    try:
        return kind.coerce(value)
    except SpecError:
        return None  # a descriptive 1.x dict ("from the image tower"): nothing typed to check against
