"""Data: named data sets, generic readers, deterministic splits and caches.

A recipe names its data as a registered data set (``sst2``, ``cifar10``, ...,
from any plugin's ``register_datasets`` hook) or as a file or folder, read by
the generic readers (TSV/CSV/JSONL text, plain-text corpora, class-folder
images, image-caption CSV/JSONL). Either way the result is a `Dataset`: named
splits of examples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.data.base import (
    KINDS,
    DataError,
    Dataset,
    Split,
    check_labels,
    check_option_values,
    check_options,
    fingerprint,
    stratified_split,
)
from zoo.data.folders import DataWarning

__all__ = [
    "KINDS",
    "DataError",
    "DataWarning",
    "Dataset",
    "Split",
    "check_labels",
    "check_options",
    "data_root",
    "dataset_options",
    "dataset_reader",
    "fingerprint",
    "load_dataset",
    "stratified_split",
]


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding the named data sets: ``explicit``, else ``ZOO_DATA``, else ``../shared/data``."""
    for candidate in (explicit, os.environ.get("ZOO_DATA")):
        if candidate:
            root = Path(candidate).expanduser()
            if not root.is_dir():
                raise DataError(f"data root {root} is not a directory (from --data-root or ZOO_DATA)")
            return root
    default = Path.cwd().parent / "shared" / "data"
    if default.is_dir():
        return default
    raise DataError(
        "no data root: pass --data-root DIR (or set ZOO_DATA) to the folder holding text/, images/ and image_text/"
    )


def load_dataset(name: str, /, root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """A registered data set by name, or a file or folder read by the generic readers; its
    ``fingerprint`` is derived by the core from the reader, every option and the examples read."""
    check_option_values(options)
    if os.path.exists(name) or os.sep in name or Path(name).suffix in DATA_SUFFIXES:
        from zoo.data.readers import read_path

        return read_path(Path(name), **options)
    from zoo.data.identity import data_identity

    spec, reader = dataset_reader(name)
    check_options(reader, options, f"data set {spec.name!r}")
    source = data_root(root) if spec.needs_data_root else None
    dataset = reader(source, **options)
    # the core's fingerprint, whatever the reader set: reader, every option, the examples themselves
    dataset.fingerprint = data_identity(dataset, reader, {"dataset": spec.name, "plugin": spec.plugin}, options)
    return dataset


DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt")  # a name ending so is a file, never a registered data set


def dataset_options(name: str, options: dict[str, Any]) -> list[str]:
    """The options the reader of ``name`` (a registered data set, or a user's file or folder read with
    ``options``) takes."""
    import inspect

    if os.path.exists(name) or os.sep in name:
        from zoo.data.readers import path_reader

        reader = path_reader(Path(name), dict(options))[0]
    else:
        reader = dataset_reader(name)[1]
    return list(inspect.signature(reader).parameters)[1:]


def dataset_reader(name: str) -> tuple[Any, Any]:
    """The registered spec of data set ``name`` and its imported reader (factory)."""
    from zoo.plugins import get_plugin_set, import_object

    spec = get_plugin_set().registry.get("dataset", name)
    return spec, import_object(spec.factory, f"dataset {spec.name!r} (plugin {spec.plugin!r})")
