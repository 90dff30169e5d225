"""Files written so that nothing is lost: atomic replacement, and checksummed torch files.

`atomic_write` writes to a temporary file beside the target, flushes it to disk and renames it
into place, so readers (and a crash) see the old file or the new one, never half of one.
`save_checksummed` / `load_checksummed` put a SHA-256 in front of a ``torch.save`` payload and
load it back with ``weights_only=True``: checkpoints and cache entries use them. Torch-free at
import.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: Path) -> None:
    """Delete what writes of ``path`` that a crash interrupted left behind."""
    for stale in path.parent.glob(_temporary_prefix(path) + "*"):
        stale.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask."""
    try:  # Linux tells the umask without changing it
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration):
        pass
    umask = os.umask(0)  # elsewhere: set it and put it back (process-wide, so only once, at import)
    os.umask(umask)
    return umask


_UMASK = _umask()
_NEW_FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file
NEW_DIRECTORY_MODE = 0o777 & ~_UMASK  # what mkdir() gives a new folder (mkdtemp's own is owner-only)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, flush it to disk, then rename it
    over ``path``: readers see the old file or the new one, never half of one. The file gets the
    permissions ``open()`` would give it (``mkstemp``'s own are owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), dir=path.parent)
    try:
        os.fchmod(handle, _NEW_FILE_MODE)
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class ChecksumError(ValueError):
    """A checksummed file whose header or digest does not match its contents."""


def save_checksummed(obj: Any, path: Path, magic: bytes, salt: bytes = b"") -> None:
    """``torch.save(obj)`` behind ``magic`` and the SHA-256 of ``salt`` + payload, through `atomic_write`."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(salt + bytes(payload)).digest()
    atomic_write(path, lambda out: (out.write(magic), out.write(digest), out.write(payload)))


def load_checksummed(path: Path, magic: bytes, salt: bytes = b"") -> Any:
    """What `save_checksummed` wrote, after its digest is verified (ChecksumError if not), loaded with
    ``weights_only=True`` (tensors and plain containers only: nothing in the file can run code)."""
    import torch

    data = path.read_bytes()
    header = len(magic) + 32
    if data[: len(magic)] != magic:
        raise ChecksumError(f"{path} lacks the checksum header")
    payload = memoryview(data)[header:]
    if hashlib.sha256(salt + bytes(payload)).digest() != data[len(magic) : header]:
        raise ChecksumError(f"{path}: its SHA-256 does not match its contents")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
