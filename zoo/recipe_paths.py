"""Paths in recipes: relative to the recipe file's folder (or, given by ``--set``, to the current
directory), stored absolute, so that a run's ``recipe.yaml`` works from any folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# reader options that name files: a recipe may set them, relative to its folder like every path
DATA_FILE_OPTIONS = ("file", "test_file", "validation_file")
# a data value ending so names a file even before it exists (no data set is registered under such a name)
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt")


def is_path(key: str, value: Any, base: Path) -> bool:
    """Whether ``value`` of ``key`` names a file or folder (not a registered backbone or data set)."""
    if not isinstance(value, str) or not value:
        return False
    if key in ("output_dir", "data_root") or value.startswith(("./", "../", "/", "~")):
        return True
    if key == "model":  # registered names hold a '/' too (text/minilm-l6): a path only where one exists
        return (base / value).exists()
    return os.sep in value or "/" in value or (base / value).exists() or Path(value).suffix.lower() in DATA_SUFFIXES


def absolute(value: str, base: Path) -> str:
    """``value`` made absolute against ``base`` (links kept as written: a linked data folder stays so)."""
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))


def resolve_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """``values`` with the paths it holds (model and data folders or files, output_dir, data_root,
    data_options' files, task_options' extra_data files) made absolute against ``base``."""
    resolved = dict(values)
    for key in ("model", "data", "output_dir", "data_root"):
        if is_path(key, resolved.get(key), base):
            resolved[key] = absolute(resolved[key], base)
    options = resolved.get("data_options")
    if isinstance(options, dict):
        resolved["data_options"] = {
            k: absolute(v, base) if k in DATA_FILE_OPTIONS and isinstance(v, str) else v for k, v in options.items()
        }
    task_options = resolved.get("task_options")
    if isinstance(task_options, dict) and isinstance(task_options.get("extra_data"), list):
        extra = [absolute(v, base) if is_path("data", v, base) else v for v in task_options["extra_data"]]
        resolved["task_options"] = {**task_options, "extra_data": extra}
    return resolved
