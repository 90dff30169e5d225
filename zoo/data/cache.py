"""On-disk caches (tokenised text, decoded images, frozen-backbone features).

Entries are keyed by a fingerprint of everything that determines them, written
to a temporary file and renamed into place, so concurrent processes sharing the
directory never see half an entry. Each entry starts with a SHA-256 of its key
and payload: a truncated, damaged or swapped entry is recomputed, never trusted,
and an entry is read with ``torch.load(weights_only=True)``, so none runs code.
The directory is ``ZOO_CACHE`` or ``~/.cache/zoo``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.files import load_checksummed, save_checksummed


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo")


CACHE_MAGIC = b"ZOOCACHE1"


def cached(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    """The cached value of ``compute()`` for ``key`` (tensors, lists, dicts, numbers, strings)."""
    path = cache_dir() / kind / f"{key}.pt"
    if path.is_file():
        try:
            return load_checksummed(path, CACHE_MAGIC, key.encode())
        except Exception:  # noqa: BLE001 - a damaged or swapped entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    value = compute()
    save_checksummed(value, path, CACHE_MAGIC, key.encode())
    return value
