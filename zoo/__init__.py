"""zoo: a plugin-based multimodal model zoo.

One registry holds text, vision and CLIP-style backbones contributed by plugins
(entry-point group ``zoo``); every backbone has the same interface. Importing
``zoo`` is cheap: no model library is imported until a backbone is loaded.

``__all__`` is the plugin API: everything a plugin may use comes from here (or from
`zoo.testing`, the contract kit), and `API_VERSION` versions it. Names that need
torch (`Backbone`, the weight-file helpers) are imported when first used.
"""

from __future__ import annotations

import sys as _sys
from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

from zoo.api import claim_path, get_spec, list_backbones, list_datasets, list_tasks, load, plugins
from zoo.errors import (
    OptionError,
    PluginWarning,
    PreprocessingWarning,
    SpecError,
    UnknownNameError,
    WeightsError,
    WeightsWarning,
    ZooError,
)
from zoo.hookspecs import hookimpl
from zoo.plugins import API_VERSION
from zoo.preprocessing import ImagePreprocessing, TextPreprocessing
from zoo.specs import BackboneSpec, DatasetSpec, ExportFormat, PathClaim, PathFormat, TaskSpec, Weights

if TYPE_CHECKING:  # what the lazily served names are, for type checkers
    from zoo.backbone import Backbone
    from zoo.backbone_types import FrozenImageEncoder, PretrainedClasses
    from zoo.comparisons import compare
    from zoo.data import load_dataset
    from zoo.hub import offline_unless_reachable, reachable
    from zoo.saving import load_state_dict, read_state_dict, rebuild, staged_directory
    from zoo.validation import FileError, read_json_file

__version__ = "0.1.0"

# names served on first use: (module, attribute); they import torch or a layer above the API
_LAZY = {
    "Backbone": ("zoo.backbone", "Backbone"),
    "FrozenImageEncoder": ("zoo.backbone_types", "FrozenImageEncoder"),
    "PretrainedClasses": ("zoo.backbone_types", "PretrainedClasses"),
    "load_state_dict": ("zoo.saving", "load_state_dict"),
    "check_loaded_weights": ("zoo.saving", "check_loaded_weights"),
    "read_state_dict": ("zoo.saving", "read_state_dict"),
    "staged_directory": ("zoo.saving", "staged_directory"),
    "rebuild": ("zoo.saving", "rebuild"),
    "load_dataset": ("zoo.data", "load_dataset"),
    "offline_unless_reachable": ("zoo.hub", "offline_unless_reachable"),
    "reachable": ("zoo.hub", "reachable"),
    "FileError": ("zoo.validation", "FileError"),
    "read_json_file": ("zoo.validation", "read_json_file"),
    "compare": ("zoo.comparisons", "compare"),
    "ClassifierHead": ("zoo.tasks.heads", "ClassifierHead"),
    "export": ("zoo.exporting", "export"),
    "load_run": ("zoo.runs", "load_run"),
}

__all__ = [
    # the registry and loading
    "API_VERSION",
    "claim_path",
    "compare",
    "export",
    "get_spec",
    "hookimpl",
    "list_backbones",
    "list_datasets",
    "list_tasks",
    "load",
    "load_dataset",
    "load_run",
    "plugins",
    # what plugins register and build
    "Backbone",
    "BackboneSpec",
    "ClassifierHead",
    "DatasetSpec",
    "ExportFormat",
    "FrozenImageEncoder",
    "ImagePreprocessing",
    "PathClaim",
    "PathFormat",
    "PretrainedClasses",
    "TaskSpec",
    "TextPreprocessing",
    "Weights",
    # helpers a family's factory, path claims and export runners use
    "check_loaded_weights",
    "load_state_dict",
    "offline_unless_reachable",
    "reachable",
    "read_json_file",
    "read_state_dict",
    "rebuild",
    "staged_directory",
    # errors and warnings
    "FileError",
    "OptionError",
    "PluginWarning",
    "PreprocessingWarning",
    "SpecError",
    "UnknownNameError",
    "WeightsError",
    "WeightsWarning",
    "ZooError",
]


from zoo.plugins import guard as _guard  # noqa: E402 - after the names it guards

_guard(_sys.modules[__name__], ("load", "list_backbones", "get_spec", "plugins"))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(_import_module(module), attribute)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
