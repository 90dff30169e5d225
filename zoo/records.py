"""Result records: JSON written atomically, stamped with the installed library versions.

Torch-free, so ``zoo compare`` checks its spec (and ``zoo run`` its recipe) before
paying for ``import torch``.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any


def library_versions() -> dict[str, str | None]:
    """Installed versions of zoo and the model libraries (None where one is missing)."""
    out: dict[str, str | None] = {}
    for name, dist in (
        ("zoo", "zoo"),
        ("torch", "torch"),
        ("transformers", "transformers"),
        ("timm", "timm"),
        ("open_clip", "open_clip_torch"),
    ):
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_json(path: Path, data: Any) -> None:
    """Write JSON to a temporary name, then rename: readers never see half a file."""
    from zoo.files import atomic_write

    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2, default=str).encode()))
