"""Where a comparison's cells run: `zoo run` processes on this machine, or Ray tasks on a cluster.

An executor takes one cell and its folder and returns the cell's record (its result or its
failure). Everything around that (reuse of finished cells, per-cell locks, parents before
children, the table) is the same for every executor and lives in `zoo.comparisons.run`.
A cell's process writes only inside its own folder, and its ``cell.json`` is written by the
driver after the process ends, so a cell stopped half-way is never taken for a finished one.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zoo.comparisons.plan import Cell
from zoo.errors import ZooError
from zoo.recipes import RecipeError
from zoo.validation import RESULTS_SCHEMA, FileError, read_json_file

# tells the cell's `zoo run` to end when the process that started it dies (a killed Ray worker, say)
EXIT_WITH_PARENT = "ZOO_EXIT_WITH_PARENT"


class CellInterrupted(Exception):
    """A cell stopped before it finished (Ctrl-C, a cancelled task): nothing is recorded, a rerun runs it."""


def run_cell(cell: Cell, directory: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one cell in a fresh `zoo run` process; its result, or its failure, and its peak memory."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    recipe_file = directory / "recipe.yaml"
    # zoo run reads a recipe file's relative paths from the file's folder: this one is deep in cells/, so
    # what is relative to the current folder (the output folder, a parent cell's trained backbone) goes absolute
    recipe = {**cell.recipe, "name": "run", "output_dir": str(directory.absolute())}
    if cell.parent is not None:
        recipe["model"] = str(Path(recipe["model"]).absolute())
    recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
    resume = ["--resume"] if (directory / "run" / "checkpoints" / "last.pt").exists() else []
    started = time.perf_counter()
    with open(directory / "stdout.log", "w") as out, open(directory / "stderr.log", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "zoo", "run", str(recipe_file), *resume],
            stdout=out,
            stderr=err,
            env={**(env or os.environ), EXIT_WITH_PARENT: "1"},
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)  # wait4: the child's own peak memory
        except BaseException:  # Ctrl-C or a cancelled task: the cell stops too, resumable from its checkpoint
            process.kill()
            process.wait()
            raise CellInterrupted(cell.key) from None
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: subprocess must not wait on the pid again
    if process.returncode in (130, -signal.SIGINT):  # Ctrl-C reached the cell too: stopped, not failed
        raise CellInterrupted(cell.key)
    record: dict[str, Any] = {
        "backbone": cell.backbone,
        "recipe": cell.recipe,
        "key": cell.key,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }
    results_file = directory / "run" / "results.json"
    if process.returncode == 0 and results_file.exists():
        try:
            results = read_json_file(results_file, RESULTS_SCHEMA, "a run's results.json")
        except FileError as exc:
            return {**record, "status": "failed", "error": str(exc)}
        record.update(
            status="ok",
            metrics=results["metrics"],
            chance=results.get("chance", {}),
            test_split=results.get("test_split"),
            train=results["train"],
            provenance=results["provenance"],
        )
    else:
        lines = [line for line in (directory / "stderr.log").read_text().splitlines() if line.startswith("zoo: error:")]
        record.update(
            status="failed",
            error=lines[-1][len("zoo: error: ") :]
            if lines
            else f"exit status {process.returncode}; see {directory / 'stderr.log'}",
        )
    return record


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries; [] without CUDA."""
    import torch

    count = torch.cuda.device_count()  # leaves torch's CUDA state uninitialised
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [entry.strip() for entry in listed.split(",")] if listed else [str(i) for i in range(count)]
    return ids[:count]


def cell_environments(jobs: int, base: dict[str, str], cores: int, gpus: list[str]) -> list[dict[str, str] | None]:
    """The environment of each of ``jobs`` concurrent cell processes (None: inherit this process's).

    Each gets ``cores // jobs`` CPU threads unless ``OMP_NUM_THREADS`` is already set, and, with more
    than one GPU visible, one GPU (``CUDA_VISIBLE_DEVICES``), dealt round-robin so that jobs beyond
    the GPU count share them evenly. One GPU, or none, is left as it is.
    """
    if jobs == 1:
        return [None]
    environments: list[dict[str, str] | None] = []
    for slot in range(jobs):
        env = dict(base)
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // jobs)))
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        environments.append(env)
    return environments


class LocalExecutor:
    """Cells as processes on this machine, ``jobs`` at a time, each with its share of the cores and GPUs
    (`cell_environments`). Ctrl-C reaches the cells' processes too: they are in the terminal's group."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.slots = jobs
        self._environments: queue.SimpleQueue = queue.SimpleQueue()  # a running cell holds one
        for env in cell_environments(jobs, dict(os.environ), os.cpu_count() or 1, visible_gpus() if jobs > 1 else []):
            self._environments.put(env)

    def run(self, cell: Cell, directory: Path) -> dict[str, Any]:
        env = self._environments.get()
        try:
            return run_cell(cell, directory, env)
        finally:
            self._environments.put(env)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


def _ray_cell(cell: Cell, directory: str) -> dict[str, Any]:
    """A cell as a Ray task: its `zoo run` process gets the task's CPUs as threads (and the GPUs Ray
    assigned it, through the ``CUDA_VISIBLE_DEVICES`` that Ray sets for the task)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, int(cell.resources["num_cpus"])))}
    return run_cell(cell, Path(directory), env)


class RayExecutor:
    """Cells as Ray tasks, each asking for its cell's ``resources`` (``num_cpus``, ``num_gpus``).

    Without ``address`` Ray starts on this machine (and stops after the comparison); with one
    (``auto`` or ``HOST:PORT``) it joins a running cluster, as ``ray.init(address=...)`` does. The
    cells' folders must be on storage every node sees (as Ray Tune's ``storage_path``): a cell that
    evaluates another's trained backbone reads it from there. A task whose worker dies is retried
    by Ray (and resumes from the cell's checkpoint); Ctrl-C cancels the tasks still running.
    """

    name = "ray"

    def __init__(self, address: str | None = None, runtime_env: dict[str, Any] | None = None):
        try:
            import ray
        except ImportError:
            raise ZooError("--executor ray needs Ray, which is not installed: pip install 'zoo[ray]'") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(
                    address=address,
                    runtime_env=runtime_env,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except ConnectionError as exc:
                raise ZooError(
                    f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]} "
                    "(start one with `ray start --head`, or leave out --address to run Ray here)"
                ) from None
        self.slots = 1 << 16  # Ray decides how many run at once, from each task's resources
        self._task = ray.remote(_ray_cell)
        self._pending: set[Any] = set()

    def run(self, cell: Cell, directory: Path) -> dict[str, Any]:
        ray = self._ray
        resources = cell.resources
        ref = self._task.options(num_cpus=resources["num_cpus"], num_gpus=resources["num_gpus"]).remote(
            cell, str(directory)
        )
        self._pending.add(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            raise CellInterrupted(cell.key) from None
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, CellInterrupted):
                raise CellInterrupted(cell.key) from None
            raise
        except ray.exceptions.RayError as exc:  # the worker or its node died, after Ray's retries
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return {
                "backbone": cell.backbone,
                "recipe": cell.recipe,
                "key": cell.key,
                "status": "failed",
                "error": f"Ray: {type(exc).__name__}: {first}",
            }
        finally:
            self._pending.discard(ref)

    def cancel(self) -> None:
        for ref in list(self._pending):
            self._ray.cancel(ref)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


EXECUTORS = ("local", "ray")


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> LocalExecutor | RayExecutor:
    """The executor called ``name``: ``local`` (``jobs`` processes here) or ``ray`` (tasks on ``address``)."""
    if name == "local":
        if address is not None:
            raise RecipeError("--address is for --executor ray")
        return LocalExecutor(jobs)
    if name == "ray":
        return RayExecutor(address)
    raise RecipeError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
