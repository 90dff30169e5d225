"""The plugin contract: the hooks a `zoo` plugin may implement.

A plugin is a module named by an entry point in the group ``zoo``. It implements
any of these hooks with ``@zoo.hookimpl``; each hook receives a ``register``
callback and calls it once per thing it contributes. The host builds the
collections, so a hook never returns anything.

A plugin module may also set ``zoo_api = ">=2,<3"`` (a version specifier) to
declare which core API versions it supports; see ``zoo.API_VERSION``. What a plugin
may use of zoo is ``zoo.__all__`` (and ``zoo.testing``).
"""

from __future__ import annotations

import pluggy

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backbones(register):
    """Register backbones: call ``register(zoo.BackboneSpec(...))`` for each.

    The spec's factory is called as ``factory(spec, weights, **spec.options, **model_options)``;
    a model option it does not take is an error naming its keyword parameters, unless it takes
    ``**kwargs`` and checks them itself. A saved backbone is rebuilt with the factory registered
    under its name (never one its ``zoo.json`` names) as ``factory(spec, None, saved_dir=DIR,
    **build_options)``, the saved options checked the same way.
    """


@hookspec
def register_datasets(register):
    """Register named data sets: call ``register(zoo.DatasetSpec(...))`` for each.

    The factory is called as ``factory(data_root, **data_options)``; its keyword parameters are
    the options a recipe may set (``zoo datasets NAME`` lists them), and any other key is an
    error, unless the factory takes ``**kwargs`` and checks them itself.
    """


@hookspec
def register_tasks(register):
    """Register task families: call ``register(zoo.TaskSpec(...))`` for each.

    The factory is a task class (a ``zoo.tasks.base.Task``), built for a run as
    ``cls.for_backbone(backbone)(backbone, dataset, mode, options, spec=spec)``.
    """


@hookspec
def register_path_formats(register):
    """Register local formats the plugin loads: call ``register(zoo.PathFormat(...))`` for each.

    ``zoo.load(path)`` asks each format's ``claim(path)`` in turn (after the core's own claim, a
    zoo-saved folder; third-party plugins' formats before the built-in ones) and loads the first
    `zoo.PathClaim`; ``zoo.load("PLUGIN:path")`` asks only that plugin's formats.
    """


@hookspec
def register_export_formats(register):
    """Register formats `zoo export` can write: call ``register(zoo.ExportFormat(...))`` for each.

    ``zoo export SOURCE --to NAME`` calls the format's ``write`` into a staging folder, loads the
    result back with its ``runner`` and keeps the folder only when its outputs equal zoo's own.
    """
