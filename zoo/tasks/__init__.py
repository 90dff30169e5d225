"""Task families. A task turns batches into a loss and predictions, and predictions into metrics;
the engine knows tasks only through `zoo.tasks.base.Task`. Tasks are registered through the
``register_tasks`` hook (the core's own in ``zoo.builtins``) and looked up with `get_task`."""

from __future__ import annotations

from typing import Any

from zoo.specs import TaskSpec


def get_task(name: str) -> tuple[TaskSpec, Any]:
    """The spec registered as ``name`` and its task class (raises UnknownNameError with suggestions);
    build a task with ``cls.for_backbone(backbone)(backbone, dataset, mode, options, spec=spec)``."""
    from zoo.plugins import get_plugin_set, import_object

    spec = get_plugin_set().registry.get("task", name)
    return spec, import_object(spec.factory, f"task {spec.name!r} (plugin {spec.plugin!r})")
