"""The shared engine: runs a recipe (one training loop for every task), and evaluates runs.

`Backbone.finetune`, `Backbone.evaluate` and `Backbone.pretrain` call the
functions here; so do `zoo run` and `zoo evaluate`. A run directory holds the
resolved recipe, ``metrics.jsonl``, checkpoints, the trained model (saved with
the family's ``save``) and ``results.json``, every file written atomically.
"""

from __future__ import annotations

import os
import platform
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from zoo.recipes import Recipe, RecipeError, load_finished_run, validate
from zoo.records import library_versions, write_json
from zoo.signatures import nearest_key_hint
from zoo.tasks.protocols import evaluate as evaluate_protocol
from zoo.tasks.protocols import get_protocol


def provenance(ctx: Any, recipe: Recipe, task: Any, precision: str) -> dict[str, Any]:
    """Everything a result depends on, recorded beside it."""
    weights = task.backbone.weights
    device = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else platform.machine()
    return {
        "versions": library_versions(),
        "device": f"{ctx.device.type} ({device})",
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "world_size": ctx.world_size,
        "precision": precision,
        "seed": recipe.seed,
        "recipe_hash": recipe.hash(),
        "backbone": task.backbone.name,
        "weights": weights
        if isinstance(weights, (str, type(None)))
        else {"tag": weights.tag, "source": weights.source},
        "data": task.data.name,
        "data_fingerprint": task.data.fingerprint,
        "python": platform.python_version(),
        "host": platform.node(),
    }


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _limit(dataset: Any, split: str, count: int | None, seed: int) -> None:
    """Keep ``count`` examples of ``split``: stratified for labelled data, seeded either way."""
    from zoo.data import fingerprint
    from zoo.data.base import stratified_sample

    data = dataset.splits.get(split)
    if count is None or data is None or count >= len(data):
        return
    if data.labels is not None:
        kept = stratified_sample(data.labels, count, seed)  # exactly count, each class its share
    else:
        kept = sorted(random.Random(seed).sample(range(len(data)), count))
    dataset.splits[split] = data.subset(kept)
    # caches key on the subset itself (its indices), never on how it was chosen: a new rule picks others
    dataset.fingerprint = fingerprint(dataset.fingerprint, split, kept)


def check_task_options(task: Any, options: dict[str, Any]) -> None:
    """A RecipeError for a task_options key the task does not read (a typo would otherwise do nothing)."""
    known = type(task).option_help
    if known is None:
        return
    for key in options:
        if key not in known:
            hint = nearest_key_hint(key, known, f"its options: {', '.join(known)}" if known else "it takes none")
            raise RecipeError(
                f"task_options: {task.name!r} has no option {key!r}; {hint} (zoo tasks {task.name} describes them)"
            )


def prepare(recipe: Recipe, backbone: Any = None, device: torch.device | None = None, dataset: Any = None) -> Any:
    """The task of ``recipe``: backbone loaded, data read (unless ``dataset`` is given) and limited, caches filled."""
    from zoo.api import load
    from zoo.checks import data_options_for
    from zoo.data import load_dataset
    from zoo.tasks import get_task

    seed_everything(recipe.seed)  # before loading: a from-scratch backbone's initialisation is part of the run
    if dataset is None:  # bad data fails before weights
        dataset = load_dataset(recipe.data, recipe.data_root, **data_options_for(recipe))
    built = backbone is None
    if backbone is None:
        backbone = load(recipe.model, pretrained=recipe.pretrained, **recipe.model_options)
    if recipe.adapter or recipe.towers:  # before a task caches a frozen tower's features
        from zoo.adapters import adapt

        adapt(backbone, recipe.adapter, recipe.towers, recipe.model_options, recipe.seed if built else None)
    if device is not None:
        backbone.to(device)
    _limit(dataset, "train", recipe.train_limit, recipe.seed)
    _limit(dataset, recipe.eval_split, recipe.eval_limit, recipe.seed)
    spec, task_class = get_task(recipe.task)
    task_class = task_class.for_backbone(backbone)
    recipe.mode = recipe.mode or task_class.modes[0]
    options = {
        **recipe.task_options,
        "eval_split": recipe.eval_split,
        "data_root": recipe.data_root,
        "seed": recipe.seed,
    }
    task = task_class(backbone, dataset, recipe.mode, options, spec=spec)
    check_task_options(task, recipe.task_options)
    if recipe.head_lr is not None and task.trains and not task.fresh_parameters and not backbone.join_parameters():
        raise RecipeError(  # said before any features are computed; make_optimizer checks what trains
            f"head_lr: {task.name} adds no head and {backbone.name} declares no join parameters, so nothing "
            "takes head_lr; drop it or set lr"
        )
    if not recipe.protocol:  # a protocol embeds only what it draws (MTEB: a few examples per label)
        task.prepare()
    return task


def default_test_split(dataset: Any, recipe: Recipe) -> str | None:
    """The split scored once at the end when the recipe names none: a user's own files' test split
    (theirs, or the share held out by ``test_fraction``). Named data sets keep their recipes' choice."""
    if dataset.own_files and "test" in dataset.splits and recipe.eval_split != "test":
        return "test"
    return None


def run(recipe: Recipe, resume: bool = False, backbone: Any = None) -> dict[str, Any]:
    """Run ``recipe`` end to end and return its results (also written to ``results.json``)."""
    from zoo.checks import check_recipe
    from zoo.engine.distributed import setup, teardown
    from zoo.engine.loop import evaluate as evaluate_split
    from zoo.engine.loop import train
    from zoo.engine.report import announce, summary
    from zoo.tasks.uncertainty import item_metrics, record_uncertainty

    started = time.perf_counter()
    dataset = check_recipe(recipe, backbone)  # every mistake in the recipe is reported before any work
    protocol = get_protocol(recipe.protocol) if recipe.protocol else None
    if protocol is not None:  # the mode that gives the protocol frozen embeddings, and its one scored split
        recipe.mode, recipe.test_split = protocol.mode, recipe.test_split or "test"
    ctx = setup(recipe.device)
    run_dir = Path(recipe.output_dir) / (recipe.name or f"{recipe.task}-{recipe.data}")
    if not resume and (run_dir / "checkpoints" / "last.pt").exists():
        raise RecipeError(
            f"{run_dir} holds an earlier run: pass --resume to continue it, or choose another "
            "name (--set name=...) or output_dir"
        )
    if ctx.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        import yaml

        from zoo.files import atomic_write

        text = yaml.safe_dump(recipe.to_dict(), sort_keys=False)
        atomic_write(run_dir / "recipe.yaml", lambda handle: handle.write(text.encode()))
    ctx.barrier()
    try:
        task = prepare(recipe, backbone, ctx.device, dataset)
        test_split = recipe.test_split or default_test_split(task.data, recipe)

        def tell(plan: dict[str, Any]) -> None:
            announce(summary(task, recipe, ctx, run_dir, plan, test_split), ctx)

        if task.trains and protocol is None:
            trained = train(task, recipe, run_dir, ctx, resume, announce=tell)
        else:  # zero-shot, or a protocol: the backbone as it is
            tell({"steps": 0, "precision": "fp32"})
            model = task.model() if protocol is None else None  # a protocol builds no head
            trained = {"model": model, "summary": {"steps": 0, "precision": "fp32"}}
            trained["train_model"] = trained["model"]
            trained["autocast"] = nullcontext()
        model, autocast = trained["model"], trained["autocast"]
        items: dict[str, Any] = {}  # each split's per-item outputs, for the intervals
        counted: dict[str, int] = {}  # examples scored per split (batch by batch), each once
        if protocol is not None:
            test_split = test_split or "test"  # what the protocol scores (run() set it above)
            scored, protocol_record, outputs = evaluate_protocol(protocol, task, test_split)
            metrics = {test_split: scored}
            items[test_split] = (outputs, item_metrics)
        else:
            metrics = {
                split: evaluate_split(task, trained["train_model"], split, ctx, recipe, autocast, items, counted)
                for split in dict.fromkeys([recipe.eval_split, *([test_split] if test_split else [])])
            }
        results = {
            "name": run_dir.name,
            **task.describe(),
            "backbone": task.backbone.name,
            "metrics": metrics,
            "primary_metric": protocol.primary_metric if protocol else task.primary_metric,
            "test_split": test_split,
            # the examples each split really had (after train_limit / eval_limit), and where they came from
            "examples": {
                split: len(task.data.splits[split])
                for split in dict.fromkeys(["train", *metrics])
                if split in task.data.splits and (split != "train" or task.trains)
            },
            "evaluated": counted,  # examples the metrics are over, summed over processes: each split's size
            "split_origins": {
                split: task.data.origins[split] for split in task.data.splits if split in task.data.origins
            },
            "chance": {
                split: protocol.chance(task.chance(split)) if protocol else task.chance(split) for split in metrics
            },
            "train": trained["summary"],
            "wall_seconds": round(time.perf_counter() - started, 2),
            "provenance": provenance(ctx, recipe, task, trained["summary"]["precision"]),
            "recipe": recipe.to_dict(),
            "run_dir": str(run_dir),
        }
        if protocol is not None:
            results["protocol"] = protocol_record
        record_uncertainty(results, items, run_dir if ctx.is_main else None)
        if ctx.is_main:
            if protocol is None:  # a protocol trains nothing: there is no model to keep
                model_dir = run_dir / "model"
                model_dir.mkdir(exist_ok=True)
                task.save(model, model_dir)
                write_model_card(model_dir, task.backbone, recipe, results)
            write_json(run_dir / "results.json", results)
        ctx.barrier()
        return results
    finally:
        teardown()


def write_model_card(model_dir: Path, backbone: Any, recipe: Recipe, results: dict[str, Any]) -> None:
    """``model/README.md``: the run's model card (Hugging Face format, results from ``results``)."""
    from zoo.cards import describe, model_card
    from zoo.files import atomic_write

    facts = {**describe(backbone, recipe.to_dict(), results, results["run_dir"]), "run_name": results["name"]}
    text = model_card(facts)
    atomic_write(model_dir / "README.md", lambda handle: handle.write(text.encode()))


def _run_name(backbone: Any, what: str, data: str) -> str:
    """A run directory name for the Python API: backbone, task and data set (a path's last part)."""
    return f"{backbone.name.replace('/', '-')}-{what}-{Path(str(data)).stem or data}"


def finetune(backbone: Any, task: str, data: str, resume: bool = False, **recipe: Any) -> dict[str, Any]:
    """Train ``task``'s head (and the backbone, unless ``mode="linear-probe"``) on ``data``; ``resume``
    continues the interrupted run of the same name from its last checkpoint."""
    values = {"model": backbone.name, "task": task, "data": data, **recipe}
    values.setdefault("name", _run_name(backbone, task, data))
    return run(validate(values, "finetune()"), resume=resume, backbone=backbone)


def evaluate(backbone: Any, task: str, data: str, **recipe: Any) -> dict[str, Any]:
    """Metrics of ``backbone`` on ``task``: for classification, a linear probe on frozen features."""
    values = {
        "model": backbone.name,
        "task": task,
        "data": data,
        "mode": "linear-probe",
        "epochs": 30.0,
        "lr": 1e-3,
        "batch_size": 256,
        **recipe,
    }
    values.setdefault("name", _run_name(backbone, task, data) + "-eval")
    return run(validate(values, "evaluate()"), backbone=backbone)["metrics"]


def pretrain(backbone: Any, data: str, resume: bool = False, **recipe: Any) -> dict[str, Any]:
    """Self-supervised pretraining with the family's objective (MLM, causal LM, SimCLR, InfoNCE) on
    ``data``'s inputs (labels unused); the trained backbone is saved in the run's ``model/backbone``.
    ``resume`` continues the interrupted run of the same name from its last checkpoint."""
    values = {"model": backbone.name, "task": "pretraining", "data": data, "lr": 5e-4, "warmup": 0.05, **recipe}
    values.setdefault("name", _run_name(backbone, "pretrain", data))
    return run(validate(values, "pretrain()"), resume=resume, backbone=backbone)


def evaluate_run(run_dir: str | Path, split: str | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run's saved model on ``split`` (default: its eval split)."""
    from zoo.api import load
    from zoo.engine.distributed import setup
    from zoo.engine.loop import autocast_for
    from zoo.engine.loop import evaluate as evaluate_split

    run_dir = Path(run_dir)
    recipe = load_finished_run(run_dir, {"data_root": data_root} if data_root else {})
    backbone_dir = run_dir / "model" / "backbone"
    backbone = load(str(backbone_dir)) if backbone_dir.is_dir() else None
    ctx = setup(recipe.device)
    recipe.eval_limit = None if split and split != recipe.eval_split else recipe.eval_limit
    recipe.eval_split = split or recipe.eval_split
    task = prepare(recipe, backbone, ctx.device)
    model = task.model().to(ctx.device)
    task.restore(model, run_dir / "model")
    autocast, _ = autocast_for(recipe.precision, ctx.device)  # the precision the run trained in
    return evaluate_split(task, model, recipe.eval_split, ctx, recipe, autocast)
