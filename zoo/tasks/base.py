"""The interface between the engine and a task.

The engine owns the loop (devices, precision, accumulation, schedules, DDP,
checkpoints, logging); a task owns what is specific to it: which module is
trained, how examples become batches, how a batch becomes a loss and outputs,
and how collected outputs become metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zoo.errors import InputError
from zoo.specs import TaskSpec

if TYPE_CHECKING:
    from zoo.backbone import Backbone
    from zoo.data import Dataset


@dataclass(frozen=True)
class OptionRule:
    """What a task option's value must be: a number of ``kind`` between ``low`` and ``high`` (``low``
    included unless ``low_open``; ``high`` excluded unless ``high_closed``), or one of ``choices``."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_closed: bool = False
    choices: tuple[Any, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, in words; None when it does."""
        if self.choices:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}"
        bounds = [
            *([f"{'>' if self.low_open else '>='} {self.low:g}"] if self.low is not None else []),
            *([f"{'<=' if self.high_closed else '<'} {self.high:g}"] if self.high is not None else []),
        ]
        wanted = f"must be {'a whole number' if self.kind is int else 'a number'} {' and '.join(bounds)}".rstrip()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind is int and value != int(value)):
            return wanted
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value <= self.high if self.high_closed else value < self.high)
        return None if low_ok and high_ok else wanted


SHARE = OptionRule(float, 0, 1)  # a share or probability: 0 up to (not including) 1
COUNT = OptionRule(int, 1)
# what every task option of these names must be, whichever task reads it; checked with the recipe
OPTION_RULES: dict[str, OptionRule] = {
    "dropout": SHARE,
    "label_smoothing": SHARE,
    "mask_probability": OptionRule(float, 0, 1, low_open=True),
    "feature_batch_size": COUNT,
    "image_size": COUNT,
    "crop_pct": OptionRule(float, 0, 1, low_open=True, high_closed=True),
    "on_bad_image": OptionRule(choices=("skip", "fail")),
    "flip_features": OptionRule(choices=(True, False)),
    "nsp": OptionRule(choices=(True, False)),
}


class Task:
    """Base class of task families. Subclasses set ``primary_metric`` and implement the methods."""

    primary_metric = "accuracy"
    higher_is_better = True
    modes: tuple[str, ...] = ("finetune",)
    untrained_modes: tuple[str, ...] = ("zero-shot",)  # modes that only evaluate
    # the task's own newly initialised modules, by their names in `model` (they train at head_lr, with the
    # parameters the backbone declares in `Backbone.join_parameters`)
    fresh_parameters: tuple[str, ...] = ("head",)
    # the recipe's task_options this task reads, each with one line of help (`zoo tasks NAME` shows them);
    # None: not declared, so any key passes
    option_help: ClassVar[Mapping[str, str] | None] = None

    def __init__(
        self,
        backbone: Backbone,
        dataset: Dataset,
        mode: str = "finetune",
        options: Mapping[str, Any] | None = None,
        spec: TaskSpec | None = None,
    ):
        self.spec = spec  # the registration it was made from (None for a task class used directly)
        if mode not in self.modes:
            raise InputError(f"task {self.name!r} has no mode {mode!r}; its modes: {', '.join(self.modes)}")
        if spec is not None and backbone.modality not in spec.modalities:
            article = "an" if backbone.modality[0] in "aeiou" else "a"
            raise InputError(
                f"task {self.name!r} needs a {' or '.join(spec.modalities)} backbone; "
                f"{backbone.name} is {article} {backbone.modality} backbone"
            )
        self.backbone, self.data, self.mode = backbone, dataset, mode
        if not dataset.fingerprint:  # a Dataset built by hand, not read by zoo.load_dataset: key it by its examples
            from zoo.data.identity import data_identity

            dataset.fingerprint = data_identity(dataset, None, dataset.name, {})
        self.options: dict[str, Any]
        self.options = dict(options or {})
        type(self).check_option_values(self.options)

    @classmethod
    def check_option_values(cls, options: Mapping[str, Any]) -> None:
        """An InputError for a task option whose value cannot be right (`OPTION_RULES`), before any work."""
        for key, value in options.items():
            rule = OPTION_RULES.get(key)
            problem = rule.problem(value) if rule is not None else None
            if problem:
                raise InputError(f"task_options.{key} {problem}; got {value!r}")

    @classmethod
    def for_backbone(cls, backbone: Backbone) -> type[Task]:
        """The class that does this task for ``backbone``: ``cls`` itself unless a task family serves
        some modalities with a subclass (pretraining: CLIP-style backbones train contrastively)."""
        return cls

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else type(self).__name__

    @property
    def trains(self) -> bool:
        """False for modes that evaluate the backbone as it is (zero-shot)."""
        return self.mode not in self.untrained_modes

    def evaluate_split(self, model: nn.Module, split: str, device: torch.device) -> dict[str, Any] | None:
        """Metrics of a whole split at once (retrieval ranks a gallery); None: the engine goes batch by batch."""
        return None

    def score_split(
        self, model: nn.Module, split: str, device: torch.device
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """`evaluate_split` with the per-item outputs its metrics came from (items first in each tensor:
        ``preds`` and ``targets``, or each query's ``DIRECTION rank``; see `zoo.tasks.uncertainty`), so
        the metrics get bootstrap intervals; None: the engine calls `evaluate_split` (no interval)."""
        return None

    def prepare(self) -> None:
        """Heavy, cacheable preparation (tokenising, decoding, feature extraction), before training."""

    def model(self) -> nn.Module:
        """The module the engine trains and evaluates."""
        raise NotImplementedError

    def examples(self, split: str, train: bool) -> torch.utils.data.Dataset:
        """The examples of ``split``, with training-time augmentation when ``train``."""
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        return torch.utils.data.default_collate(items)

    def lengths(self, split: str) -> torch.Tensor | None:
        """Size of each training example (tokens), for ``group_by_length``; None: sizes do not vary."""
        return None

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and per-example outputs (on CPU-able tensors) for one batch."""
        raise NotImplementedError

    def metrics(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Metrics from the outputs of every evaluation batch, concatenated."""
        raise NotImplementedError

    def chance(self, split: str) -> dict[str, float]:
        """What each metric of ``split`` would read without a model: the share of the most common class
        for accuracy, a random ranking's R@K for retrieval. Recorded beside the metrics, so a table can
        show chance and flag a result below it; {} where a task has no such baseline."""
        return {}

    def save(self, model: nn.Module, directory: Path) -> None:
        """Write the trained result (backbone and head) into ``directory``."""
        raise NotImplementedError

    def restore(self, model: nn.Module, directory: Path) -> None:
        """Load what `save` wrote (the head) into ``model``, for evaluating a finished run."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the results file records about the task."""
        return {"task": self.name, "mode": self.mode, "data": self.data.name, "data_fingerprint": self.data.fingerprint}


def save_trained_backbone(backbone: Backbone, directory: Path) -> None:
    """Save a backbone whose own weights were trained. The classifier its weights came with (an
    ImageNet head) no longer fits its features, so it is dropped first: the saved folder, and `zoo info`
    of it, declares none, and ``mode: pretrained-head`` refuses it."""
    backbone.drop_pretrained_head()
    backbone.save(directory)
