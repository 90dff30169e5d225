"""Checkpoints that resume exactly: model, optimizer, scheduler, scaler, RNG states and data position.

Written to a temporary file and renamed, so a crash (or a full disk) during a
write leaves the previous checkpoint intact. The file starts with a SHA-256 of
its payload, checked before loading (with ``weights_only=True``): a damaged
checkpoint is refused, never half-trusted.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.cache import atomic_write
from zoo.errors import ZooError

MAGIC = b"ZOOCKPT1"  # then 32 bytes of SHA-256, then the torch.save payload


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
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_state()}, buffer)
    payload = buffer.getbuffer()
    try:
        atomic_write(path, lambda out: (out.write(MAGIC), out.write(hashlib.sha256(payload).digest()),
                                        out.write(payload)))
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {path} ({exc.strerror or exc}); "
                              "the previous checkpoint is intact") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in checkpoint ``path``, after its checksum is verified."""
    data = path.read_bytes()
    header = len(MAGIC) + 32
    if data[:len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not a zoo checkpoint (it lacks the checksum header)")
    payload = memoryview(data)[header:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC):header]:
        raise CheckpointError(f"checkpoint {path} is damaged (its SHA-256 does not match its contents); "
                              "refusing to resume from it")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses code with several exception types
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None


def load_checkpoint(path: Path, recipe_hash: str, backbone: str) -> dict[str, Any]:
    """A checkpoint of this very recipe and backbone; anything else is refused with the reason."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume at {path}")
    state = read_checkpoint(path)
    if state.get("backbone") != backbone:
        raise CheckpointError(f"checkpoint {path} was written for backbone {state.get('backbone')!r}, "
                              f"not {backbone!r}; start a new run (another name) instead of --resume")
    if state.get("recipe_hash") != recipe_hash:
        raise CheckpointError(f"checkpoint {path} was written by a different recipe (hash {state.get('recipe_hash')} "
                              f"!= {recipe_hash}); resume with the same recipe and overrides, or start a new run")
    return state
