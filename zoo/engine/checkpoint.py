"""Checkpoints that resume exactly: model, optimizer, scheduler, scaler, RNG states and data position.

Written to a temporary file and renamed, so a crash (or a full disk) during a
write leaves the previous checkpoint intact. The file starts with a SHA-256 of
its payload, checked before loading (with ``weights_only=True``): a damaged
checkpoint is refused, never half-trusted. A checkpoint can be handed over, and
its checksum recomputed by whoever crafted it, so the loaded state's every field
is type-checked too (`check_state`) before any of it is used.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.engine.distributed import is_sharded
from zoo.errors import ZooError
from zoo.files import ChecksumError, load_checksummed, save_checksummed

MAGIC = b"ZOOCKPT1"  # then 32 bytes of SHA-256, then the torch.save payload


class CheckpointError(ZooError):
    """A checkpoint that cannot be written, read, or does not belong to this run."""


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=True)  # numpy's stubs type the bare call as legacy=False's dict
    if not isinstance(numpy_state, tuple):  # legacy=True: a tuple whenever the generator is MT19937, as numpy's is
        raise CheckpointError(f"numpy's global random state is not MT19937's ({numpy_state.get('bit_generator')})")
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
    """Write ``state`` and the RNG states to ``path`` atomically; then, when it names a folder of shards,
    remove the older ones."""
    try:
        save_checksummed({**state, "rng": rng_state()}, path, MAGIC)
    except OSError as exc:
        raise CheckpointError(
            f"could not write checkpoint {path} ({exc.strerror or exc}); the previous checkpoint is intact"
        ) from None
    if state.get("sharded"):
        remove_old_shards(path.parent, state["sharded"])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in checkpoint ``path``, after its checksum is verified."""
    try:
        return load_checksummed(path, MAGIC)
    except ChecksumError as exc:
        if "header" in str(exc):
            raise CheckpointError(f"{path} is not a zoo checkpoint (it lacks the checksum header)") from None
        raise CheckpointError(
            f"checkpoint {path} is damaged (its SHA-256 does not match its contents); refusing to resume from it"
        ) from None
    except Exception as exc:  # noqa: BLE001 - weights_only refuses code with several exception types
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensors(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _byte_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.ndim == 1


SHARDED = re.compile(r"last-\d+\.dcp")  # under FSDP: the folder of shards beside last.pt that it names

# (field, check, what it must be); a field absent from a checkpoint is checked only when the run needs it
_FIELDS = (
    ("backbone", lambda v: isinstance(v, str), "a string"),
    ("recipe_hash", lambda v: isinstance(v, str), "a string"),
    ("model", _tensors, "a state dict of tensors"),
    ("optimizer", lambda v: isinstance(v, dict), "a mapping"),
    ("scheduler", lambda v: isinstance(v, dict), "a mapping"),
    ("ema", lambda v: v is None or _tensors(v), "a state dict of tensors or null"),
    ("sharded", lambda v: isinstance(v, str) and SHARDED.fullmatch(v) is not None, "a folder name like last-12.dcp"),
    (
        "progress",
        lambda v: (
            isinstance(v, dict)
            and all(_is_int(v.get(k)) and v[k] >= 0 for k in ("step", "epoch", "position", "bad_evals", "best_step"))
            and (v.get("best") is None or isinstance(v["best"], float))
        ),
        "step, epoch, position, bad_evals and best_step as non-negative integers and best as a number or null",
    ),
    (
        "rng",
        lambda v: (
            isinstance(v, dict)
            and _is_int(v.get("python_version"))
            and isinstance(v.get("python"), list)
            and len(v["python"]) == 625
            and all(_is_int(x) for x in v["python"])
            and (v.get("python_gauss") is None or isinstance(v["python_gauss"], float))
            and isinstance(v.get("numpy"), list)
            and len(v["numpy"]) == 5
            and isinstance(v["numpy"][0], str)
            and isinstance(v["numpy"][1], torch.Tensor)
            and v["numpy"][1].shape == (624,)
            and _is_int(v["numpy"][2])
            and _is_int(v["numpy"][3])
            and isinstance(v["numpy"][4], float)
            and _byte_tensor(v.get("torch"))
            and isinstance(v.get("cuda"), list)
            and all(map(_byte_tensor, v["cuda"]))
        ),
        "the random states of Python, NumPy and torch as zoo writes them",
    ),
)


def check_state(state: Any, path: Path) -> dict[str, Any]:
    """``state`` when each field has the type zoo writes; CheckpointError naming the first that does not."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a mapping; refusing it")
    for name, ok, what in _FIELDS:
        if name in state and not ok(state[name]):
            raise CheckpointError(
                f"checkpoint {path}: {name} must be {what}; the file is malformed or was edited, refusing it"
            )
    return state


RESUME_FIELDS = ("model", "optimizer", "scheduler", "progress", "rng")


def weights(
    directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, broadcast: Any
) -> dict[str, Any]:
    """What last.pt keeps of the model and optimizer: their state dicts, or for a model FSDP sharded the
    name of the folder of shards every process writes now (`save_sharded`; every process must call it)."""
    if is_sharded(model):
        return {"sharded": save_sharded(directory, step, model, optimizer, broadcast)}
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}


def restore(saved: dict[str, Any], directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load what `weights` kept (``saved``: last.pt's state) into ``model`` and ``optimizer``."""
    if "sharded" in saved:
        load_sharded(directory / saved["sharded"], model, optimizer)
    else:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])


def save_sharded(
    directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, broadcast: Any
) -> str:
    """Every process writes its shards of the model and optimizer (`torch.distributed.checkpoint`) into a
    new folder ``last-STEP.dcp`` of ``directory``; its name goes into last.pt, written after it, so a
    crash mid-write leaves last.pt naming the previous, complete folder. Every process must call it;
    ``broadcast`` gives rank 0's value to all (`Context.broadcast`)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    name = f"last-{step}.dcp"
    if broadcast((directory / name / ".metadata").is_file()):  # complete (written last): this step's weights
        return name
    model_state, optimizer_state = get_state_dict(model, optimizer)
    try:
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=directory / name)
    except OSError as exc:
        raise CheckpointError(
            f"could not write sharded checkpoint {directory / name} ({exc.strerror or exc}); the previous one is intact"
        ) from None
    return name


def remove_old_shards(directory: Path, keep: str) -> None:
    """Delete the shard folders last.pt no longer names (rank 0, after last.pt is written)."""
    for folder in directory.glob("last-*.dcp"):
        if folder.name != keep and SHARDED.fullmatch(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def load_sharded(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load this process's shards of the model and optimizer from ``folder`` (written by `save_sharded`
    with the same number of processes or another: the checkpoint reshards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    if not folder.is_dir():
        raise CheckpointError(f"the sharded checkpoint {folder} that last.pt names is missing; it cannot resume")
    reader = _reader(folder)
    saved = set(reader.read_metadata().state_dict_metadata)
    state: dict[str, Any] = dict(zip(("model", "optimizer"), get_state_dict(model, optimizer), strict=True))
    # get_state_dict gives every parameter optimizer state; one that never had a gradient (an unused
    # pooler) had none when saved, and gets none back, as in the run that was interrupted
    state["optimizer"]["state"] = {
        name: value
        for name, value in state["optimizer"]["state"].items()
        if any(f"optimizer.state.{name}.{key}" in saved for key in value)
    }
    try:
        dcp.load(state, storage_reader=reader)
    except dcp.api.CheckpointException as exc:  # a BaseException: every process's failure, collected
        first = next((failure[0] for failure in exc.failures.values()), exc)
        raise CheckpointError(
            f"sharded checkpoint {folder} does not fit this run ({type(first).__name__}: {str(first).splitlines()[0]})"
        ) from None
    # strict=False admits the parameters without optimizer state; dcp.load has required every model key
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optimizer"],
        options=StateDictOptions(strict=False),
    )


def load_checkpoint(
    path: Path, recipe_hash: str, backbone: str, needs: tuple[str, ...] = RESUME_FIELDS
) -> dict[str, Any]:
    """A checkpoint of this very recipe and backbone holding the fields ``needs``, every field
    type-checked; anything else is refused with the reason."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume at {path}")
    state = check_state(read_checkpoint(path), path)
    if "sharded" in state:  # FSDP's: the model and optimizer are in the folder of shards it names
        needs = tuple(name for name in needs if name not in ("model", "optimizer")) + ("sharded",)
    missing = [name for name in needs if name not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it is not a complete zoo checkpoint")
    if state.get("backbone") != backbone:
        raise CheckpointError(
            f"checkpoint {path} was written for backbone {state.get('backbone')!r}, "
            f"not {backbone!r}; start a new run (another name) instead of --resume"
        )
    if state.get("recipe_hash") != recipe_hash:
        raise CheckpointError(
            f"checkpoint {path} was written by a different recipe (hash {state.get('recipe_hash')} "
            f"!= {recipe_hash}); resume with the same recipe and overrides, or start a new run"
        )
    return state


# what a sharded checkpoint's .metadata may name: torch.distributed.checkpoint's own records, sizes and dtypes
_METADATA_GLOBALS = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
}


def _reader(folder: Path) -> Any:
    """torch.distributed.checkpoint's file reader, except that the folder's ``.metadata`` (a pickle, which
    torch reads with plain ``pickle.load``) is read admitting only the classes such a file holds: a
    checkpoint is data, and a crafted one must not run code."""
    import io
    import pickle

    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found = module == "torch.distributed.checkpoint.metadata" or (module, name) in _METADATA_GLOBALS
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                found = True
            if not found:
                raise CheckpointError(
                    f"sharded checkpoint {folder}: its .metadata names {module}.{name}, which a checkpoint never "
                    "holds; refusing it"
                )
            return super().find_class(module, name)

    class Reader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            try:
                metadata = Unpickler(io.BytesIO((folder / ".metadata").read_bytes())).load()
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
                raise CheckpointError(f"sharded checkpoint {folder} has no readable .metadata ({exc})") from None
            for info in (getattr(metadata, "storage_data", None) or {}).values():
                relative = str(getattr(info, "relative_path", ""))
                if "/" in relative or "\\" in relative or relative.startswith("."):
                    raise CheckpointError(f"sharded checkpoint {folder} names a file outside it ({relative!r})")
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return Reader(folder)
