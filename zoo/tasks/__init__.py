"""Task families. A task turns batches into a loss and predictions, and predictions into metrics;
the engine knows tasks only through `zoo.tasks.base.Task`. Tasks are registered through the
``register_tasks`` hook (the core's own in ``zoo.builtins``) and looked up with `get_task`."""

from __future__ import annotations

from typing import Any


def get_task(name: str) -> Any:
    """The task class registered as ``name`` (raises UnknownNameError with suggestions)."""
    from zoo.plugins import get_plugin_set, import_object

    spec = get_plugin_set().registry.get("task", name)
    task = import_object(spec.factory, f"task {spec.name!r} (plugin {spec.plugin!r})")
    task.spec = spec
    return task
