"""The layers of the core, from the bottom up: each module imports only modules on its own layer or
below it, and no two modules import each other around a circle. ``tests/test_layers.py`` holds every
module of ``zoo/`` to this table (imports inside functions count; ``if TYPE_CHECKING:`` ones do not),
and every plugin to the plugin API (``zoo.__all__`` and ``zoo.testing``).

A pattern ``pkg.*`` stands for the package's modules; the package itself is listed by name.
"""

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # errors, typed metadata and the file and signature helpers: no torch, no plugin set
    (
        "foundation",
        (
            "zoo.errors",
            "zoo.hookspecs",
            "zoo.hub",
            "zoo.files",
            "zoo.signatures",
            "zoo.validation",
            "zoo.preprocessing",
            "zoo.specs",
            "zoo.records",
            "zoo.layers",
        ),
    ),
    # the plugin set and its registry (the core's own plugin, builtins, registers data sets and tasks)
    ("plugins", ("zoo.registry", "zoo.plugins", "zoo.builtins")),
    # data sets, readers, caches, the one image input path, and recipes
    (
        "data",
        ("zoo.data", "zoo.data.*", "zoo.recipes", "zoo.recipe_paths", "zoo.recipe_overrides", "zoo.adapter_options"),
    ),
    # what turns a backbone and data into losses and metrics; saved backbones and their LoRA adapters;
    # encoder measurements
    ("tasks", ("zoo.tasks", "zoo.tasks.*", "zoo.saving", "zoo.measure", "zoo.cards", "zoo.adapters")),
    # the public functions: list, describe, load
    ("api", ("zoo.api",)),
    # a recipe checked against its data, task and backbone before any work (reads the latter through the api)
    ("checks", ("zoo.checks",)),
    # the one training loop; it loads a recipe's model through the api
    ("engine", ("zoo.engine", "zoo.engine.*")),
    # the Backbone contract: its pretrain / finetune / evaluate hand work to the engine below
    ("backbone", ("zoo.backbone", "zoo.backbone_types")),
    # applications of all of the above
    (
        "applications",
        (
            "zoo.runs",
            "zoo.exporting",
            "zoo.exporting.*",
            "zoo.comparisons",
            "zoo.comparisons.*",
            "zoo.testing",
            "zoo.cli",
            "zoo.cli.*",
            "zoo.__main__",
            "zoo",
        ),
    ),
)


def layer_of(module: str) -> int:
    """The index in `LAYERS` of ``module``'s layer (KeyError for a module the table does not list)."""
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return index
    raise KeyError(module)
