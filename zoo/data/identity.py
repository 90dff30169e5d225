"""What a data set is, as the core derives it: the fingerprint every cache key and every result's
``data_fingerprint`` starts from.

A reader (a registered data set's factory, or a generic reader of a user's files) returns examples;
it never chooses the fingerprint. The core hashes the complete description of what was read: the
reader, every option after the reader's defaults are filled in (so a default that changes changes
the key), the files named (with their size and modification time), and the examples themselves:
every split's inputs, labels, captions and scores, in order. An option a list forgot can no longer
leave two different data sets with one key: reading another column gives other examples.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo.data.base import Dataset

IDENTITY_VERSION = 1  # bump when what is hashed changes, so old cache entries are never read as new


def bound_options(reader: Callable[..., Any], source: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every keyword the reader runs with: the given ``options`` and the defaults of the rest."""
    try:
        bound = inspect.signature(reader).bind(source, **options)
    except TypeError:  # check_options has already named an unknown option; keep what was given
        return dict(options)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(arguments)), None)  # the path or data root: hashed as a source below
    extra = arguments.pop("kwargs", None) or {}
    return {**arguments, **extra}


def reader_name(reader: Callable[..., Any]) -> str:
    return f"{getattr(reader, '__module__', '?')}.{getattr(reader, '__qualname__', repr(reader))}"


def data_identity(dataset: Dataset, reader: Callable[..., Any] | None, source: Any, options: Mapping[str, Any]) -> str:
    """The fingerprint of ``dataset`` as ``reader`` read it from ``source`` with ``options`` (``reader``
    None: a data set built in memory, known by its examples alone)."""
    digest = hashlib.sha256()
    described = {
        "version": IDENTITY_VERSION,
        "reader": reader_name(reader) if reader is not None else None,
        "options": bound_options(reader, source, options) if reader is not None else dict(options),
        "source": source,
        "kind": dataset.kind,
        "label_names": dataset.label_names,
    }
    _update(digest, described)
    for split in sorted(dataset.splits):
        _update(digest, split)
        content_digest(digest, dataset.splits[split])
    return digest.hexdigest()[:16]


def content_digest(digest: Any, split: Any) -> None:
    """Feed one split's examples into ``digest``: texts and labels as JSON, image files by path, size
    and modification time, in-memory pictures by their bytes."""
    _update(digest, [split.labels, split.captions, split.scores])
    texts: list[Any] = []
    for item in split.inputs:
        if isinstance(item, (str, int, float, tuple, list)):
            texts.append(item)
        elif isinstance(item, Path):
            texts.append(_stamp(item))
        else:  # an array, tensor or picture held in memory
            _update(digest, texts)
            texts = []
            digest.update(_raw_bytes(item))
    _update(digest, texts)


def _stamp(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _raw_bytes(item: Any) -> bytes:
    import numpy as np

    if hasattr(item, "tobytes") and hasattr(item, "shape"):  # numpy array or PIL image
        array = np.asarray(item)
    elif hasattr(item, "numpy"):  # torch tensor
        array = item.detach().cpu().contiguous().numpy()
    else:
        array = np.asarray(item)
    return str(array.shape).encode() + str(array.dtype).encode() + np.ascontiguousarray(array).tobytes()


def _update(digest: Any, value: Any) -> None:
    digest.update(json.dumps(value, sort_keys=True, default=_jsonable).encode())
    digest.update(b"\x00")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return _stamp(value)
    return repr(value)
