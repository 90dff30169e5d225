"""Training faults: a kill during a checkpoint write, a full disk, a damaged checkpoint.
In each, the previous checkpoint stays valid and the run can go on from it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.engine import run
from zoo.engine.checkpoint import CheckpointError, read_checkpoint
from zoo.recipes import validate

from conftest import REPO

RECIPE = {
    "model": "vision/example-convnet",
    "task": "image-classification",
    "data": "digits",
    "mode": "linear-probe",
    "epochs": 2.0,
    "batch_size": 32,
    "lr": 1e-2,
    "checkpoint_every": 3,
    "log_every": 1,
    "name": "r",
}


def recipe(tmp_path: Path, **extra):
    return validate({**RECIPE, "output_dir": str(tmp_path), **extra}, "test")


KILL_DURING_WRITE = """
import os, signal, sys
import zoo.files as files
from zoo.engine import run
from zoo.recipes import validate

calls = []
original = files.atomic_write

def dying_write(path, write):  # the second write of last.pt dies half-way through its bytes
    if path.name != "last.pt":
        return original(path, write)
    calls.append(path)
    if len(calls) < 2:
        return original(path, write)
    def half(out):
        class Half:
            def write(self, data):
                out.write(bytes(data)[: max(1, len(data) // 2)])
                out.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        write(Half())
    return original(path, half)

files.atomic_write = dying_write
run(validate({RECIPE}, "kill test"))
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_valid(tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING_WRITE.replace("{RECIPE}", repr({**RECIPE, "output_dir": str(tmp_path)})))
    process = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    checkpoints = tmp_path / "r" / "checkpoints"
    assert [p.name for p in checkpoints.glob(".last.pt.*")], "the interrupted write should have left its temporary"
    assert read_checkpoint(checkpoints / "last.pt")["progress"]["step"] == 3  # the first checkpoint, intact
    resumed = run(recipe(tmp_path), resume=True)
    assert resumed["train"]["steps"] == 82 and not list(checkpoints.glob(".last.pt.*"))  # stale temporaries cleared


class _FullDisk:
    """Stands in for the ``os`` module in zoo.files: once the first checkpoint exists, files
    opened for writing take 4 KiB and then fail with ENOSPC, as on a full disk."""

    def __init__(self, armed: Path):
        self.armed = armed

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode):
        handle = os.fdopen(fd, mode)
        if not self.armed.exists():
            return handle
        written = [0]
        real_write = handle.write

        def write(data):
            written[0] += len(data)
            if written[0] > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(data)

        handle.write = write
        return handle


def test_a_full_disk_keeps_the_previous_checkpoint_with_a_clear_error(tmp_path, monkeypatch):
    import zoo.files

    last = tmp_path / "r" / "checkpoints" / "last.pt"
    monkeypatch.setattr(zoo.files, "os", _FullDisk(last))
    with pytest.raises(
        CheckpointError,
        match=r"could not write checkpoint .*last.pt \(No space left on device\); "
        r"the previous checkpoint is intact",
    ):
        run(recipe(tmp_path))
    monkeypatch.undo()
    assert read_checkpoint(last)["progress"]["step"] == 3
    assert not list(last.parent.glob(".last.pt.*"))  # the failed temporary is removed


def test_a_damaged_checkpoint_is_refused(tmp_path):
    run(recipe(tmp_path, epochs=0.2))
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the payload
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last.pt is damaged \(its SHA-256 does not match its contents\)"):
        run(recipe(tmp_path, epochs=0.2), resume=True)
    last.write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(CheckpointError, match="is not a zoo checkpoint"):
        run(recipe(tmp_path, epochs=0.2), resume=True)
