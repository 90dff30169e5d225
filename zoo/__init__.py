"""zoo: a plugin-based multimodal model zoo.

One registry holds text, vision and CLIP-style backbones contributed by plugins
(entry-point group ``zoo``); every backbone has the same interface. Importing
``zoo`` is cheap: no model library is imported until a backbone is loaded.
"""

from __future__ import annotations

from zoo.api import get_spec, list_backbones, load, plugins
from zoo.errors import PluginWarning, PreprocessingWarning, WeightsError, WeightsWarning, ZooError
from zoo.hookspecs import hookimpl
from zoo.plugins import API_VERSION
from zoo.specs import BackboneSpec, DatasetSpec, PathClaim, PathFormat, TaskSpec, Weights

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Backbone",
    "BackboneSpec",
    "DatasetSpec",
    "PathClaim",
    "PathFormat",
    "PluginWarning",
    "PreprocessingWarning",
    "TaskSpec",
    "Weights",
    "WeightsError",
    "WeightsWarning",
    "ZooError",
    "compare",
    "get_spec",
    "hookimpl",
    "list_backbones",
    "load",
    "plugins",
]


import sys as _sys

from zoo.plugins import guard as _guard

_guard(_sys.modules[__name__], ("load", "list_backbones", "get_spec", "plugins"))


def __getattr__(name: str):
    # Backbone is a torch.nn.Module: import torch only when someone asks for it; compare lives in the
    # comparisons package, a layer above the API that listing never needs.
    if name == "Backbone":
        from zoo.backbone import Backbone

        return Backbone
    if name == "compare":
        from zoo.comparisons import compare

        return compare
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
