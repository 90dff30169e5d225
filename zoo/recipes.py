"""Recipes: flat YAML files that say what to train on what, overridable with ``--set key=value``.

Every key is a field of `Recipe`, with a type and a default. An unknown key or
a value of the wrong type is an error that names the key, the file, and the
nearest known key. Recipes are data: no key switches code paths that a
generic override could not reach.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.signatures import nearest_key_hint
from zoo.validation import TRUST_OPTIONS


class RecipeError(ZooError):
    """A recipe that cannot be read or does not validate."""

    exit_code = 2


@dataclass
class Recipe:
    """Everything one run needs. Keys of a recipe YAML file are these fields."""

    model: str  # a registered backbone name, or a directory written by Backbone.save
    task: str  # a registered task: text-classification, image-classification, ...
    data: str  # a registered data set (sst2, cifar10, ...) or a file / folder
    mode: str | None = (
        None  # the task's modes: finetune | linear-probe, zero-shot | contrastive, pretrain; None: its first
    )
    name: str | None = None  # run name; default: the recipe file's stem
    output_dir: str = "runs"  # the run directory is output_dir/name
    pretrained: bool | str | None = None  # as zoo.load: None = default weights (random if the spec has none)
    model_options: dict = field(default_factory=dict)  # extra factory arguments (e.g. max_length, proj_dim)
    data_root: str | None = None  # default: ZOO_DATA, else ../shared/data
    data_options: dict = field(default_factory=dict)  # reader arguments (validation_fraction, seed, ...)
    task_options: dict = field(default_factory=dict)  # e.g. dropout, label_smoothing, on_bad_image
    train_limit: int | None = None  # use this many training examples (a seeded, stratified subset)
    eval_limit: int | None = None  # evaluate on this many examples of the eval split
    eval_split: str = "validation"  # split for evaluation and early stopping
    test_split: str | None = None  # a held-out split evaluated once at the end (e.g. TREC_10)
    epochs: float = 1.0
    max_steps: int | None = None  # optimizer steps; overrides epochs
    batch_size: int = 32  # global batch per optimizer step, across processes and accumulation
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_batch_size: int = 128
    lr: float = 5e-5
    head_lr: float | None = None  # learning rate of a freshly initialised head (default: lr)
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of the optimizer steps with a linear warm-up, then cosine decay
    clip_grad: float | None = 1.0  # max gradient norm; null disables clipping
    ema_decay: float | None = None  # evaluate and keep an exponential moving average of the weights (e.g. 0.998)
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False  # torch.compile the model
    channels_last: bool | None = None  # None: on for image models
    seed: int = 0
    group_by_length: bool = False  # text: each shuffled run of 50 batches sorted by length (less padding)
    eval_every: int | None = None  # optimizer steps between evaluations; null: once per epoch
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    keep_best: bool = True  # end with the best evaluated weights; false: the last (when eval_split is a test split)
    checkpoint_every: int = 200  # optimizer steps between checkpoints
    log_every: int = 20  # optimizer steps between log lines
    num_workers: int = 0  # DataLoader workers; 0 keeps resumes exact

    def hash(self) -> str:
        """A fingerprint of what determines the result (not names, paths or logging)."""
        ignored = {"name", "output_dir", "data_root", "log_every", "num_workers", "checkpoint_every"}
        content = {k: v for k, v in asdict(self).items() if k not in ignored}
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def validate(values: Mapping[str, Any], where: str) -> Recipe:
    """A `Recipe` from a mapping; unknown keys, wrong types and missing keys are RecipeErrors."""
    hints = typing.get_type_hints(Recipe)
    known = [f.name for f in fields(Recipe)]
    for key, value in values.items():
        if key not in hints:
            hint = nearest_key_hint(key, known, f"known keys: {', '.join(known)}", RECIPE_ALIASES)
            raise RecipeError(f"{where}: unknown key {key!r}; {hint}")
        if not _accepts(hints[key], value):
            raise RecipeError(f"{where}: {key} must be {_type_name(hints[key])}, got {value!r}")
    missing = [f.name for f in fields(Recipe) if f.name in ("model", "task", "data") and f.name not in values]
    if missing:
        raise RecipeError(f"{where}: missing required key(s) {', '.join(missing)}")
    recipe = Recipe(**values)
    if recipe.batch_size < 1 or recipe.grad_accum < 1 or recipe.batch_size % recipe.grad_accum:
        raise RecipeError(
            f"{where}: batch_size ({recipe.batch_size}) must be a positive multiple of grad_accum ({recipe.grad_accum})"
        )
    if recipe.precision not in ("auto", "fp32", "bf16"):
        raise RecipeError(f"{where}: precision must be auto, fp32 or bf16, got {recipe.precision!r}")
    if recipe.name is not None and (recipe.name in ("", ".", "..") or any(c in recipe.name for c in "/\\\0")):
        raise RecipeError(
            f"{where}: name {recipe.name!r} must be a plain name (no '/', not '..'): it names the "
            "run's folder inside output_dir"
        )
    if recipe.ema_decay is not None and not 0 < recipe.ema_decay < 1:
        raise RecipeError(f"{where}: ema_decay must be between 0 and 1 (say 0.998), got {recipe.ema_decay!r}")
    return recipe


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-4", "data_options.seed=3"]`` -> a nested mapping; values are parsed as YAML."""
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        if not equals or not key:
            raise RecipeError(f"--set {pair!r}: expected key=value, e.g. --set lr=3e-5")
        value = yaml.safe_load(raw) if raw else None
        if isinstance(value, str) and _looks_numeric(value):
            value = float(value)  # YAML 1.1 reads 3e-5 as a string
        target = overrides
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return overrides


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_recipe(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Recipe:
    """Read a recipe file, apply overrides, validate."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    values = {k: _fix_numbers(v) for k, v in values.items()}
    extra = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    values = _merge(values, extra)
    values.setdefault("name", path.stem)
    return validate(values, str(path))


def _fix_numbers(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _looks_numeric(value) and "e" in value.lower() else value


def load_finished_run(run_dir: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Recipe:
    """The recipe of a finished run in ``run_dir`` (one that saved its model), with ``overrides`` applied."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file() or not (run_dir / "model").is_dir():
        raise RecipeError(f"{run_dir} is not a finished run (it needs recipe.yaml and model/)")
    recipe = load_recipe(run_dir / "recipe.yaml", overrides)
    granted = [key for key in recipe.model_options if key in TRUST_OPTIONS]
    if granted:
        raise RecipeError(
            f"{run_dir / 'recipe.yaml'} sets model_options.{granted[0]}: a run folder cannot grant "
            "trust to a model's own code; load the model yourself where you trust it"
        )
    return recipe
