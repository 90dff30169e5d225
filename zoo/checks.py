"""A recipe checked whole before any work: `check_recipe` runs before a backbone is built or a step trained.

`zoo.recipes.validate` checks each key alone (its type and range). Here is what needs the machine, the
registry or the data: the device exists, the backbone and task are registered and fit each other, the
task options are the task's own for the backbone's modality, and the splits the recipe uses are in its
data (read once; the engine keeps it). Each mistake is one `RecipeError` (exit 2) naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.recipes import Recipe, RecipeError, check_recipe_values
from zoo.signatures import keyword_options, nearest_key_hint

if TYPE_CHECKING:
    from collections.abc import Callable

    from zoo.data import Dataset


def check_recipe(
    recipe: Recipe, backbone: Any = None, where: str = "recipe", read_data: Callable[..., Dataset] | None = None
) -> Dataset:
    """Check ``recipe`` as a whole (``backbone``: the one the run will train, where already built) and
    return its data set, read (the splits it uses exist). ``read_data`` reads the data in place of
    `zoo.data.load_dataset` (same arguments): `zoo compare` reads each data set once for all its cells."""
    from zoo.data import DataError, load_dataset
    from zoo.tasks import get_task

    check_recipe_values(recipe, where)
    check_device(recipe.device)
    spec, task_class = get_task(recipe.task)
    modality = backbone.modality if backbone is not None else backbone_modality(recipe.model)
    if modality is not None:
        if modality not in spec.modalities:
            wanted = " or ".join(spec.modalities)
            article = "an" if wanted[0] in "aeiou" else "a"
            raise RecipeError(
                f"task: {spec.name!r} needs {article} {wanted} backbone; model {recipe.model} is "
                f"{'an' if modality[0] in 'aeiou' else 'a'} {modality} backbone"
            )
        task_class = task_class.for_backbone(SimpleNamespace(modality=modality))  # reads only the modality
    protocol = check_protocol(recipe.protocol, recipe.task, recipe.mode)
    mode = recipe.mode or (protocol.mode if protocol else task_class.modes[0])
    if mode not in task_class.modes:
        hint = nearest_key_hint(mode, task_class.modes, f"its modes: {', '.join(task_class.modes)}")
        raise RecipeError(f"mode: task {spec.name!r} has no mode {mode!r}; {hint}")
    check_adapter_mode(recipe, mode, task_class, modality)
    if mode == "pretrained-head" and backbone is None:
        check_pretrained_head(recipe)
    check_task_options(spec.name, task_class, recipe.task_options)
    task_class.check_option_values(recipe.task_options)
    check_model_option_values(recipe.model_options)
    if recipe.unfreeze is not None and (protocol or mode in ("linear-probe", *task_class.untrained_modes)):
        raise RecipeError(f"unfreeze: mode {mode} trains no backbone block; partial fine-tuning is mode finetune's")
    if recipe.unfreeze is not None and (recipe.adapter or recipe.towers):
        key = "adapter" if recipe.adapter else "towers"
        raise RecipeError(f"unfreeze: {key} already says what of the backbone trains; use one of the two")
    dataset = (read_data or load_dataset)(recipe.data, recipe.data_root, **data_options_for(recipe, protocol))
    data_kind = getattr(task_class, "data_kind", "")
    if data_kind and dataset.kind != data_kind:
        raise DataError(f"data: task {spec.name!r} needs a {data_kind} data set; {dataset.name!r} is {dataset.kind}")
    needed = {"eval_split": recipe.eval_split, "test_split": recipe.test_split}
    if protocol:  # scores one split, the test split, and selects nothing on a validation split
        needed = {"test_split": recipe.test_split or "test"}
    if mode not in task_class.untrained_modes:
        needed = {"train": "train", **needed}
    for key, split in needed.items():
        if split is not None and split not in dataset.splits:
            raise RecipeError(missing_split(key, split, dataset, recipe.data))
        if split is not None and len(dataset.splits[split]) == 0:
            raise RecipeError(f"{key}: the {split!r} split of {recipe.data} is empty")
    if protocol:  # its demands on the data (prompt templates for it, enough images to rank), before any work
        from zoo.tasks.protocols import check_data

        check_data(protocol, dataset, recipe.task_options, recipe.test_split or "test")
    return dataset


# what would take examples out of a protocol's training pool (a validation split it never uses)
HELD_OUT_OPTIONS = ("validation_fraction", "validation_file", "validation_images", "train_images")


def data_options_for(recipe: Recipe, protocol: Any = None) -> dict[str, Any]:
    """The options ``recipe``'s data is read with. A protocol owns its splits: one that draws training
    examples draws them from the whole train split (no validation carved out of it: it selects nothing
    on one), and a recipe key that would change what it draws is a RecipeError naming it."""
    if protocol is None and recipe.protocol:
        from zoo.tasks.protocols import get_protocol

        protocol = get_protocol(recipe.protocol)
    options = dict(recipe.data_options)
    if protocol is None or not protocol.draws_training_examples:
        return options
    for key in HELD_OUT_OPTIONS:
        if options.get(key) not in (None, 0, 0.0):
            raise RecipeError(
                f"data_options.{key}: protocol {protocol.name} draws from the whole train split and scores the "
                f"test split; {key} would change what it draws: drop it"
            )
    for key in ("train_limit", "eval_limit"):
        if getattr(recipe, key) is not None:
            raise RecipeError(f"{key}: protocol {protocol.name} uses whole splits, as {protocol.source} does; drop it")
    from zoo.data import dataset_options

    if "validation_fraction" in dataset_options(recipe.data, options) and "validation_fraction" not in options:
        options["validation_fraction"] = 0.0
    return options


def check_protocol(name: str | None, task: str, mode: str | None) -> Any:
    """The evaluation protocol called ``name`` (None for none): a known one, for the recipe's ``task``, in
    the mode that gives it frozen embeddings (``mode``: the recipe's, None where it sets none)."""
    if name is None:
        return None
    from zoo.tasks.protocols import get_protocol

    protocol = get_protocol(name)
    if protocol.task != task:
        raise RecipeError(f"protocol: {protocol.name} scores the {protocol.task} task; this recipe's task is {task!r}")
    if mode not in (None, protocol.mode):
        raise RecipeError(
            f"mode: protocol {protocol.name} scores the frozen backbone ({protocol.mode}), not a {mode} run; "
            "drop the mode or the protocol"
        )
    return protocol


def check_adapter_mode(recipe: Recipe, mode: str, task_class: Any, modality: str | None) -> None:
    """``adapter`` / ``towers`` train parts of the backbone: a mode that trains it, and ``towers`` only
    for a multimodal backbone."""
    if not (recipe.adapter or recipe.towers):
        return
    key = "adapter" if recipe.adapter else "towers"
    if mode == "linear-probe":
        raise RecipeError(
            f"{key}: a linear probe trains its head alone on cached features; mode finetune with an adapter "
            "trains the adapter and the head (LoRA + head)"
        )
    if mode in task_class.untrained_modes:
        raise RecipeError(f"{key}: mode {mode} trains nothing, so an adapter has nothing to learn; drop {key}")
    if recipe.towers and modality not in (None, "multimodal"):
        raise RecipeError(
            f"towers: model {recipe.model} is a {modality} backbone; towers are a multimodal backbone's "
            "(use adapter: alone)"
        )


def check_pretrained_head(recipe: Recipe) -> None:
    """``mode: pretrained-head`` scores the classifier a backbone's weights came with: a RecipeError where
    the recipe's weights certainly have none (random ones), told before the backbone is built. The task
    checks the built backbone's ``pretrained_classes`` and maps the data's classes onto them."""
    from zoo.plugins import get_plugin_set

    if os.path.exists(recipe.model) or recipe.model.startswith(("./", "../", "/", "~")):
        return
    spec = get_plugin_set().registry.resolve_backbone(recipe.model)[0]
    if recipe.pretrained is False or (not spec.weights and recipe.pretrained in (None, True)):
        raise RecipeError(
            f"mode: pretrained-head scores a backbone's pretrained classifier; {spec.name} with random weights "
            "has none (use mode linear-probe or finetune, or weights that come with a classifier)"
        )


def check_device(device: str) -> None:
    """The recipe's ``device`` is on this machine: a CUDA GPU (of that number) for cuda[:N], MPS for mps."""
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RecipeError(f"device={device}: this machine has no CUDA GPU torch can use; use device=cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise RecipeError(
                f"device={device}: this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1}); "
                "choose one of them, or device=auto"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("device=mps: Apple's MPS is not available on this machine; use device=cpu or auto")


def backbone_modality(model: str) -> str | None:
    """The modality of ``model`` (a registered name or a local folder) without building it; None where
    it cannot be told cheaply (then building the backbone reports what is wrong). An unknown name is an
    UnknownNameError with the registry's did-you-mean."""
    from zoo.api import looks_like_a_path
    from zoo.plugins import get_plugin_set

    registry = get_plugin_set().registry
    if not os.path.exists(model) and looks_like_a_path(model):
        try:
            registry.resolve_backbone(model)
        except ZooError:
            raise RecipeError(f"model: folder or file {os.path.abspath(os.path.expanduser(model))} not found") from None
    if not (os.path.exists(model) or model.startswith(("./", "../", "/", "~"))):
        return registry.resolve_backbone(model)[0].modality
    try:
        from zoo.api import claim_path
        from zoo.validation import SAVED_SCHEMA, read_json_file

        path = Path(model).expanduser()
        claim = claim_path(path)
        if claim is None:  # saved by zoo: zoo.json names the registered spec it was built from
            return read_json_file(path / "zoo.json", SAVED_SCHEMA, "a saved backbone's zoo.json")["spec"]["modality"]
        return registry.resolve_backbone(claim.backbone)[0].modality
    except (ZooError, KeyError, TypeError, OSError):
        return None


def check_model_option_values(options: dict[str, Any]) -> None:
    """Model options whose zero would silently mean the default (``max_length: 0``, ``image_size: 0``)
    must be whole numbers >= 1; the factory checks the rest when the backbone is built."""
    for key in ("max_length", "image_size"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise RecipeError(f"model_options.{key} must be a whole number >= 1; got {value!r}")


def check_task_options(task: str, task_class: Any, options: dict[str, Any]) -> None:
    """Each task option is one the task reads for this modality (``option_help``; None: any passes)."""
    known = task_class.option_help
    if known is None:
        return
    for key in options:
        if key not in known:
            hint = nearest_key_hint(key, known, f"its options: {', '.join(known)}" if known else "it takes none")
            raise RecipeError(f"task_options: {task!r} has no option {key!r}; {hint} (zoo tasks {task} describes them)")


def missing_split(key: str, split: str, dataset: Dataset, data: str) -> str:
    """The message for a split the recipe uses (``key``) that ``dataset`` lacks: the data options that
    would create it, where its reader takes any."""
    has = ", ".join(dataset.splits) or "none"
    creators = [f"data_options.{option}" for option in _reader_options(dataset, data) if option.startswith(split + "_")]
    if creators:
        how = f"{' or '.join(creators)} would create one"
    else:
        how = f"no data option creates one; set {key} to one of its splits"
    return f"{key}: data {dataset.name!r} has no {split!r} split (it has: {has}); {how}"


def _reader_options(dataset: Dataset, data: str) -> list[str]:
    """The options of the reader that read ``dataset``: the registered reader of a named data set, or
    the generic reader of its kind for a file or folder."""
    from zoo.data import dataset_reader

    if getattr(dataset, "own_files", False) or os.path.exists(data) or os.sep in data:
        from zoo.data import readers
        from zoo.data.folders import read_image_folder

        reader: Any = {
            "text-classification": readers.read_text_file,
            "image-classification": read_image_folder,
            "image-text": readers.read_caption_file,
            "text": readers.read_plain_text,
        }.get(dataset.kind)
    else:
        reader = dataset_reader(data)[1]
    options = keyword_options(reader) if reader is not None else None
    return [name for name in options or {} if name.endswith(("_fraction", "_file", "_images"))]
