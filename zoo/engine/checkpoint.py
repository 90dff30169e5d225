"""Checkpoints that resume exactly: model, optimizer, scheduler, scaler, RNG states and data position.

Written to a temporary file and renamed, so a crash (or a full disk) during a
write leaves the previous checkpoint intact. Loaded with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.cache import atomic_save
from zoo.errors import ZooError


class CheckpointError(ZooError):
    """A checkpoint that cannot be written, read, or does not belong to this run."""


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    try:
        atomic_save({**state, "rng": rng_state()}, path)
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {path} ({exc.strerror or exc}); "
                              "the previous checkpoint is intact") from None


def load_checkpoint(path: Path, recipe_hash: str, backbone: str) -> dict[str, Any]:
    """A checkpoint of this very recipe and backbone; anything else is refused with the reason."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if state.get("backbone") != backbone:
        raise CheckpointError(f"checkpoint {path} was written for backbone {state.get('backbone')!r}, "
                              f"not {backbone!r}; start a new run (another name) instead of --resume")
    if state.get("recipe_hash") != recipe_hash:
        raise CheckpointError(f"checkpoint {path} was written by a different recipe (hash {state.get('recipe_hash')} "
                              f"!= {recipe_hash}); resume with the same recipe and overrides, or start a new run")
    return state
