"""Saved backbones and safe weight loading, shared by every family.

A saved backbone is a directory holding ``model.safetensors`` (the whole
backbone's state dict), ``zoo.json`` (format version, the spec, the factory
options that rebuild the architecture, the preprocessing, and the weights'
SHA-256) and any assets the family writes (a tokenizer). It is written to a
temporary directory and renamed into place, so a crash never leaves half of it.

Weights are read only through safetensors or ``torch.load(weights_only=True)``:
loading never executes code from a weights file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from zoo.data.cache import NEW_DIRECTORY_MODE
from zoo.errors import WeightsError

FORMAT_VERSION = 1
CONFIG_FILE = "zoo.json"
WEIGHTS_FILE = "model.safetensors"


def is_saved(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory written by `Backbone.save`."""
    return (Path(path) / CONFIG_FILE).is_file()


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of directory ``path`` to fill; it replaces ``path`` (and whatever was
    there) only when the block ends without an error, and is removed otherwise."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(staging, NEW_DIRECTORY_MODE)
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_backbone(backbone: Any, path: str | os.PathLike) -> Path:
    """Write ``backbone`` to directory ``path`` atomically (replacing an older save there)."""
    from safetensors.torch import save_file

    with staged_directory(path) as staging:
        # safetensors refuses tensors that share memory; tied weights are re-tied by the architecture
        state = {k: v.detach().contiguous().clone() for k, v in backbone.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt", "zoo_format": str(FORMAT_VERSION)})
        backbone.save_assets(staging)
        config = {
            "zoo_format": FORMAT_VERSION,
            "spec": backbone.spec.to_dict(),
            "options": backbone.build_options(),
            "preprocessing": backbone.preprocessing,
            "weights_from": _describe(backbone.weights),
            "sha256": sha256(staging / WEIGHTS_FILE),
            "plugin": _plugin_of(backbone.spec),
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list))
    return Path(path).resolve()


def _plugin_of(spec: Any) -> dict[str, str | None]:
    """The plugin that registered ``spec`` and its distribution: what to install to load the save elsewhere."""
    from zoo.plugins import get_plugin_set

    info = get_plugin_set().infos.get(spec.plugin) if spec.plugin else None
    return {"name": spec.plugin, "distribution": info.distribution if info else None,
            "version": info.version if info else None}


def _describe(weights: Any) -> Any:
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)):
        return str(weights)
    return {"tag": weights.tag, "source": weights.source}


def read_saved(path: str | os.PathLike) -> dict[str, Any]:
    """The ``zoo.json`` of a saved backbone, checked against its schema (types, sizes, no unknown
    keys), for format, and against the weights' checksum. It is data: see `zoo.api.rebuild`."""
    from zoo.validation import SAVED_SCHEMA, read_json_file

    directory = Path(path)
    config = read_json_file(directory / CONFIG_FILE, SAVED_SCHEMA, "a saved backbone's zoo.json")
    if config["zoo_format"] != FORMAT_VERSION:
        raise WeightsError(f"{directory}: saved with zoo format {config['zoo_format']!r}; "
                           f"this zoo reads format {FORMAT_VERSION}")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise WeightsError(f"{directory}: {WEIGHTS_FILE} is missing")
    if sha256(weights) != config["sha256"]:
        raise WeightsError(f"{weights}: checksum does not match {CONFIG_FILE}; the file is corrupt or was changed")
    return config


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file, or a PyTorch file loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"weights file {path} is corrupt or truncated ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come as many types
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise WeightsError(f"weights file {path} holds Python objects other than tensors; refusing to "
                               "unpickle it (it could run code). Convert it to safetensors where you trust it") from None
        raise WeightsError(f"weights file {path} is corrupt or truncated ({text.splitlines()[0] if text else exc})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} is not a state dict of tensors")
    return dict(state)


def load_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, owner: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with errors that name the first bad tensor."""
    expected = module.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{source} does not fit {owner}: tensor {key!r} has shape {tuple(tensor.shape)} in the file "
                f"but {tuple(expected[key].shape)} in the model (weights of another architecture?)"
            )
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing from the file, first {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s), first {unexpected[0]!r}")
        raise WeightsError(f"{source} does not fit {owner}: {'; '.join(parts)} (weights of another architecture?)")
    module.load_state_dict(state, strict=True)
