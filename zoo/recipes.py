"""Recipes: flat YAML files that say what to train on what, overridable with ``--set key=value``.

Every key is a field of `Recipe`, with a type, a default and one line of help (its field metadata,
which `zoo run --help` and `zoo recipe keys` print). An unknown key, a value of the wrong type or out
of its range is an error that names the key, where it was set (the file, or ``--set``), and the
nearest known key. Paths written in a recipe file are relative to the file's folder, paths given by
``--set`` to the current directory; either way the run's ``recipe.yaml`` stores them absolute, so a
run can be evaluated from anywhere. Recipes are data: no key switches code paths that a generic
override could not reach.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.adapter_options import check_adapter_keys
from zoo.errors import RecipeError
from zoo.recipe_overrides import (  # noqa: F401 - parse_overrides is public here
    fix_numbers,
    load_yaml,
    parse_overrides,
    parse_pair,
    read_yaml_mapping,
    set_nested,
    yaml_problem,
)
from zoo.recipe_paths import absolute, resolve_paths
from zoo.signatures import nearest_key_hint
from zoo.validation import TRUST_OPTIONS

PROBE_LR = 1e-3  # the learning rate of a linear probe that names none (the shipped probe recipes use it)


def _key(default: Any, help: str, **rules: Any) -> Any:
    """A recipe field: its default, one line of help, and its rules (``above``/``at_least``/``below``:
    numeric bounds, ``choices``, ``path``: a path resolved against the recipe file's folder)."""
    metadata = {"help": help, **rules}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


# recipe keys added after runs were recorded: left out of `Recipe.hash` while unset
ADDED_LATER = ("protocol", "strategy", "gradient_checkpointing", "adapter", "towers", "unfreeze", "freeze_norm_stats")


@dataclass
class Recipe:
    """Everything one run needs. Keys of a recipe YAML file are these fields."""

    model: str = _key(MISSING, "a registered backbone name, or a folder written by Backbone.save / a run", path=True)
    task: str = _key(MISSING, "a registered task: text-classification, image-classification, ... (zoo tasks)")
    data: str = _key(MISSING, "a registered data set (sst2, cifar10, ...; zoo datasets) or a file / folder", path=True)
    mode: str | None = _key(None, "one of the task's modes (finetune | linear-probe, ...); null: its first")
    protocol: str | None = _key(
        None, "score the frozen backbone under a published protocol instead of training (zoo protocols lists them)"
    )
    name: str | None = _key(None, "run name: the run folder is output_dir/name; null: the recipe file's stem")
    output_dir: str = _key("runs", "folder the run folder goes in", path=True)
    pretrained: bool | str | None = _key(None, "as zoo.load: null = default weights (random if none), false, a tag")
    model_options: dict = _key({}, "extra arguments of the backbone's factory (e.g. max_length, proj_dim)")
    adapter: dict = _key(
        {},
        "LoRA (peft) instead of the backbone's weights: {method: lora, r: 8, alpha: 16, dropout: 0.05, "
        "target_modules: null = the family's}; {}: none",
    )
    towers: dict = _key({}, "multimodal: how each tower trains, {image: frozen|lora|full, text: frozen|lora|full}")
    unfreeze: int | dict | None = _key(
        None,
        "finetune the last N blocks of the backbone (and the head), the rest frozen; per tower {image: N, text: M}",
        at_least=0,
    )
    freeze_norm_stats: bool | None = _key(None, "with unfreeze: the frozen blocks' BatchNorm statistics stay (eval)")
    data_root: str | None = _key(None, "folder of the named data sets; null: ZOO_DATA, else ../shared/data", path=True)
    data_options: dict = _key(
        {}, "reader arguments (validation_fraction, test_fraction, test_file, seed, ...; zoo datasets NAME)"
    )
    task_options: dict = _key({}, "the task's options (dropout, label_smoothing, ...; zoo tasks NAME lists them)")
    train_limit: int | None = _key(None, "train on this many examples (a seeded, stratified subset)", at_least=1)
    eval_limit: int | None = _key(None, "evaluate on this many examples of the eval split", at_least=1)
    eval_split: str = _key("validation", "split for evaluation, early stopping and keep_best")
    test_split: str | None = _key(None, "a held-out split evaluated once at the end (e.g. test); null: none")
    epochs: float = _key(1.0, "passes over the training split (fractions allowed)", above=0)
    max_steps: int | None = _key(None, "optimizer steps; overrides epochs", at_least=1)
    batch_size: int | str = _key(
        32,
        "global batch per optimizer step, across processes and accumulation; auto:N (auto: N=32): global batch N "
        "in the largest micro-batches that fit the device (on a GPU; the CPU keeps batch_size / grad_accum)",
        at_least=1,
    )
    grad_accum: int = _key(1, "micro-batches per optimizer step (batch_size must be a multiple)", at_least=1)
    eval_batch_size: int = _key(128, "batch size of evaluation", at_least=1)
    lr: float = _key(
        5e-5, f"peak learning rate (AdamW); a linear probe's default is {PROBE_LR:g}; 0 keeps the weights", at_least=0
    )
    head_lr: float | None = _key(
        None,
        "learning rate of the task's new head and the backbone's join (a CLIP model's projections and "
        "temperature); null: lr",
        above=0,
    )
    weight_decay: float = _key(0.01, "AdamW weight decay (not on biases and norms)", at_least=0)
    warmup: float = _key(
        0.06, "fraction of the optimizer steps with a linear warm-up (then cosine decay)", at_least=0, below=1
    )
    clip_grad: float | None = _key(1.0, "max gradient norm; null: no clipping", above=0)
    ema_decay: float | None = _key(
        None, "evaluate and keep a moving average of the weights (e.g. 0.998); null: off", above=0, below=1
    )
    precision: str = _key("auto", "number format; auto: bf16 on CUDA, else fp32", choices=("auto", "fp32", "bf16"))
    device: str = _key("auto", "auto (a GPU if there is one) | cpu | cuda | cuda:N | mps")
    compile: bool = _key(False, "torch.compile the model")
    strategy: str | None = _key(
        None, "under torchrun: ddp (a replica per process) | fsdp (sharded, FSDP2); null: ddp", choices=("ddp", "fsdp")
    )
    gradient_checkpointing: bool | None = _key(None, "recompute activations in backward (less memory); null: off")
    channels_last: bool | None = _key(None, "channels-last memory format; null: on for image models")
    seed: int = _key(0, "seeds initialisation, data order, subsets and held-out splits", at_least=0)
    group_by_length: bool = _key(False, "text: each shuffled run of 50 batches sorted by length (less padding)")
    eval_every: int | None = _key(None, "optimizer steps between evaluations; null: once per epoch", at_least=1)
    early_stopping_patience: int | None = _key(
        None, "evaluations without improvement before stopping; null: never stop early", at_least=1
    )
    keep_best: bool = _key(True, "end with the best evaluated weights; false: the last")
    checkpoint_every: int = _key(200, "optimizer steps between checkpoints", at_least=1)
    log_every: int = _key(20, "optimizer steps between log lines", at_least=1)
    num_workers: int = _key(0, "DataLoader worker processes; 0 keeps resumes exact", at_least=0)

    def hash(self) -> str:
        """A fingerprint of what determines the result (not names, paths or logging)."""
        ignored = {"name", "output_dir", "data_root", "log_every", "num_workers", "checkpoint_every"}
        content = {k: v for k, v in asdict(self).items() if k not in ignored}
        for key in ADDED_LATER:  # at their defaults they leave the hashes of earlier runs as they were
            if content[key] is None or content[key] == {}:
                del content[key]
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def auto_batch(self) -> bool:
        """True for ``batch_size: auto`` / ``auto:N``: the engine picks the micro-batch that fits the device."""
        return isinstance(self.batch_size, str)

    @property
    def global_batch(self) -> int:
        """Examples per optimizer step: ``batch_size``, or the N of ``auto:N`` (32 for ``auto``)."""
        if isinstance(self.batch_size, int):
            return self.batch_size
        match = AUTO_BATCH.fullmatch(self.batch_size)
        return int(match.group(1)) if match and match.group(1) else AUTO_BATCH_DEFAULT


def _accepts(annotation: Any, value: Any) -> bool:
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


def _type_name(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return {type(None): "null", dict: "mapping"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


# Names users of transformers' TrainingArguments, timm's train.py, Lightning or Keras write for a recipe
# field: a key close to one of these is pointed to the field (``lerning_rate`` -> ``lr``), not to whichever
# field happens to share the most letters (``early_stopping_patience``).
RECIPE_ALIASES: dict[str, str] = {
    **dict.fromkeys(["learning_rate", "learningrate", "base_lr", "lr_rate", "initial_lr", "max_lr"], "lr"),
    **dict.fromkeys(["epoch", "num_epochs", "n_epochs", "num_train_epochs", "max_epochs", "nb_epochs"], "epochs"),
    **dict.fromkeys(["max_train_steps", "num_steps", "train_steps", "steps", "max_iters"], "max_steps"),
    **dict.fromkeys(
        ["batchsize", "bs", "batch", "train_batch_size", "per_device_train_batch_size", "train_batchsize"], "batch_size"
    ),
    **dict.fromkeys(
        ["eval_bs", "per_device_eval_batch_size", "validation_batch_size", "val_batch_size", "test_batch_size"],
        "eval_batch_size",
    ),
    **dict.fromkeys(["wd", "weightdecay", "weight_decay_rate", "l2"], "weight_decay"),
    **dict.fromkeys(["warmup_ratio", "warmup_fraction", "warmup_proportion"], "warmup"),
    **dict.fromkeys(
        [
            "gradient_accumulation_steps",
            "grad_accum_steps",
            "accumulate_grad_batches",
            "gradient_accumulation",
            "accum_iter",
        ],
        "grad_accum",
    ),
    **dict.fromkeys(["max_grad_norm", "clip_grad_norm", "gradient_clip_val", "grad_clip", "clip_norm"], "clip_grad"),
    **dict.fromkeys(["patience", "early_stopping_rounds"], "early_stopping_patience"),
    **dict.fromkeys(["model_ema_decay", "ema"], "ema_decay"),
    **dict.fromkeys(["mixed_precision", "amp", "fp16", "bf16", "dtype"], "precision"),
    **dict.fromkeys(["random_seed", "rng_seed"], "seed"),
    **dict.fromkeys(["dataset", "dataset_name", "data_path"], "data"),
    **dict.fromkeys(["model_name", "model_name_or_path", "backbone", "arch"], "model"),
    **dict.fromkeys(["output", "out_dir", "output_path"], "output_dir"),
    **dict.fromkeys(["workers", "dataloader_num_workers"], "num_workers"),
    **dict.fromkeys(["eval_steps", "evaluation_steps", "val_check_interval", "eval_interval"], "eval_every"),
    **dict.fromkeys(["save_steps", "checkpoint_interval", "save_every"], "checkpoint_every"),
    **dict.fromkeys(["logging_steps", "log_interval"], "log_every"),
    **dict.fromkeys(["max_train_samples", "train_samples"], "train_limit"),
    **dict.fromkeys(["max_eval_samples", "eval_samples"], "eval_limit"),
    **dict.fromkeys(["torch_compile"], "compile"),
}


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
AUTO_BATCH = re.compile(r"auto(?::([1-9]\d*))?")  # batch_size: auto, or auto:N (N examples per step)
AUTO_BATCH_DEFAULT = 32  # the global batch of a bare `batch_size: auto`: the key's own default
REQUIRED = ("model", "task", "data")


def _range_text(rules: Mapping[str, Any]) -> str:
    parts = []
    if "above" in rules:
        parts.append(f"> {rules['above']}")
    if "at_least" in rules:
        parts.append(f">= {rules['at_least']}")
    if "below" in rules:
        parts.append(f"< {rules['below']}")
    if "choices" in rules:
        *first, last = rules["choices"]
        parts.append(f"{', '.join(first)} or {last}")
    return " and ".join(parts)


def recipe_keys() -> list[dict[str, Any]]:
    """Every recipe key: name, type, default (None where required), allowed range and help, in file order."""
    hints = typing.get_type_hints(Recipe)
    rows = []
    for f in fields(Recipe):
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else (f.default if f.default is not MISSING else f.default_factory())  # type: ignore[operator]
        rows.append(
            {
                "key": f.name,
                "type": _type_name(hints[f.name]),
                "required": required,
                "default": default,
                "range": _range_text(f.metadata),
                "help": f.metadata["help"],
            }
        )
    return rows


def check_value(key: str, value: Any, where: str) -> None:
    """A RecipeError unless ``value`` fits recipe key ``key``: its type, then its range or choices."""
    hints = typing.get_type_hints(Recipe)
    if key not in hints:
        hint = nearest_key_hint(key, list(hints), f"known keys: {', '.join(hints)}", RECIPE_ALIASES)
        raise RecipeError(f"{where}: unknown key {key!r}; {hint}")
    if key == "batch_size" and not (_accepts(int, value) or isinstance(value, str) and AUTO_BATCH.fullmatch(value)):
        raise RecipeError(f"{where}: batch_size must be a whole number, auto or auto:N (N per step), got {value!r}")
    if not _accepts(hints[key], value):
        raise RecipeError(f"{where}: {key} must be {_type_name(hints[key])}, got {value!r}")
    rules = next(f.metadata for f in fields(Recipe) if f.name == key)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (int, float)) and not (
        value > rules.get("above", -float("inf"))
        and value >= rules.get("at_least", -float("inf"))
        and value < rules.get("below", float("inf"))
    ):
        raise RecipeError(f"{where}: {key} must be {_range_text(rules)}, got {value!r}")
    if "choices" in rules and value not in rules["choices"]:
        raise RecipeError(f"{where}: {key} must be {_range_text(rules)}, got {value!r}")
    if key == "device" and not DEVICE.fullmatch(str(value)):
        also = " (a GPU is cuda)" if str(value).lower() in ("gpu", "tpu", "nvidia", "cuda0") else ""
        raise RecipeError(f"{where}: device must be auto, cpu, cuda, cuda:N or mps, got {value!r}{also}")


def check_recipe_values(recipe: Recipe, where: str) -> None:
    """Every key's type and range, and what keys demand of each other (batch_size and grad_accum)."""
    for f in fields(Recipe):
        check_value(f.name, getattr(recipe, f.name), where)
    if recipe.global_batch % recipe.grad_accum:
        raise RecipeError(
            f"{where}: batch_size ({recipe.global_batch}) must be a positive multiple of grad_accum "
            f"({recipe.grad_accum})"
        )
    for tower, count in (recipe.unfreeze if isinstance(recipe.unfreeze, dict) else {}).items():
        if tower not in ("image", "text") or not _accepts(int, count) or count < 0:
            raise RecipeError(f"{where}: unfreeze is N or {{image: N, text: M}} (blocks, >= 0), got {tower}: {count!r}")
    if recipe.name is not None and (recipe.name in ("", ".", "..") or any(c in recipe.name for c in "/\\\0")):
        raise RecipeError(
            f"{where}: name {recipe.name!r} must be a plain name (no '/', not '..'): it names the "
            "run's folder inside output_dir"
        )
    check_adapter_keys(recipe.adapter, recipe.towers, where)
    if recipe.test_split is not None and recipe.test_split == "train":
        raise RecipeError(
            f"{where}: test_split is the train split: a held-out split (test) measures what training did not see"
        )


def validate(values: Mapping[str, Any], where: str) -> Recipe:
    """A `Recipe` from a mapping; unknown keys, wrong types, values out of range and missing keys are
    RecipeErrors naming the key and ``where``."""
    for key, value in values.items():
        check_value(key, value, where)
    missing = [key for key in REQUIRED if key not in values]
    if missing:
        raise RecipeError(f"{where}: missing required key(s) {', '.join(missing)}")
    if "lr" not in values and values.get("mode") == "linear-probe":  # only a fresh head trains: a head's rate
        values = {**values, "lr": PROBE_LR}
    recipe = Recipe(**values)
    check_recipe_values(recipe, where)
    return recipe


def _override(values: dict[str, Any], path: list[str], value: Any, where: str, resolve: bool) -> None:
    """Apply one override, checked first so that a bad value is blamed on ``where`` (the --set that gave
    it); with ``resolve``, a relative path in it is taken from the current directory."""
    key = path[0]
    if len(path) == 1:
        check_value(key, value, where)
    own: dict[str, Any] = {}
    set_nested(own, path, value)
    if len(path) > 1 and not _is_mapping_key(key):
        if key not in typing.get_type_hints(Recipe):
            check_value(key, value, where)  # an unknown key: the did-you-mean
        raise RecipeError(f"{where}: {key} is not a mapping; set it whole, e.g. --set {key}=VALUE")
    if resolve:
        own = resolve_paths(own, Path.cwd())
    target: Any = own
    for part in path:
        target = target[part]
    set_nested(values, path, target)


def _is_mapping_key(key: str) -> bool:
    return typing.get_type_hints(Recipe).get(key) is dict


def load_recipe(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = (), resolve: bool = True) -> Recipe:
    """Read a recipe file, apply overrides (``--set`` pairs, or a mapping), validate. With ``resolve``,
    relative paths in the file are taken from its folder and those in overrides from the current
    directory, and all are stored absolute."""
    path = Path(path)
    values = {k: fix_numbers(v) for k, v in read_yaml_mapping(path, "recipe").items()}
    if resolve:
        values = resolve_paths(values, path.parent.resolve())
    pairs = (
        [([str(k)], v, f"{k}") for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else [(*parse_pair(pair), f"--set {pair}") for pair in overrides]
    )
    for keys, value, where in pairs:
        _override(values, keys, value, where, resolve)
    values.setdefault("name", path.stem)
    if resolve:
        values.setdefault("output_dir", absolute("runs", Path.cwd()))
    return validate(values, str(path))


def load_finished_run(run_dir: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Recipe:
    """The recipe of a finished run in ``run_dir`` (one that saved its model), with ``overrides`` applied.
    Its paths are kept as the run stored them (absolute since recipes store them so)."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file() or not (run_dir / "model").is_dir():
        raise RecipeError(f"{run_dir} is not a finished run (it needs recipe.yaml and model/)")
    recipe = load_recipe(run_dir / "recipe.yaml", overrides, resolve=False)
    granted = [key for key in recipe.model_options if key in TRUST_OPTIONS]
    if granted:
        raise RecipeError(
            f"{run_dir / 'recipe.yaml'} sets model_options.{granted[0]}: a run folder cannot grant "
            "trust to a model's own code; load the model yourself where you trust it"
        )
    return recipe
