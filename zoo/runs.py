"""A finished run as an object: its trained backbone, its head and label names, and its results.

``zoo.load_run(RUN)`` is what `zoo predict`, `zoo evaluate --data` and `zoo export` stand on:

>>> run = zoo.load_run("runs/sst2-minilm-finetune")
>>> run.predict(["a gripping film", "dull"])
[{'label': 'positive', 'probability': 0.97, 'top': [...]}, ...]

Nothing in a run folder chooses code: the backbone loads through `zoo.load` (a saved folder names a
registered backbone), the head is tensors and class names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import InputError
from zoo.validation import read_json_file

RESULTS_SCHEMA = {"type": "object", "required": ["task", "metrics"], "properties": {"task": {"type": "string"}}}
PREDICT_BATCH = 64


@dataclass
class Run:
    """A finished run: ``backbone`` (trained, or the recipe's own for a linear probe), ``head`` (a
    `zoo.ClassifierHead` for classification runs, else None), the recipe and ``results.json``."""

    directory: Path | None
    backbone: Any
    head: Any = None
    recipe: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        return self.results.get("task") or self.recipe.get("task")

    @property
    def input_kind(self) -> str:
        """What the run classifies: "image" or "text"."""
        return input_kind_of(self.recipe, self.results, self.backbone.modality)

    @property
    def label_names(self) -> list[str]:
        return list(self.head.label_names) if self.head is not None else []

    def describe(self) -> dict[str, Any]:
        """Where the model came from and what it scored, for manifests and model cards."""
        from zoo.cards import describe

        facts = describe(self.backbone, self.recipe, self.results, str(self.directory) if self.directory else None)
        facts["run_name"] = self.results.get("name")
        return facts

    # -- prediction ------------------------------------------------------------------
    def embed(self, inputs: Sequence[Any], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """[N, D] embeddings of texts or images as the run's task made them (its image size and crop,
        mirrored views averaged where the run used them)."""
        from zoo.backbone import evaluating

        if len(inputs) == 0:
            raise InputError("nothing to predict: no inputs given")
        image = self.input_kind == "image"
        parts = []
        with evaluating(self.backbone):
            for start in range(0, len(inputs), PREDICT_BATCH):
                batch = list(inputs[start : start + PREDICT_BATCH])
                parts.append(self._embed_images(batch) if image else self.backbone.encode_text(batch))
                if progress:
                    progress(len(batch))
        return torch.cat(parts).float().cpu()

    def _embed_images(self, images: list[Any]) -> torch.Tensor:
        pixels = self.backbone.pixels(images).to(self.backbone.device)  # the run's size and crop: see load_run
        features = self.backbone.encode_pixels(pixels)
        if (self.recipe.get("task_options") or {}).get("flip_features"):
            features = (features + self.backbone.encode_pixels(pixels.flip(-1))) / 2
        return features

    def probabilities(self, inputs: Sequence[Any], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """[N, C] class probabilities (softmax of the head's logits)."""
        if self.head is None:
            what = f"a {self.task} run" if self.task else "not a classification run"
            raise InputError(
                f"{self.directory or self.backbone.name} is {what}: predict serves classification runs "
                "(zoo export writes its encoder for other uses)"
            )
        return torch.softmax(self.head.logits(self.embed(inputs, progress)), dim=-1)

    def predict(
        self, inputs: Sequence[Any], top_k: int = 1, progress: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        """For each input (a string, or an image: path or PIL): ``{"label", "probability", "top"}``,
        ``top`` holding the ``top_k`` most likely ``(label, probability)`` pairs."""
        probabilities = self.probabilities(inputs, progress)
        k = max(1, min(top_k, probabilities.shape[1]))
        values, indices = probabilities.topk(k, dim=-1)
        names = self.label_names
        return [
            {
                "label": names[int(row_indices[0])],
                "probability": float(row_values[0]),
                "top": [(names[int(i)], float(v)) for v, i in zip(row_values, row_indices, strict=True)],
            }
            for row_values, row_indices in zip(values, indices, strict=True)
        ]

    def evaluate(
        self, inputs: Sequence[Any], labels: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> dict[str, float]:
        """Accuracy and macro-F1 on new labelled inputs (labels by class name)."""
        from zoo.tasks.metrics import classification_metrics

        names = {name: index for index, name in enumerate(self.label_names)}
        unknown = sorted({label for label in labels if label not in names})
        if unknown:
            raise InputError(
                f"label {unknown[0]!r} is not one of the run's classes ({', '.join(self.label_names)}); "
                "the run can only score data labelled with its own classes"
            )
        predicted = self.probabilities(inputs, progress).argmax(dim=-1)
        targets = torch.tensor([names[label] for label in labels])
        return classification_metrics(predicted, targets, len(names))


def input_kind_of(recipe: dict[str, Any], results: dict[str, Any], modality: str | None = None) -> str:
    """ "image" or "text": what a classification run's model takes, from its task (or its backbone's
    modality), known before the backbone is built."""
    task = results.get("task") or recipe.get("task")
    if task in ("image-classification", "text-classification"):
        return task.split("-")[0]
    return "image" if modality == "image" else "text"


def check_input_kind(run_dir: str | os.PathLike, kind: str, what: str, recipe: dict[str, Any] | None = None) -> None:
    """An InputError when ``what`` (inputs of ``kind``) is not what the run in ``run_dir`` classifies."""
    from zoo.recipes import load_finished_run

    if recipe is None:
        recipe = load_finished_run(Path(run_dir)).to_dict()
    results_file = Path(run_dir) / "results.json"
    results = read_json_file(results_file, RESULTS_SCHEMA, "a run's results.json") if results_file.is_file() else {}
    wanted = input_kind_of(recipe, results)
    if kind != wanted:
        hint = (
            "give image files or folders of images"
            if wanted == "image"
            else "give a text file (one text a line) or a CSV/TSV/JSONL file (--column)"
        )
        raise InputError(f"{run_dir} classifies {wanted}s, but {what} holds {kind}s: {hint}")


def score_data(run: Run, data: str, split: str | None = None, data_root: str | None = None) -> dict[str, Any]:
    """The run's metrics on labelled ``data``: a named data set's ``split`` (default: test, else
    validation), or every row of a file or image folder (read with the run's column options)."""
    from zoo.data import load_dataset

    options: dict[str, Any] = {}
    local = os.path.exists(data)
    if local:  # a table keeps the run's column options; a folder of class folders has no columns
        kept = ("text_column", "label_column", "delimiter") if Path(data).is_file() else ()
        options = {k: v for k, v in (run.recipe.get("data_options") or {}).items() if k in kept}
        options["validation_fraction"] = options["test_fraction"] = 0.0  # every row, as one split
    dataset = load_dataset(data, data_root, **options)
    kind = dataset.kind.split("-")[0]
    if kind != run.input_kind or not dataset.kind.endswith("classification"):
        form = "a folder of class folders" if run.input_kind == "image" else "a table of texts and labels"
        raise InputError(
            f"{data} is {dataset.kind} data; the run classifies {run.input_kind}s: give labelled ones ({form})"
        )
    if local and split is None:
        chosen = list(dataset.splits)
    else:
        chosen = [split or next((s for s in ("test", "validation") if s in dataset.splits), "train")]
        dataset.split(chosen[0])  # a clear error for a missing split
    inputs, labels = [], []
    for name in chosen:
        part = dataset.splits[name]
        inputs += [str(i) if isinstance(i, Path) else i for i in part.inputs]
        labels += [dataset.label_names[i] for i in part.class_labels()]
    from tqdm.auto import tqdm

    with tqdm(total=len(inputs), desc=f"evaluate {dataset.name}", disable=None) as bar:
        metrics = run.evaluate(inputs, labels, bar.update)
    return {"data": dataset.name, "splits": chosen, "examples": len(inputs), "metrics": metrics}


def is_run(path: str | os.PathLike) -> bool:
    """True for a folder a finished `zoo run` wrote (``recipe.yaml`` and ``model/``)."""
    path = Path(path)
    return (path / "recipe.yaml").is_file() and (path / "model").is_dir()


def load_run(run_dir: str | os.PathLike) -> Run:
    """The finished run in ``run_dir``, ready to predict: its trained backbone (or, for a linear
    probe, the recipe's backbone) and its head."""
    from zoo.api import load
    from zoo.recipes import load_finished_run
    from zoo.tasks.heads import HEAD_FILE, ClassifierHead

    directory = Path(run_dir)
    recipe = load_finished_run(directory)
    results_file = directory / "results.json"
    results = read_json_file(results_file, RESULTS_SCHEMA, "a run's results.json") if results_file.is_file() else {}
    backbone_dir = directory / "model" / "backbone"
    if backbone_dir.is_dir():
        backbone = load(str(backbone_dir))
    else:  # a linear probe keeps the recipe's backbone; seeded as the run was (it may start at random)
        from zoo.engine import seed_everything

        seed_everything(recipe.seed)
        backbone = load(recipe.model, pretrained=recipe.pretrained, **recipe.model_options)
    head = ClassifierHead.from_directory(directory / "model") if (directory / "model" / HEAD_FILE).is_file() else None
    if recipe.task == "image-classification":
        from zoo.tasks.classification import task_image_preprocessing

        # the image size and crop the run trained at (task_options) are the backbone's from now on: prediction
        # and every export (its config and its parity samples) use them
        backbone.image_preprocessing = task_image_preprocessing(backbone, recipe.task_options)
    return Run(directory, backbone, head, recipe.to_dict(), results)


def load_source(source: Any) -> Run:
    """What `zoo export` exports: a run folder as a `Run`; a backbone (loaded, or a saved folder,
    registry name or local model to load) as a `Run` without a head or results."""
    from zoo.api import load

    if isinstance(source, Run):
        return source
    if isinstance(source, torch.nn.Module):
        return Run(None, source)
    if isinstance(source, (str, os.PathLike)) and is_run(source):
        return load_run(source)
    return Run(None, load(source))
